import math

import pytest
import torch

from mattekit.models.base import NonFiniteLossError
from mattekit.models.baseline.lightning_model import Baseline
from mattekit.models.prompting import choose_prompt_kinds, prompt_maps


@pytest.fixture
def batch(synthetic_batch):
    return synthetic_batch(32, 4)


def tiny(**kwargs):
    return Baseline(base_channels=8, depth=2, **kwargs)


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 50, 1.0),
        ("cosine", 10, 1.0),  # first step after warm-up
        ("cosine", 60, 0.5),  # half way through the decay
        ("poly", 60, 0.5**0.9),
        ("exponential", 12, 0.999**2),
    ],
)
def test_lr_schedules(schedule, step, expected):
    module = tiny(warmup_steps=10, lr_schedule=schedule)
    assert math.isclose(module.lr_factor(step, total_steps=110), expected, rel_tol=1e-9)
    assert math.isclose(module.lr_factor(4, total_steps=110), 0.5)  # warm-up: (4 + 1) / 10


def test_freeze_and_parameter_groups():
    module = tiny(freeze=["model.stem"], lr_multipliers={"model.head": 10.0})
    assert not any(p.requires_grad for p in module.model.stem.parameters())
    groups = module.parameter_groups()
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in module.parameters() if p.requires_grad}
    head_weight = next(g for g in groups if any(p is module.model.head.weight for p in g["params"]))
    assert head_weight["lr"] == pytest.approx(10 * module.hparams.lr)
    head_bias = next(g for g in groups if any(p is module.model.head.bias for p in g["params"]))
    assert head_bias["weight_decay"] == 0.0
    with pytest.raises(ValueError, match=r"freeze: .*'model\.nope'"):
        tiny(freeze=["model.nope"])
    with pytest.raises(ValueError, match=r"lr_multipliers: .*'mask_decoder'"):
        tiny(lr_multipliers={"mask_decoder": 10.0})  # the names start with "model."


def test_unknown_prompt_kind_is_rejected():
    with pytest.raises(ValueError, match="prompt_kinds"):
        tiny(prompt_kinds=["scribble"])


def test_prompt_maps_keep_only_the_chosen_kind(batch):
    maps = prompt_maps(batch, ["points", "box", "mask", "box"])
    assert maps.shape == (4, 3, 32, 32)
    assert torch.equal(maps[0, 0], batch.point_map[0, 0]) and maps[0, 1:].abs().sum() == 0
    assert maps[1, 1].sum() > 0 and maps[1, [0, 2]].abs().sum() == 0
    assert torch.equal(maps[2, 2], batch.coarse_mask[2, 0])
    assert choose_prompt_kinds(3, ["points"], training=False, eval_kind="box") == ["box"] * 3


def test_non_finite_loss_names_the_samples(batch):
    module = tiny()
    module.compute_loss = lambda outputs, b: {"l1": torch.tensor(float("nan"))}
    with pytest.raises(NonFiniteLossError, match=batch.sample_id[0]):
        module.training_step(batch, 0)
    skipping = tiny(nonfinite_loss="skip")
    skipping.compute_loss = module.compute_loss
    assert skipping.training_step(batch, 0) is None


def test_predict_returns_original_size(batch):
    batch.original_size[:] = torch.tensor([45, 70])
    module = tiny().eval()
    with torch.no_grad():
        predictions = module.predict_step(batch, 0)
    assert [p[0] for p in predictions] == batch.sample_id
    assert all(alpha.shape == (1, 45, 70) for _, alpha in predictions)


def test_baseline_overfits_one_batch(batch, train_on_batch):
    torch.manual_seed(0)
    losses = train_on_batch(tiny(lr=1e-2), batch, steps=100)
    assert losses[-1] < 0.1 * losses[0]
