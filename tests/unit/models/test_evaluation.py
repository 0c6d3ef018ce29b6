"""Validation scores predictions at each image's stored size against the stored GT."""

import cv2
import numpy as np
import pytest
import torch
from lightning import Trainer
from torch import nn

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.folders import ImageAlphaFolder
from mattekit.models.base import MattingModule


class GroundTruthOracle(MattingModule):
    """Predicts the network-size GT: any error it gets comes from evaluation, not the model."""

    def configure_models(self) -> None:
        self.model = nn.Linear(1, 1)

    def configure_losses(self) -> dict:
        return {}

    def forward(self, batch):
        return {"alpha": batch.alpha + 0 * self.model.weight.sum()}


def validate(data, root, **kwargs):
    """Validation results of the oracle; run files (metric tables, grids) go under ``root``."""
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    return trainer.validate(GroundTruthOracle(**kwargs), data, verbose=False)[0]


def test_same_size_scores_exactly_zero(tmp_path):
    data = MattingDataModule(image_size=32, batch_size=4, num_workers=0, synthetic_eval_samples=4)
    results = validate(data, tmp_path / "runs")
    assert all(results[f"val/{name}"] == 0 for name in ("SAD", "MSE", "MAD", "Grad", "Conn"))


def test_metrics_use_the_stored_resolution(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "alpha").mkdir()
    yy, xx = np.mgrid[:90, :120]
    alpha = np.clip(30 - np.hypot(xx - 60, yy - 45), 0, 1) * 255  # soft disc, 1 px edge
    cv2.imwrite(str(tmp_path / "image/a.png"), np.full((90, 120, 3), 80, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha/a.png"), alpha.astype(np.uint8))
    source = ImageAlphaFolder(str(tmp_path))
    data = MattingDataModule(val=source, image_size=32, batch_size=1, num_workers=0)

    stored = validate(data, tmp_path / "stored", eval_with_trimap=False)
    network = validate(
        data, tmp_path / "network", eval_with_trimap=False, eval_at_original_size=False
    )
    assert network["val/SAD"] == 0  # the oracle is exact at the network size...
    # ...but at 90 x 120 the 32 px prediction's edge is blurred: SAD counts the stored pixels.
    assert stored["val/SAD"] > 0.05
    assert stored["val/SAD"] == pytest.approx(stored["val/MAD"] * 90 * 120 / 1000, rel=1e-6)


def test_letterbox_scores_the_content_only(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "alpha").mkdir()
    yy, xx = np.mgrid[:90, :120]
    alpha = np.clip(30 - np.hypot(xx - 60, yy - 45), 0, 1) * 255
    cv2.imwrite(str(tmp_path / "image/a.png"), np.full((90, 120, 3), 80, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha/a.png"), alpha.astype(np.uint8))
    source = ImageAlphaFolder(str(tmp_path))
    letterbox = MattingDataModule(val=source, image_size=32, num_workers=0, resize="letterbox")
    item = letterbox.dataset("val")[0]
    assert item["content_size"].tolist() == [24, 32]  # 90 x 120 scaled by 32 / 120
    assert item["image"][:, 24:].abs().sum() == 0  # padding at the bottom

    stretched = MattingDataModule(val=source, image_size=32, num_workers=0)
    letterboxed = validate(letterbox, tmp_path / "letterbox", eval_with_trimap=False)["val/SAD"]
    stretch = validate(stretched, tmp_path / "stretch", eval_with_trimap=False)["val/SAD"]
    # Both only lose the edge to resampling; scoring the padding would add about 2.8 (SAD of
    # the disc) instead.
    assert 0 < letterboxed < 2 * stretch + 0.1


def test_size_breakdown_buckets_by_object_size():
    from mattekit.models.evaluation import StageMetrics

    metrics = StageMetrics("test", "zim", size_breakdown=True)
    targets = torch.zeros(3, 1, 100, 100)
    targets[0, :, :5, :5] = 1  # 0.25 % of the image above 0.3: small
    targets[1, :, :20, :20] = 1  # 4 %: medium
    targets[2, :, :50] = 1  # 50 %: large
    predictions = targets.clone()
    predictions[2] = 0  # only the large one is wrong: SAD = 5000 / 1000
    pairs = [(predictions[i : i + 1], targets[i : i + 1], None) for i in range(3)]
    metrics.update(iter(pairs), iter(pairs))
    values, rows = metrics.compute("ZIM", sanity_check=False)
    labels = [row["model"] for row in rows]
    assert labels == [
        "ZIM",
        "ZIM [S, n=1]",
        "ZIM [M, n=1]",
        "ZIM [L, n=1]",
        "box as alpha (reference)",
    ]
    assert values["test/S/SAD"] == 0 and values["test/M/SAD"] == 0
    assert values["test/L/SAD"] == pytest.approx(5.0)
    assert values["test/SAD"] == pytest.approx(5.0 / 3)
