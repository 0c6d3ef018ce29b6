"""The prompt kinds: one declaration each, read by every part of mattekit."""

from typing import get_args

import pytest
import torch

from mattekit.export.graphs import BATCH_INPUTS
from mattekit.prompts import KINDS, KindName, batch_floor, get_kind, prompt_maps


def test_the_kind_names_type_lists_every_kind():
    assert list(get_args(KindName)) == list(KINDS)


def test_an_unknown_kind_is_refused_naming_the_kinds():
    with pytest.raises(
        ValueError, match="unknown prompt kind 'scribble'; the kinds are text, trim"
    ):
        get_kind("scribble")


def test_every_kinds_tensor_fields_are_export_inputs(synthetic_batch):
    batch = synthetic_batch(32, 1)
    tensors = {n for kind in KINDS.values() for n in kind.batch_fields if n != "text"}
    assert tensors <= set(BATCH_INPUTS)
    assert all(isinstance(getattr(batch, name), torch.Tensor) for name in BATCH_INPUTS)


def test_floors_are_the_kinds_regions(synthetic_batch):
    batch = synthetic_batch(32, 2)
    assert torch.equal(batch_floor(batch, "box"), batch.box_map)
    assert torch.equal(batch_floor(batch, "points"), batch.box_map)
    assert torch.equal(batch_floor(batch, "mask"), batch.coarse_mask)
    assert torch.equal(batch_floor(batch, "trimap"), batch.trimap)
    assert batch_floor(batch, "none") is None


def test_prompt_maps_read_each_spatial_kinds_map(synthetic_batch):
    batch = synthetic_batch(32, 3)
    maps = prompt_maps(batch, ["points", "box", "trimap"])
    assert torch.equal(maps[0, 0], batch.point_map[0, 0]) and maps[0, 1:].abs().sum() == 0
    assert torch.equal(maps[1, 1], batch.box_map[1, 0]) and maps[1, [0, 2]].abs().sum() == 0
    assert maps[2].abs().sum() == 0  # a trimap is not one of the three prompt channels


def test_the_reference_row_is_named_after_the_evaluation_kinds_floor():
    from mattekit.models.baseline.lightning_model import Baseline

    names = {
        kind: Baseline(base_channels=8, depth=2, eval_prompt=kind).evaluation["val"].reference_name
        for kind in ("box", "points", "mask", "none")
    }
    assert names == {
        "box": "box as alpha (reference)",
        "points": "box as alpha (reference)",
        "mask": "mask as alpha (reference)",
        "none": None,
    }
