"""MattingDataModule: source clicks reach the batch whole, evaluation size, stage names."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mattekit.data.datamodule import MattingDataModule
from mattekit.data.folders import ImageAlphaFolder
from mattekit.data.micromat import MicroMatFolder
from mattekit.data.sample import collate_samples


def disc(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return ((np.hypot(xx - width / 2, yy - height / 2) < min(height, width) / 3) * 255).astype(
        np.uint8
    )


def make_micromat(root: Path, clicks: dict[str, list[list[float]]]) -> MicroMatFolder:
    """One 40 x 60 image, one object per entry of ``clicks``, each json padded to 50 with -1."""
    for folder in ("img", "matte/fine", "prompt/fine"):
        (root / folder).mkdir(parents=True)
    cv2.imwrite(str(root / "img/0001.png"), np.full((40, 60, 3), 90, np.uint8))
    lines = []
    for stem, points in clicks.items():
        cv2.imwrite(str(root / f"matte/fine/{stem}.png"), disc(40, 60))
        padded = points + [[-1, -1, -1]] * (50 - len(points))
        prompt = {"point": padded, "bbox": [10, 5, 50, 35]}
        (root / f"prompt/fine/{stem}.json").write_text(json.dumps(prompt))
        lines.append(f"img/0001.png matte/fine/{stem}.png prompt/fine/{stem}.json seg/fine/x")
    (root / "data_list.txt").write_text("\n".join(lines) + "\n")
    return MicroMatFolder(str(root))


def test_twelve_source_clicks_reach_the_batch_whole(tmp_path):
    twelve = [[20 + 2 * k, 20, 1] for k in range(9)] + [[1, 1, 0], [58, 38, 0], [1, 38, 0]]
    source = make_micromat(tmp_path, {"0001_01": twelve, "0001_02": [[30, 20, 1]]})
    # Stretch 40 x 60 -> 40 x 60: coordinates stay as in the json.
    data = MattingDataModule(test=source, image_size=(40, 60), num_workers=0)
    dataset = data.dataset("test")
    many, one = dataset[0], dataset[1]
    assert many["point_labels"].tolist() == [1] * 9 + [0] * 3  # not truncated to 7
    np.testing.assert_allclose(many["points"].numpy(), np.array(twelve)[:, :2])
    assert one["point_labels"].tolist() == [1] + [-1] * 6  # padded to max_points = 7

    batch = collate_samples([one, many])
    assert batch.points.shape == (2, 12, 2) and batch.point_labels.shape == (2, 12)
    assert batch.point_labels[0].tolist() == [1] + [-1] * 11
    assert batch.points[0, 1:].abs().sum() == 0  # padding at (0, 0)
    assert torch.equal(batch.point_labels[1], many["point_labels"])
    assert torch.equal(batch.points[1], many["points"])


def test_eval_image_size_serves_val_test_and_predict(tmp_path):
    data = MattingDataModule(
        image_size=32, eval_image_size=48, num_workers=0, synthetic_eval_samples=2
    )
    assert data.dataset("train")[0]["image"].shape == (3, 32, 32)
    for stage in ("val", "test", "predict"):
        assert data.dataset(stage)[0]["image"].shape == (3, 48, 48), stage
    # Synthetic held-out scenes are rendered at the evaluation size, not upsampled.
    assert data.sources["val"][0].image_size == (48, 48)
    assert data.sources["train"][0].image_size == (32, 32)

    (tmp_path / "image").mkdir()
    (tmp_path / "alpha").mkdir()
    cv2.imwrite(str(tmp_path / "image/a.png"), np.full((30, 50, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha/a.png"), disc(30, 50))
    folder = MattingDataModule(
        test=ImageAlphaFolder(str(tmp_path)), image_size=24, eval_image_size=(32, 48)
    )
    assert folder.dataset("test")[0]["image"].shape == (3, 32, 48)


def test_eval_image_size_defaults_to_the_training_size():
    data = MattingDataModule(image_size=24, num_workers=0, synthetic_eval_samples=1)
    assert data.eval_image_size == data.image_size == (24, 24)
    assert data.dataset("val")[0]["image"].shape == (3, 24, 24)


@pytest.mark.parametrize("seed", [0, 100])
def test_default_test_scenes_are_named_for_the_test_stage_and_unchanged(seed):
    data = MattingDataModule(image_size=32, num_workers=0, synthetic_eval_samples=3, seed=seed)
    assert [s.name for s in data.sources["test"]] == ["synthetic_test"]
    assert [s.name for s in data.sources["val"]] == ["synthetic_val"]
    assert data.sources["predict"] is data.sources["test"]
    # Before the rename the test stage drew the validation source itself: the scenes and prompts
    # a recorded test used are the validation ones of the same seed, bit for bit.
    val, test = data.dataset("val"), data.dataset("test")
    for index in range(3):
        expected, got = val[index], test[index]
        assert got["source"] == "synthetic_test"
        assert got["sample_id"] == expected["sample_id"].replace("synthetic_val", "synthetic_test")
        assert got["sample_id"].startswith(f"synthetic_test/s{seed + 1}/")
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(got[key], value), key


def test_a_given_validation_source_is_still_the_default_test_source(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "alpha").mkdir()
    cv2.imwrite(str(tmp_path / "image/a.png"), np.full((20, 20, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "alpha/a.png"), disc(20, 20))
    source = ImageAlphaFolder(str(tmp_path))
    data = MattingDataModule(val=source, image_size=24, num_workers=0)
    assert data.sources["test"] == [source] and data.sources["predict"] == [source]


@pytest.mark.parametrize("config", ["micromat3k.yaml", "micromat3k_coarse.yaml"])
def test_micromat_configs_evaluate_with_sams_letterbox_at_1024(config):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(MattingDataModule, "data")
    path = Path(__file__).parents[3] / "configs" / "data" / config
    data = parser.parse_path(str(path)).data  # parsed, not built: the data set is not here
    assert data.resize == "letterbox" and data.eval_image_size == 1024
    assert data.test.class_path == "mattekit.data.micromat.MicroMatFolder"
    assert data.prompts.use_source_prompts is True


def test_a_schedule_entry_may_draw_among_sources():
    from mattekit.data.synthetic import SyntheticSource

    sources = [SyntheticSource(8, 32, seed=i, name=name) for i, name in enumerate("abc")]
    data = MattingDataModule(
        train=sources, schedule=["a", "b|c"], batch_size=2, steps_per_epoch=4, num_workers=0
    )
    data.setup("fit")
    assert data.train_dataloader().draws.batches.schedule == [(0,), (1, 2)]
    bad = MattingDataModule(train=sources, schedule=["a|z"], num_workers=0)
    bad.setup("fit")
    with pytest.raises(ValueError, match=r"unknown sources \['z'\]"):
        bad.train_dataloader()
