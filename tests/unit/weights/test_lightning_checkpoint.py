"""A submodule initialised from another run's Lightning checkpoint (how stages chain)."""

import pytest
import torch
from torch import nn

from mattekit.weights.lightning import load_submodule


def save_lightning(path, state):
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6.0"}, path)


def block():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_prefix_mapping_copies_exactly_the_mapped_weights(tmp_path):
    teacher = block()
    with torch.no_grad():
        teacher[0].weight.normal_()
        teacher[1].running_mean.fill_(0.25)
    other = nn.Linear(2, 2)
    state = {f"teacher.unet.{k}": v for k, v in teacher.state_dict().items()}
    state.update({f"model.head.{k}": v for k, v in other.state_dict().items()})
    save_lightning(tmp_path / "teacher.ckpt", state)

    student = block()
    report = load_submodule(student, tmp_path / "teacher.ckpt", {"teacher.unet.": ""})
    assert torch.equal(student[0].weight, teacher[0].weight)
    assert torch.equal(student[1].running_mean, teacher[1].running_mean)
    assert sorted(report.loaded) == sorted(teacher.state_dict())
    assert report.left_at_init == []
    assert sorted(report.unused) == ["model.head.bias", "model.head.weight"]


def test_new_layers_are_allowed_only_when_named(tmp_path):
    save_lightning(
        tmp_path / "a.ckpt", {f"model.0.{k}": v for k, v in nn.Conv2d(3, 4, 3).state_dict().items()}
    )
    grown = block()
    with pytest.raises(ValueError, match=r"a\.ckpt.*missing \['1\.weight'"):
        load_submodule(grown, tmp_path / "a.ckpt", {"model.": ""})
    report = load_submodule(grown, tmp_path / "a.ckpt", {"model.": ""}, allow_missing=("1.",))
    assert "1.weight" in report.left_at_init


def test_shape_mismatch_and_non_lightning_files_are_named(tmp_path):
    save_lightning(
        tmp_path / "wide.ckpt",
        {f"model.{k}": v for k, v in nn.Conv2d(3, 8, 3).state_dict().items()},
    )
    with pytest.raises(ValueError, match=r"wide\.ckpt: shapes differ"):
        load_submodule(nn.Conv2d(3, 4, 3), tmp_path / "wide.ckpt", {"model.": ""})
    torch.save(nn.Conv2d(3, 4, 3).state_dict(), tmp_path / "plain.pth")
    with pytest.raises(ValueError, match=r"plain\.pth: not a Lightning checkpoint"):
        load_submodule(nn.Conv2d(3, 4, 3), tmp_path / "plain.pth", {"model.": ""})
