"""Batch collation follows the rules declared on the batch dataclass's fields."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor

from mattekit.data.collate import collate_dataclass, collate_rule, padded, per_sample, stacked
from mattekit.data.sample import MattingBatch, collate_samples


def item(index: int, clicks: int = 2, fg: bool = True, original: bool = True) -> dict:
    """One sample dict as MattingDataset makes it, 8 x 8, ``clicks`` points (labels 1)."""
    sample = {
        "image": torch.full((3, 8, 8), float(index)),
        "alpha": torch.zeros(1, 8, 8),
        "trimap": torch.zeros(1, 8, 8),
        "points": torch.arange(clicks * 2, dtype=torch.float32).reshape(clicks, 2) + index,
        "point_labels": torch.ones(clicks, dtype=torch.int64),
        "point_map": torch.zeros(1, 8, 8),
        "box": torch.tensor([0.0, 0.0, 7.0, 7.0]),
        "box_map": torch.ones(1, 8, 8),
        "coarse_mask": torch.zeros(1, 8, 8),
        "seg_mask": torch.zeros(1, 8, 8),
        "is_transparent": torch.tensor(False),
        "original_size": torch.tensor([8 + index, 9]),
        "content_size": torch.tensor([8, 8]),
        "text": f"text {index}",
        "sample_id": f"id{index}",
        "source": "s",
        "prompt_kind": "box" if index % 2 else "",
        "fg": torch.zeros(3, 8, 8) if fg else None,
        "bg": torch.zeros(3, 8, 8) if fg else None,
    }
    if original:
        sample["original_alpha"] = torch.zeros(1, 8 + index, 9)
        sample["original_trimap"] = torch.zeros(1, 8 + index, 9)
    return sample


def test_every_batch_field_declares_a_rule():
    for batch_field in dataclasses.fields(MattingBatch):
        collate_rule(batch_field)  # raises TypeError naming a field without one


def test_each_rule_collates_as_declared():
    batch = collate_samples([item(0), item(1)])
    assert batch.image.shape == (2, 3, 8, 8) and batch.image[1].eq(1).all()
    assert batch.original_size.tolist() == [[8, 9], [9, 9]]
    assert batch.text == ["text 0", "text 1"] and batch.sample_id == ["id0", "id1"]
    assert batch.fg.shape == (2, 3, 8, 8)
    assert [a.shape for a in batch.original_alpha] == [(1, 8, 9), (1, 9, 9)]
    assert len(batch) == 2


def test_optional_fields_are_none_unless_every_sample_has_them():
    batch = collate_samples([item(0), item(1, fg=False, original=False)])
    assert batch.fg is None and batch.bg is None
    assert batch.original_alpha is None and batch.original_trimap is None


def test_points_are_padded_to_the_longest_sample_with_label_minus_one():
    batch = collate_samples([item(0, clicks=3), item(1, clicks=1)])
    assert batch.points.shape == (2, 3, 2) and batch.point_labels.shape == (2, 3)
    assert batch.point_labels.tolist() == [[1, 1, 1], [1, -1, -1]]
    assert batch.points[0].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert batch.points[1].tolist() == [[1, 2], [0, 0], [0, 0]]
    assert batch.point_labels.dtype == torch.int64 and batch.points.dtype == torch.float32


def test_a_missing_required_field_or_an_undeclared_key_is_named():
    incomplete = item(1)
    del incomplete["box"]
    with pytest.raises(ValueError, match=r"'box' is missing from sample\(s\) \[1\]"):
        collate_samples([item(0), incomplete])
    with pytest.raises(KeyError, match="weight"):
        collate_samples([{**item(0), "weight": torch.tensor(1.0)}])


@dataclass(kw_only=True)
class WeightedBatch(MattingBatch):
    """A family's batch with two more fields, each declared once, here."""

    weight: Tensor = field(metadata=stacked())
    tokens: Tensor = field(metadata=padded(7))
    notes: list[str] = field(default_factory=list, metadata=per_sample())


def test_a_subclass_field_needs_only_its_declaration():
    samples = [
        {**item(i), "weight": torch.tensor(0.5 * i), "tokens": torch.ones(i + 1), "notes": f"n{i}"}
        for i in range(2)
    ]
    batch = collate_samples(samples, batch_type=WeightedBatch)
    assert isinstance(batch, WeightedBatch)
    assert batch.weight.tolist() == [0.0, 0.5]
    assert batch.tokens.tolist() == [[1, 7], [1, 1]]
    assert batch.notes == ["n0", "n1"]

    moved = batch.to("meta")
    assert isinstance(moved, WeightedBatch)
    assert moved.weight.is_meta and moved.tokens.is_meta and moved.image.is_meta
    assert all(alpha.is_meta for alpha in moved.original_alpha)
    assert moved.notes == ["n0", "n1"] and moved.sample_id == ["id0", "id1"]


def test_a_field_without_a_rule_is_an_error_naming_it():
    @dataclass
    class Undeclared:
        image: Tensor = field(metadata=stacked())
        mystery: Tensor | None = None

    with pytest.raises(TypeError, match="'mystery' declares no collation rule"):
        collate_dataclass(Undeclared, [{"image": torch.zeros(1)}])


def test_to_moves_every_tensor_and_keeps_the_rest():
    batch = collate_samples([item(0), item(1, fg=False)]).to("meta")
    assert batch.image.is_meta and batch.points.is_meta and batch.content_size.is_meta
    assert batch.fg is None and all(t.is_meta for t in batch.original_trimap)
    assert batch.text == ["text 0", "text 1"]


def test_select_keeps_the_chosen_samples_in_every_field():
    batch = collate_samples([item(0), item(1, clicks=3), item(2)])
    chosen = batch.select([2, 0])
    assert type(chosen) is MattingBatch and len(chosen) == 2
    assert chosen.image[:, 0, 0, 0].tolist() == [2.0, 0.0]
    assert chosen.points.shape == (2, 3, 2) and chosen.point_labels[:, 2].tolist() == [-1, -1]
    assert chosen.sample_id == ["id2", "id0"] and chosen.text == ["text 2", "text 0"]
    assert [a.shape for a in chosen.original_alpha] == [(1, 10, 9), (1, 8, 9)]
    assert collate_samples([item(0, fg=False)]).select([0]).fg is None
