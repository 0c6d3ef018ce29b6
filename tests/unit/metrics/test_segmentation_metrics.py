"""Segmentation metrics equal pysodmetrics run directly over the same (8-bit) samples."""

import warnings

import py_sod_metrics
import pytest
import torch

from mattekit.metrics import (
    BinaryIoU,
    MaxFMeasure,
    MeanEMeasure,
    SegmentationMAE,
    SMeasure,
    WeightedFMeasure,
    segmentation_metrics,
)


def _samples():
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(5, 1, 18, 23, generator=generator)
    pred[1] = pred[1] * 0.5 + 0.2  # not spanning [0, 1]: pysodmetrics min-max normalises it
    target = (torch.rand(5, 1, 18, 23, generator=generator) > 0.55).float()
    target[3] = 0  # no foreground: the special cases of S, E and weighted F
    target[4] = 1  # all foreground
    return pred, target


def _pysodmetrics_directly(pred, target) -> dict[str, float]:
    """The documented pysodmetrics usage over uint8 arrays, as read from PNGs."""
    pred_u8 = torch.round(pred[:, 0].double() * 255).to(torch.uint8).numpy()
    target_u8 = (target[:, 0] * 255).to(torch.uint8).numpy()
    fm = py_sod_metrics.FmeasureV2({"fm": py_sod_metrics.FmeasureHandler(True, False, beta=0.3)})
    iou = py_sod_metrics.FmeasureV2(
        {"iou": py_sod_metrics.IOUHandler(False, False, with_binary=True, sample_based=True)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy Fmeasure class is deprecated
        legacy_fm = py_sod_metrics.Fmeasure()
    em, wfm = py_sod_metrics.Emeasure(), py_sod_metrics.WeightedFmeasure()
    sm, mae = py_sod_metrics.Smeasure(), py_sod_metrics.MAE()
    for p, g in zip(pred_u8, target_u8, strict=True):
        for evaluator in (fm, iou, legacy_fm, em, wfm, sm, mae):
            evaluator.step(p, g)
    legacy_max_f = legacy_fm.get_results()["fm"]["curve"].max()
    assert fm.get_results()["fm"]["dynamic"].max() == pytest.approx(legacy_max_f, abs=1e-12)
    return {
        "maxF": fm.get_results()["fm"]["dynamic"].max(),
        "wF": wfm.get_results()["wfm"],
        "MAE": mae.get_results()["mae"],
        "Sm": sm.get_results()["sm"],
        "meanEm": em.get_results()["em"]["curve"].mean(),
        "IoU": iou.get_results()["iou"]["binary"],
    }


def test_collection_equals_pysodmetrics_over_the_same_samples():
    pred, target = _samples()
    metrics = segmentation_metrics()
    metrics.update(pred[:2], target[:2])
    metrics.update(pred[2:], target[2:])
    got = metrics.compute()
    for name, value in _pysodmetrics_directly(pred, target).items():
        assert float(got[name]) == pytest.approx(value, abs=1e-6), name


def test_single_metrics_and_prefix():
    pred, target = _samples()
    expected = _pysodmetrics_directly(pred, target)
    classes = {
        "maxF": MaxFMeasure,
        "wF": WeightedFMeasure,
        "MAE": SegmentationMAE,
        "Sm": SMeasure,
        "meanEm": MeanEMeasure,
        "IoU": BinaryIoU,
    }
    for name, metric_class in classes.items():
        metric = metric_class()
        metric.update(pred, target)
        assert float(metric.compute()) == pytest.approx(expected[name], abs=1e-6), name
    assert set(segmentation_metrics(prefix="test/").keys()) == {f"test/{k}" for k in classes}


def test_segmentation_inputs_are_checked():
    pred, target = _samples()
    with pytest.raises(ValueError, match="target must be binary"):
        MaxFMeasure().update(pred, target * 0.5)
    with pytest.raises(ValueError, match="pred has values outside"):
        SMeasure().update(pred + 1, target)
    with pytest.raises(ValueError, match="pred and target must have the same shape"):
        SegmentationMAE().update(pred[:, :, :5], target)


def test_perfect_prediction_scores():
    _, target = _samples()
    metric_values = segmentation_metrics()
    metric_values.update(target[:3], target[:3])
    got = {name: float(value) for name, value in metric_values.compute().items()}
    assert got["MAE"] == 0.0 and got["maxF"] == pytest.approx(1.0, abs=1e-6)
    assert got["IoU"] == 1.0 and got["Sm"] == pytest.approx(1.0, abs=1e-6)
