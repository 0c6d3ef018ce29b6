import math

import pytest
import torch
from torch import nn

from mattekit.models.optimization import (
    LRSchedule,
    check_prefixes,
    no_weight_decay_names,
    parameter_groups,
)


class Backbone(nn.Module):
    """A timm-style module: a token, a position embedding and a listed 2-D parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 9, 4))
        self.scale_table = nn.Parameter(torch.ones(3, 4))  # decayed unless listed
        self.proj = nn.Linear(4, 4)

    def no_weight_decay(self) -> set[str]:
        return {"scale_*"}  # relative to this module, a wildcard, as timm allows


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.prompt = nn.Embedding(2, 4)
        self.conv = nn.Conv2d(4, 4, 3)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 1)


def test_no_weight_decay_names_follow_timm():
    assert no_weight_decay_names(Net()) == {
        "backbone.cls_token",  # a token, by name
        "backbone.pos_embed",  # a position embedding, by name
        "backbone.scale_table",  # listed by the module's no_weight_decay()
        "backbone.proj.bias",  # 1-D
        "prompt.weight",  # an nn.Embedding
        "conv.bias",
        "norm.weight",
        "norm.bias",
        "head.bias",
    }  # left decayed: backbone.proj.weight, conv.weight, head.weight


def test_sam_tokens_and_position_embeddings_are_not_decayed():
    from mattekit.models.zim.torch_model import build_zim

    zim = build_zim("tiny")
    excluded = no_weight_decay_names(zim)
    sam_offsets = [
        "image_encoder.pos_embed",
        "image_encoder.blocks.0.attn.rel_pos_h",
        "image_encoder.blocks.0.attn.rel_pos_w",
        "prompt_encoder.point_embeddings.0.weight",
        "prompt_encoder.not_a_point_embed.weight",
        "prompt_encoder.no_mask_embed.weight",
        "mask_decoder.iou_token.weight",
        "mask_decoder.mask_tokens.weight",
    ]
    names = dict(zim.named_parameters())
    assert all(name in names for name in sam_offsets)  # the names are SAM's
    assert set(sam_offsets) <= excluded
    weights = [
        "image_encoder.patch_embed.proj.weight",  # conv
        "image_encoder.blocks.0.attn.qkv.weight",  # linear
        "image_encoder.neck.0.weight",  # conv
        "prompt_encoder.mask_downscaling.0.weight",  # conv
        "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",  # linear
        "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight",  # linear
    ]
    assert all(name in names for name in weights)
    assert not set(weights) & excluded
    # Everything else left decayed is a matrix or a kernel: nothing 1-D slips through.
    assert all(names[n].ndim >= 2 for n in names.keys() - excluded)


def test_parameter_groups_cover_the_trainable_parameters():
    net = Net()
    net.conv.requires_grad_(False)  # frozen: in no group
    multipliers = {"backbone.proj": 0.5, "backbone": 10.0, "head": 3.0}  # first match wins
    groups = parameter_groups(net, lr=1e-3, weight_decay=0.05, lr_multipliers=multipliers)

    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))  # each parameter in one group
    assert set(grouped) == {id(p) for p in net.parameters() if p.requires_grad}
    by_name = {g["name"]: g for g in groups}
    assert list(by_name) == [  # in order of first appearance, no empty group
        "x10/no_decay",  # all of backbone's own: listed (scale_table) or named (token, pos)
        "x0.5/decay",
        "x0.5/no_decay",
        "x1/no_decay",
        "x3/decay",
        "x3/no_decay",
    ]

    def members(name):
        return {id(p) for p in by_name[name]["params"]}

    assert members("x10/no_decay") == {
        id(net.backbone.cls_token),
        id(net.backbone.pos_embed),
        id(net.backbone.scale_table),
    }
    assert members("x0.5/decay") == {id(net.backbone.proj.weight)}
    assert members("x3/decay") == {id(net.head.weight)}
    assert members("x1/no_decay") == {
        id(net.prompt.weight),
        id(net.norm.weight),
        id(net.norm.bias),
    }
    assert by_name["x10/no_decay"]["lr"] == pytest.approx(1e-2)
    assert by_name["x0.5/decay"]["lr"] == pytest.approx(5e-4)
    assert by_name["x3/decay"]["lr"] == pytest.approx(3e-3)
    assert by_name["x1/no_decay"]["lr"] == pytest.approx(1e-3)
    assert {g["name"]: g["weight_decay"] for g in groups} == {
        "x10/no_decay": 0.0,
        "x0.5/decay": 0.05,
        "x0.5/no_decay": 0.0,
        "x1/no_decay": 0.0,
        "x3/decay": 0.05,
        "x3/no_decay": 0.0,
    }


def test_adamw_decays_only_the_decayed_group():
    # With a zero gradient AdamW's update is 0, and decoupled weight decay alone moves a weight:
    # w <- w (1 - lr wd). 0.1 x 0.5 = 0.05, so a decayed weight becomes 0.95 w.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = torch.optim.AdamW(parameter_groups(net, lr=0.1, weight_decay=0.5))
    for parameter in net.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    after = dict(net.named_parameters())
    assert torch.allclose(after["0.weight"], 0.95 * before["0.weight"])
    for name in ("0.bias", "1.weight", "1.bias"):
        assert torch.equal(after[name], before[name])


def test_no_groups_when_everything_is_frozen():
    net = nn.Linear(2, 2).requires_grad_(False)
    assert parameter_groups(net, lr=1e-3, weight_decay=0.01) == []


def test_check_prefixes_names_argument_and_prefix():
    net = Net()
    check_prefixes(net, "freeze", ["backbone", "head.weight"])  # both name parameters
    with pytest.raises(
        ValueError,
        match=r"^lr_multipliers: no parameter name starts with 'mask_decoder' "
        r"\(names look like 'backbone\.cls_token'\)$",
    ):
        check_prefixes(net, "lr_multipliers", ["backbone", "mask_decoder"])
    with pytest.raises(ValueError, match=r"freeze: .*'x'.*no parameters"):
        check_prefixes(nn.ReLU(), "freeze", ["x"])


@pytest.mark.parametrize(
    ("name", "step", "expected"),
    [
        ("constant", 50, 1.0),
        ("cosine", 10, 1.0),  # first step after warm-up
        ("cosine", 60, 0.5),  # half way through the decay: 0.5 (1 + cos(pi / 2))
        ("cosine", 110, 0.0),  # the end of the decay
        ("poly", 60, 0.5**0.9),
        ("poly", 85, 0.25**0.9),  # progress 75 / 100
        ("poly", 500, 0.0),  # past the end: progress clipped to 1
        ("exponential", 12, 0.999**2),
    ],
)
def test_schedules(name, step, expected):
    schedule = LRSchedule(name, warmup_steps=10)
    assert math.isclose(schedule.factor(step, total_steps=110), expected, abs_tol=1e-12)
    assert schedule.factor(4, total_steps=110) == 0.5  # warm-up: (4 + 1) / 10
    assert schedule.factor(9, total_steps=110) == 1.0


def test_exponential_uses_its_decay_and_poly_its_power():
    assert math.isclose(LRSchedule("exponential", decay=0.5).factor(3, 100), 0.125)
    assert math.isclose(LRSchedule("poly", power=2.0).factor(50, 100), 0.25)


def test_teach_diffusion_matting_stage_1_milestones():
    # Table 4, soft grounding in semantics: 50000 iterations, values [0.5, 0.25] at
    # milestones [15000, 40000]; before the first milestone (1 - x / 50000) ** 0.9.
    schedule = LRSchedule("poly", milestones=((15000, 0.5), (40000, 0.25)))
    expected = {
        0: 1.0,
        10000: 0.8**0.9,
        14999: (1 - 14999 / 50000) ** 0.9,
        15000: 0.5,
        39999: 0.5,
        40000: 0.25,
        49999: 0.25,
    }
    for step, factor in expected.items():
        assert math.isclose(schedule.factor(step, 50000), factor, rel_tol=1e-12), step


def test_milestones_after_a_warm_up():
    schedule = LRSchedule("poly", warmup_steps=10, milestones=[[60, 0.3]])  # lists, as YAML
    assert schedule.milestones == ((60, 0.3),)
    assert schedule.factor(4, 110) == 0.5  # warm-up
    assert math.isclose(schedule.factor(35, 110), 0.75**0.9)  # poly, progress 25 / 100
    assert schedule.factor(60, 110) == 0.3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "step"}, r"lr schedule 'step' is unknown"),
        ({"warmup_steps": -1}, r"warmup_steps must be >= 0, got -1"),
        ({"name": "exponential", "decay": 0.0}, r"decay must be > 0"),
        ({"name": "poly", "power": -1.0}, r"power must be >= 0"),
        ({"name": "cosine", "milestones": ((10, 0.5),)}, r"the 'cosine' schedule takes none"),
        ({"name": "poly", "milestones": ((0, 0.5),)}, r"steps must be positive, got \[0\]"),
        (
            {"name": "poly", "milestones": ((20, 0.5), (10, 0.25))},
            r"strictly increasing, got \[20, 10\]",
        ),
        ({"name": "poly", "milestones": ((10, 0.5), (10, 0.25))}, r"strictly increasing"),
        ({"name": "poly", "milestones": ((10, 0.0),)}, r"factors must be > 0, got \[0\.0\]"),
        (
            {"name": "poly", "warmup_steps": 10, "milestones": ((10, 0.5),)},
            r"after the warm-up \(10 steps\)",
        ),
    ],
)
def test_invalid_schedules_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        LRSchedule(**arguments)
