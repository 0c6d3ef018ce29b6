"""Input validation, presets, empty regions and logged warnings of the matting metrics."""

import logging

import numpy as np
import pytest
import torch
from metric_cases import as_batch

from mattekit.metrics import (
    DIM,
    MAD,
    MSE,
    PRESETS,
    SAD,
    ConnectivityError,
    GradientError,
    MattingPreset,
    matting_metrics,
    resolve_preset,
)
from mattekit.metrics.inputs import warn_once

GOOD = torch.full((2, 1, 5, 6), 0.5)


@pytest.mark.parametrize(
    ("pred", "target", "trimap", "match"),
    [
        (torch.rand(2, 5, 6), GOOD, None, r"pred must have shape \(B, 1, H, W\)"),
        (GOOD, torch.rand(2, 3, 5, 6), None, r"target must have shape"),
        (GOOD, torch.rand(2, 1, 5, 7), None, r"pred and target must have the same shape"),
        (GOOD + 0.6, GOOD, None, r"pred has values outside \[0, 1\]"),
        (GOOD, GOOD - 0.6, None, r"target has values outside \[0, 1\]"),
        (GOOD.clone().index_fill_(2, torch.tensor([1]), float("nan")), GOOD, None, "pred .*NaN"),
        (GOOD, GOOD.clone().index_fill_(3, torch.tensor([0]), float("inf")), None, "target .*inf"),
        ((GOOD * 255).to(torch.uint8), GOOD, None, r"pred must be a floating-point tensor"),
        (GOOD, GOOD, torch.full((2, 1, 5, 6), 100), r"trimap values must all be in"),
        (GOOD, GOOD, torch.ones(2, 1, 5, 6, dtype=torch.int64), r"trimap values"),
        (GOOD, GOOD, torch.zeros(2, 1, 5, 5), r"trimap must have the same shape as pred"),
        (GOOD, GOOD, torch.zeros(2, 5, 6), r"trimap must have shape \(B, 1, H, W\)"),
        (GOOD, GOOD, torch.zeros(2, 1, 5, 6, dtype=torch.bool), r"trimap must hold"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_argument(pred, target, trimap, match):
    for metric in (SAD(), MSE(), GradientError(), ConnectivityError()):
        with pytest.raises(ValueError, match=match):
            metric.update(pred, target, trimap)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"pred must be a torch\.Tensor"):
        SAD().update(np.zeros((1, 1, 4, 4)), GOOD[:1, :, :4, :4])


def test_inputs_are_not_modified():
    pred = torch.rand(2, 1, 5, 6, dtype=torch.float64)
    target = torch.rand(2, 1, 5, 6, dtype=torch.float64)
    copies = pred.clone(), target.clone()
    matting_metrics("dim").update(pred, target)
    assert torch.equal(pred, copies[0]) and torch.equal(target, copies[1])


def test_presets_are_traceable():
    assert set(PRESETS) == {"dim", "zim", "sdmatte"}
    for name, preset in PRESETS.items():
        assert preset.name == name and preset.reproduces
        assert SAD(preset=name).preset is preset
    assert SAD().preset is DIM
    with pytest.raises(ValueError, match="preset must be one of"):
        SAD(preset="matlab")
    custom = MattingPreset(
        "custom", "whole_image", "sobel", "largest_foreground", "row_major", 1, 1, ""
    )
    assert resolve_preset(custom) is custom


def test_matting_metrics_collection_keys_and_prefix():
    metrics = matting_metrics("zim", prefix="val/")
    assert set(metrics.keys()) == {f"val/{name}" for name in ("SAD", "MSE", "MAD", "Grad", "Conn")}
    assert all(metric.preset.name == "zim" for metric in metrics.values())


def test_collection_is_not_fooled_by_equal_states_after_the_first_batch():
    # After a perfect first batch every state is 0; torchmetrics' compute groups would merge
    # the five metrics and update only one of them afterwards.
    metrics = matting_metrics("dim")
    metrics.update(GOOD, GOOD)
    pred = GOOD.clone()
    pred[:, :, 0, 0] = 1.0
    metrics.update(pred, GOOD)
    values = {name: float(value) for name, value in metrics.compute().items()}
    # Second batch: an error of 0.5 on one of 30 pixels per sample; 2 of the 4 samples.
    assert values["SAD"] == pytest.approx((0 + 0 + 0.0005 + 0.0005) / 4)
    assert values["MSE"] == pytest.approx(0.25 / 30 / 2)
    assert values["MAD"] == pytest.approx(0.5 / 30 / 2)


def test_empty_unknown_region_counts_for_sums_and_is_skipped_for_means(caplog):
    warn_once.cache_clear()
    pred, target = GOOD[:1].clone(), GOOD[:1].clone()
    pred[..., 0, 0] = 1.0  # an error of 0.5, but in a known pixel
    all_known = torch.full((1, 1, 5, 6), 255, dtype=torch.uint8)
    one_unknown = all_known.clone()
    one_unknown[..., 0, 0] = 128
    metrics = {cls.__name__: cls() for cls in (SAD, MSE, MAD, GradientError, ConnectivityError)}
    with caplog.at_level(logging.WARNING):
        for metric in metrics.values():
            metric.update(pred, target, all_known)  # U empty
            metric.update(pred, target, one_unknown)  # U = the one wrong pixel
    assert float(metrics["SAD"].compute()) == pytest.approx(0.0005 / 2)  # (0 + 0.5/1000) / 2
    assert metrics["SAD"].num_samples == 2
    assert float(metrics["MSE"].compute()) == pytest.approx(0.25)  # only the second sample
    assert float(metrics["MAD"].compute()) == pytest.approx(0.5)
    assert metrics["MSE"].num_samples == 1 and metrics["GradientError"].num_samples == 2
    assert sum("empty evaluation region" in r.message for r in caplog.records) == 2  # MSE, MAD

    only_empty = MSE()
    only_empty.update(pred, target, all_known)
    assert torch.isnan(only_empty.compute())


def test_whole_image_presets_log_once_that_the_trimap_is_ignored(caplog):
    warn_once.cache_clear()
    trimap = torch.full((2, 1, 5, 6), 128, dtype=torch.uint8)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            matting_metrics("zim").update(GOOD, GOOD, trimap)
    messages = [
        r.message for r in caplog.records if "trimap passed to update() is ignored" in r.message
    ]
    assert len(messages) == 1 and "'zim'" in messages[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_give_the_cpu_result():
    from metric_cases import random_case

    pred, gt, trimap = random_case(0)
    batch = [as_batch(pred), as_batch(gt), as_batch(trimap, dtype=torch.uint8)]
    cpu = matting_metrics("dim")
    cpu.update(*batch)
    cuda = matting_metrics("dim").to("cuda")
    cuda.update(*(tensor.cuda() for tensor in batch))
    for name, value in cpu.compute().items():
        assert float(cuda.compute()[name]) == pytest.approx(float(value), rel=1e-12)
