"""The SDMatte release's optimiser switches: detectron2's warm-up start factor and schedule clock
(``WarmupParamScheduler``), and its weight-decay rule (``get_default_optimizer_params`` with
``weight_decay_norm=0``). Expected values are literals: by hand, or from detectron2's and
fvcore's own ``WarmupParamScheduler`` / ``LRMultiplier`` run step by step."""

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from mattekit.models.optimization import LRSchedule, parameter_groups
from mattekit.models.sdmatte.lightning_model import RELEASE_LR_DECAY, SDMatte

CONFIGS = Path(__file__).parents[3] / "configs" / "model"

# A tiny schedule: 4 warm-up steps of 10, exponential decay 0.5 per step; steps 0, 1,
# warmup - 1, warmup and warmup + 2.
STEPS = (0, 1, 3, 4, 6)


@pytest.mark.parametrize(
    ("start", "origin", "expected"),
    [
        # Today's: (step + 1) / 4, then 0.5 ** (step - 4).
        (None, "warmup_end", (0.25, 0.5, 1.0, 1.0, 0.25)),
        # 0.001 + 0.999 x step / 4, then as today.
        (0.001, "warmup_end", (0.001, 0.25075, 0.75025, 1.0, 0.25)),
        # The release's: 0.001 + (0.5 ** 4 - 0.001) x step / 4, then 0.5 ** step (detectron2).
        (0.001, "start", (0.001, 0.016375, 0.047125, 0.0625, 0.015625)),
    ],
    ids=["default", "start_factor", "release"],
)
def test_warm_up_start_factor_and_origin(start, origin, expected):
    schedule = LRSchedule(
        "exponential", warmup_steps=4, decay=0.5, warmup_start_factor=start, origin=origin
    )
    assert [schedule.factor(step, 10) for step in STEPS] == pytest.approx(expected, rel=1e-12)


def test_cosine_clocked_from_the_start():
    # progress = step / 4: the warm-up (from 0) ends at 0.5 (1 + cos(pi / 2)) = 0.5.
    schedule = LRSchedule("cosine", warmup_steps=2, warmup_start_factor=0.0, origin="start")
    expected = (0.0, 0.25, 0.5, 0.1464466094067262)
    assert [schedule.factor(step, 4) for step in range(4)] == pytest.approx(expected, rel=1e-12)


def test_the_releases_schedule_matches_detectron2():
    """configs/SDMatte.py: 200 warm-up iterations of 30,501, warmup_factor 0.001, decay 0.005 over
    the run; the values are detectron2's LRMultiplier's learning rate at each step."""
    schedule = LRSchedule(
        "exponential",
        warmup_steps=200,
        decay=RELEASE_LR_DECAY,
        warmup_start_factor=0.001,
        origin="start",
    )
    detectron2 = {
        0: 0.001,
        1: 0.00582427323218047,
        199: 0.9610303732039136,
        200: 0.9658546464360941,
        201: 0.9656868827561722,
        1000: 0.8405409316973514,
        30500: 0.005000868623582434,
    }
    for step, expected in detectron2.items():
        assert schedule.factor(step, 30501) == pytest.approx(expected, rel=1e-9), step


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"warmup_start_factor": 1.5}, r"warmup_start_factor must be in \[0, 1\]"),
        ({"origin": "middle"}, "origin must be 'warmup_end' or 'start', got 'middle'"),
    ],
)
def test_invalid_warm_up_switches_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        LRSchedule("exponential", warmup_steps=4, **arguments)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(4)
        self.group_norm = nn.GroupNorm(2, 4)
        self.linear = nn.Linear(4, 4)
        self.conv = nn.Conv2d(4, 4, 3)


def decay_sets(groups: list[dict], module: nn.Module) -> tuple[set[str], set[str]]:
    names = {id(p): name for name, p in module.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    spared = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    return decayed, spared


@pytest.mark.parametrize(
    ("rule", "decayed"),
    [
        ("timm", {"linear.weight", "conv.weight"}),  # every ndim <= 1 parameter is spared
        ("norms", {"linear.weight", "linear.bias", "conv.weight", "conv.bias"}),  # detectron2
    ],
)
def test_no_decay_rules(rule, decayed):
    module = Tiny()
    everything = {name for name, _ in module.named_parameters()}
    groups = parameter_groups(module, lr=1e-3, weight_decay=0.1, no_decay=rule)
    assert decay_sets(groups, module) == (decayed, everything - decayed)


def test_an_unknown_no_decay_rule_is_rejected():
    with pytest.raises(ValueError, match="no_decay must be one of \\('timm', 'norms'\\)"):
        parameter_groups(Tiny(), lr=1e-3, weight_decay=0.1, no_decay="bias")


def test_sdmatte_takes_the_release_switches():
    module = SDMatte(
        variant="tiny", warmup_start_factor=0.001, lr_schedule_origin="start", no_decay="norms"
    )
    assert [module.schedule.factor(step, 30501) for step in (0, 200)] == pytest.approx(
        [0.001, 0.9658546464360941], rel=1e-9
    )
    decayed, spared = decay_sets(module.parameter_groups(), module)
    norms = {
        f"{path}.{name}"
        for path, m in module.named_modules()
        if isinstance(m, nn.GroupNorm | nn.LayerNorm)
        for name, p in m.named_parameters(recurse=False)
        if p.requires_grad
    }
    assert norms and spared == norms
    assert "model.unet.conv_in.bias" in decayed
    # The default is today's timm rule: biases are spared too.
    default = SDMatte(variant="tiny")
    assert "model.unet.conv_in.bias" in decay_sets(default.parameter_groups(), default)[1]


@pytest.mark.parametrize("name", ["sdmatte", "litesdmatte"])
def test_release_configs_select_the_release_optimiser(name):
    init_args = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]["init_args"]
    assert init_args["warmup_start_factor"] == 0.001
    assert init_args["lr_schedule_origin"] == "start"
    assert init_args["no_decay"] == "norms"
    # lr 5e-5, weight decay 0.1, 200 warm-up steps and the exponential decay are SDMatte's
    # defaults, the release's values; AdamW's betas (0.9, 0.999) and eps 1e-8 are torch's.
    defaults = SDMatte(variant="tiny").hparams
    assert (defaults.lr, defaults.weight_decay, defaults.warmup_steps) == (5e-5, 0.1, 200)
    assert (defaults.lr_schedule, defaults.lr_decay) == ("exponential", 0.005 ** (1 / 30501))
    defaults_adamw = torch.optim.AdamW([nn.Parameter(torch.zeros(1))]).defaults
    assert (defaults_adamw["betas"], defaults_adamw["eps"]) == ((0.9, 0.999), 1e-8)
