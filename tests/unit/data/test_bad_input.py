"""Issue 2, section 7: every kind of bad input gets a clear error naming it, or a logged handling.

Each case goes through the shared pipeline (``MattingDataset``) as a user's data would.
"""

import json
import logging

import cv2
import numpy as np
import pytest

from mattekit.data.dataset import MattingDataset
from mattekit.data.folders import ImageAlphaFolder
from mattekit.data.micromat import MicroMatFolder
from mattekit.data.prompts import EmptyAlphaError, PromptConfig, PromptSampler
from mattekit.data.transforms import MattingTransform


def pipeline(source, **prompt_args):
    sampler = PromptSampler(PromptConfig(**prompt_args))
    return MattingDataset(source, MattingTransform((32, 32), train=False), sampler, train=False)


def write_pair(root, stem, alpha, image_size=None):
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "alpha").mkdir(parents=True, exist_ok=True)
    height, width = image_size or alpha.shape
    cv2.imwrite(str(root / "image" / f"{stem}.png"), np.full((height, width, 3), 90, np.uint8))
    cv2.imwrite(str(root / "alpha" / f"{stem}.png"), alpha)


def disc(size=40):
    yy, xx = np.mgrid[:size, :size]
    return ((np.hypot(xx - 20, yy - 20) < 8) * 255).astype(np.uint8)


def test_missing_image_names_the_file(tmp_path):
    write_pair(tmp_path, "a", disc())
    source = ImageAlphaFolder(str(tmp_path))
    (tmp_path / "image" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a\.png"):
        pipeline(source)[0]


def test_corrupt_image_names_the_file(tmp_path):
    write_pair(tmp_path, "a", disc())
    (tmp_path / "image" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"a\.png"):
        pipeline(ImageAlphaFolder(str(tmp_path)))[0]


def test_alpha_of_the_wrong_size_names_both_files(tmp_path):
    write_pair(tmp_path, "a", disc(40), image_size=(40, 41))
    with pytest.raises(ValueError, match=r"image.*a\.png.*alpha.*a\.png|alpha.*a\.png.*image"):
        pipeline(ImageAlphaFolder(str(tmp_path)))[0]


@pytest.mark.parametrize("train", [False, True])
def test_empty_alpha_names_the_sample_and_the_cause(tmp_path, train):
    """An all-zero stored matte is named as such, in training too (not blamed on augmentation)."""
    write_pair(tmp_path, "blank", np.zeros((40, 40), np.uint8))
    transform = MattingTransform((32, 32), train=train)
    dataset = MattingDataset(ImageAlphaFolder(str(tmp_path)), transform, PromptSampler(), train)
    with pytest.raises(EmptyAlphaError) as error:
        dataset[0]
    message = str(error.value)
    assert "blank" in message and "stored matte is all zero" in message
    assert "augmentation" not in message and "sample 0 of source" in message


def micromat(tmp_path, prompt):
    for folder in ("img", "matte/fine", "prompt/fine"):
        (tmp_path / folder).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "img/s.png"), np.full((40, 40, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "matte/fine/s.png"), disc())
    (tmp_path / "prompt/fine/s.json").write_text(json.dumps(prompt))
    (tmp_path / "data_list.txt").write_text("img/s.png matte/fine/s.png prompt/fine/s.json x\n")
    return MicroMatFolder(str(tmp_path))


def test_box_partly_outside_is_clipped_and_logged(tmp_path, caplog):
    source = micromat(tmp_path, {"point": [[20, 20, 1]], "bbox": [10, 10, 90, 30]})
    with caplog.at_level(logging.WARNING):
        item = pipeline(source)[0]
    assert "s" in caplog.text and "clip" in caplog.text.lower()
    assert item["box"][2] <= 31  # inside the 32 px network input


def test_box_entirely_outside_names_the_file(tmp_path):
    source = micromat(tmp_path, {"point": [[20, 20, 1]], "bbox": [50, 50, 90, 90]})
    with pytest.raises(ValueError, match=r"s\.json"):
        pipeline(source)[0]


def test_zero_points_are_sampled_from_the_alpha(tmp_path, caplog):
    source = micromat(tmp_path, {"point": [[-1, -1, -1]] * 3, "bbox": [10, 10, 30, 30]})
    with caplog.at_level(logging.DEBUG, logger="mattekit.data.prompts"):
        item = pipeline(source, positive_points=(2, 2), negative_points=(0, 0))[0]
    assert "no clicks" in caplog.text
    assert (item["point_labels"] == 1).sum() == 2
    assert item["point_map"].max() > 0.99
