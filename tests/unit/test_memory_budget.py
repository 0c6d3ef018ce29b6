"""benchmarks/memory_budget.py: the per-GPU batch and the configs derived from measured steps
(hand values), and one measured case end to end on the tiny variant."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mattekit.cli import main as cli_main

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import memory_budget as mb  # noqa: E402
import paper_scale  # noqa: E402

SD = paper_scale.Case("sdmatte", None, 512, 18, 2, "test")


def step(side: int, peak: float, state: float = 13.0, trainable: int = 800_000) -> dict:
    """A measured step whose counted state (fp32 weights + AdamW's moments) is ``state`` GiB."""
    parameters = round((state * 2**30 - 8 * trainable) / 4)
    return {"status": "ok", "side": side, "peak_gib": peak,
            "parameters": parameters, "trainable": trainable}  # fmt: skip


def results_for(case, side, one, two, checkpointing=False) -> dict:
    return {
        mb.key(case, "bf16", checkpointing, 1, side): step(side, one),
        mb.key(case, "bf16", checkpointing, 2, side): step(side, two),
    }


def test_per_gpu_batch_by_hand():
    budget = mb.budget(SD, "bf16", False, results_for(SD, 512, 6.0, 10.0))
    # per sample 10 - 6 = 4 GiB; the rest of batch 1's peak 2 GiB; held state 13 GiB.
    assert (budget.per_sample_gib, budget.fixed_gib, budget.state_gib) == (4.0, 2.0, 13.0)
    assert budget.need_gib(3) == pytest.approx(13 + 2 + 3 * 4)
    # usable on G GB: G * 1e9 / 2^30 * 0.9 - 1.5 GiB; 80 GB: 65.56, so (65.56 - 15) / 4 = 12.6
    assert [budget.batch_on(g) for g in (24, 48, 80)] == [0, 5, 12]


def test_a_smaller_measured_side_scales_the_per_sample_memory_by_pixels():
    zim = paper_scale.Case("zim", None, 1024, 16, None, "test")
    budget = mb.budget(zim, "bf16", False, results_for(zim, 512, 1.0, 1.5, checkpointing=False))
    assert budget.per_sample_gib == pytest.approx(0.5 * 4) and budget.side == 512


def test_the_largest_fitting_side_is_used_and_batch_one_alone_is_conservative():
    results = {
        mb.key(SD, "bf16", False, 1, 512): {"status": "over the 20 GiB cap", "side": 512},
        mb.key(SD, "bf16", False, 1, 384): step(384, 3.0),
        mb.key(SD, "bf16", False, 2, 384): {"status": "over the 20 GiB cap", "side": 384},
        mb.key(SD, "bf16", False, 1, 256): step(256, 1.0),
    }
    budget = mb.budget(SD, "bf16", False, results)
    # batch 2 did not fit: the whole batch-1 peak counts per sample, scaled (512 / 384)^2.
    assert budget.side == 384 and budget.fixed_gib == 0.0
    assert budget.per_sample_gib == pytest.approx(3.0 * (512 / 384) ** 2)


def test_recomputation_is_chosen_only_when_the_plain_step_misses_the_paper_share():
    fits = {**results_for(SD, 512, 6.0, 10.0), **results_for(SD, 512, 3.0, 4.0, True)}
    assert mb.choose(SD, fits)[1] is False  # 12 per GPU >= 9, the paper's share
    tight = {**results_for(SD, 512, 6.0, 30.0), **results_for(SD, 512, 3.0, 4.0, True)}
    assert mb.choose(SD, tight)[1] is True  # 2 per GPU plain, 50 recomputed


def test_shipped_config_reaches_the_paper_batch_and_parses(tmp_path: Path, capsys):
    tight = {**results_for(SD, 512, 6.0, 30.0), **results_for(SD, 512, 10.0, 18.0, True)}
    markdown = mb.derive([SD], tight, tmp_path)
    # plain: (65.56 - 13) / 24 -> 2 per GPU; recomputed: 8 per sample, 2 fixed,
    # (65.56 - 15) / 8 -> 6 per GPU. The paper's 18 on 2 GPUs exactly: 3 x 2 x 3 accumulated.
    config = yaml.safe_load((tmp_path / "sdmatte_2.yaml").read_text())
    assert config["data"]["batch_size"] == 3
    assert config["trainer"]["accumulate_grad_batches"] == 3
    assert config["trainer"]["devices"] == 2 and config["trainer"]["strategy"] == "ddp"
    assert config["model"]["init_args"]["activation_checkpointing"] is True
    one = yaml.safe_load((tmp_path / "sdmatte_1.yaml").read_text())
    assert (one["data"]["batch_size"], one["trainer"]["accumulate_grad_batches"]) == (6, 3)
    parameters = (13.0 * 2**30 - 8 * 800_000) / 4  # 13 GiB of weights and moments
    assert f"| sdmatte | 0.8 M / {parameters / 1e6:.1f} M | 13.0 |" in "\n".join(markdown)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(tmp_path / "sdmatte_2.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["accumulate_grad_batches"] == 3


@pytest.mark.slow
def test_a_tiny_case_is_measured_in_children_and_resumed(tmp_path: Path):
    results = tmp_path / "budget.json"
    command = [sys.executable, str(BENCHMARKS / "memory_budget.py"), "--dry_run", "--cases",
               "zim", "--settings", "bf16", "--results", str(results),
               "--configs", str(tmp_path / "scale")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(results.read_text())
    # batch 1 and 2 at the first dry-run side, each a real step's figures.
    assert sorted(measured) == ["zim/bf16/plain/b1/64px", "zim/bf16/plain/b2/64px"]
    assert all(r["status"] == "ok" for r in measured.values())
    assert all(
        r["side"] == 64 and r["peak_gib"] > 0 and r["trainable"] > 0 for r in measured.values()
    )
    assert (tmp_path / "scale" / "zim_8.yaml").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "memory_budget: zim" not in again.stderr  # nothing re-run


def test_settings_parse_and_unknown_ones_are_refused():
    assert mb.parse_settings("bf16, fp32+ckpt") == [("bf16", False), ("fp32", True)]
    with pytest.raises(Exception, match="unknown setting 'fp16'"):
        mb.parse_settings("fp16")


def test_the_batch_split_is_exact_with_the_fewest_accumulations():
    assert mb.batch_split(16, 8, 15) == (2, 1)
    assert mb.batch_split(16, 1, 15) == (8, 2)  # not 15 x 2 = 30
    assert mb.batch_split(18, 2, 6) == (3, 3)  # 9 per GPU does not fit, 4.5 is no batch
    assert mb.batch_split(17, 2, 4) == (3, 3)  # no exact split: at least 17 (18)
    assert mb.batch_split(16, 8, 0) is None


def test_a_growth_below_the_resolution_gives_a_lower_bound_on_the_batch():
    """A frozen network's step can grow resident memory by nothing (the allocator already
    holds what it needs): its per-sample memory is taken as the resolution, and the table says
    the batch is a lower bound rather than printing tens of thousands."""
    decoder = paper_scale.Case("teachmatte", "decoder", 512, 16, 1, "test")
    results = results_for(decoder, 512, 0.030, 0.031)
    b = mb.budget(decoder, "bf16", False, results)
    assert b.resolution_bound and b.per_sample_gib == mb.RESOLUTION_GIB
    usable = 80e9 / 2**30 * 0.9 - 1.5
    assert b.batch_on(80) == int((usable - 13.0 - b.fixed_gib) / mb.RESOLUTION_GIB)
    assert b.fixed_gib == pytest.approx(0.029)  # the batch-1 peak less one sample
    row = [line for line in mb.table([decoder], results) if line.startswith("| teachmatte_dec")]
    assert f">= {b.batch_on(24)} / >= {b.batch_on(48)} / >= {b.batch_on(80)}" in row[0]
    measured = mb.budget(SD, "bf16", False, results_for(SD, 512, 2.0, 3.5))
    assert not measured.resolution_bound and measured.per_sample_gib == 1.5


def test_the_held_state_counts_weights_and_moments_not_gradients():
    """Gradients are set to None after each step, so a step's measured peak holds them: the
    counted state must not hold them again (SDMatte's 873 M trained: 3.3 GiB counted twice)."""
    assert paper_scale.state_gib(1_000_000, 500_000) == (4 * 1_000_000 + 8 * 500_000) / 2**30
    sdmatte = paper_scale.state_gib(956_684_715, 873_030_852)  # at paper size
    assert round(sdmatte, 1) == 10.1
