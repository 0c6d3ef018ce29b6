"""States reduce like DDP's all-reduce: metrics updated on shards and merged equal one metric."""

import pytest
import torch
from metric_cases import as_batch, random_case
from torchmetrics.utilities.data import dim_zero_sum

from mattekit.metrics import PRESETS, matting_metrics, segmentation_metrics

CASES = [random_case(seed) for seed in range(4)]


def _shard(indices):
    preds, gts, trimaps = zip(*(CASES[i] for i in indices), strict=True)
    return as_batch(*preds), as_batch(*gts), as_batch(*trimaps, dtype=torch.uint8)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_merge_state_of_two_ranks_equals_one_process(preset, caplog):
    single, rank0, rank1 = (matting_metrics(preset) for _ in range(3))
    single.update(*_shard([0, 1, 2, 3]))
    rank0.update(*_shard([0, 2]))
    rank1.update(*_shard([1, 3]))
    expected = single.compute()
    for name, metric in rank0.items():
        metric.merge_state(rank1[name])
    merged = rank0.compute()
    for name, value in expected.items():
        assert float(merged[name]) == pytest.approx(float(value), rel=1e-12)


def test_states_are_sums_with_sum_reduction():
    # What dist_reduce_fx="sum" does across processes: add each state elementwise.
    rank0, rank1, single = (matting_metrics("dim") for _ in range(3))
    rank0.update(*_shard([0]))
    rank1.update(*_shard([1, 2]))
    single.update(*_shard([0, 1, 2]))
    for name, metric in single.items():
        assert metric._reductions == {"error_sum": dim_zero_sum, "num_samples": dim_zero_sum}
        error_sum = rank0[name].error_sum + rank1[name].error_sum
        num_samples = rank0[name].num_samples + rank1[name].num_samples
        assert int(num_samples) == 3 == int(metric.num_samples)
        assert float(error_sum / num_samples) == pytest.approx(float(metric.compute()), rel=1e-12)


def test_segmentation_curves_merge_like_one_process():
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 1, 16, 20, generator=generator)
    target = (torch.rand(4, 1, 16, 20, generator=generator) > 0.6).float()
    single, rank0, rank1 = (segmentation_metrics() for _ in range(3))
    single.update(pred, target)
    rank0.update(pred[:1], target[:1])
    rank1.update(pred[1:], target[1:])
    for name, metric in rank0.items():
        metric.merge_state(rank1[name])
    merged, expected = rank0.compute(), single.compute()
    for name, value in expected.items():
        assert float(merged[name]) == pytest.approx(float(value), rel=1e-12)


def _ddp_worker(rank: int, world_size: int, folder: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{folder}/init", rank=rank, world_size=world_size
    )
    metrics = matting_metrics("dim")
    metrics.update(*_shard([rank, rank + 2]))  # rank 0: samples 0, 2; rank 1: samples 1, 3
    values = {name: float(value) for name, value in metrics.compute().items()}  # synced
    torch.save(values, f"{folder}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_reduce_to_the_single_process_result(tmp_path):
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, str(tmp_path)), nprocs=2, start_method="spawn"
    )
    single = matting_metrics("dim")
    single.update(*_shard([0, 1, 2, 3]))
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for name, value in single.compute().items():
        assert results[0][name] == pytest.approx(float(value), rel=1e-12)
        assert results[1][name] == results[0][name]


def test_forward_returns_the_batch_value_and_accumulates():
    metric, reference_metric = (matting_metrics("dim")["SAD"] for _ in range(2))
    first = metric(*_shard([0]))
    metric(*_shard([1, 2]))
    reference_metric.update(*_shard([0]))
    assert float(first) == pytest.approx(float(reference_metric.compute()), rel=1e-12)
    reference_metric.update(*_shard([1, 2]))
    assert float(metric.compute()) == pytest.approx(float(reference_metric.compute()), rel=1e-12)
