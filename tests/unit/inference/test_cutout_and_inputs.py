"""Cut-outs keep the background's colour out of soft edges; inputs and prompts are gathered
from files, folders, globs and json files, with clear errors before anything runs."""

import json

import cv2
import numpy as np
import pytest

from mattekit.atomic_files import unit_to_uint8
from mattekit.inference.cutout import _rows_at, cutout
from mattekit.pipelines.matte import collect_images, prompts_for
from mattekit.prompts.user import UserPrompt


@pytest.mark.parametrize("max_pixels", [10**9, 24 * 64 // 9], ids=["full size", "a third"])
def test_the_cutout_removes_the_background_from_mixed_pixels(max_pixels):
    height, width = 24, 64
    alpha = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    foreground = np.array([220, 40, 30], np.float64) / 255  # red
    background = np.array([20, 60, 230], np.float64) / 255  # blue
    image = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    rgba = cutout(unit_to_uint8(image), alpha, max_pixels)
    assert rgba.dtype == np.uint8 and rgba.shape == (height, width, 4)
    assert np.array_equal(rgba[..., 3], unit_to_uint8(alpha))
    mixed = (alpha > 0.2) & (alpha < 0.8)
    estimated = rgba[..., :3][mixed] / 255
    photo_error = np.abs(image[mixed] - foreground).mean()
    cutout_error = np.abs(estimated - foreground).mean()
    assert photo_error > 0.2 and cutout_error < 0.05


def test_the_bounded_cutout_scales_rows_as_opencv_does_and_stays_near_the_full_one():
    rng = np.random.default_rng(0)
    wide = rng.random((7, 30, 3), dtype=np.float32)
    rows = np.arange(19)
    expected = cv2.resize(wide, (30, 19), interpolation=cv2.INTER_LINEAR)
    assert np.allclose(_rows_at(wide, rows, 19), expected, atol=1e-6)

    yy, xx = np.mgrid[:96, :128]
    alpha = np.clip(1.5 - np.hypot(xx - 64, yy - 48) / 20, 0, 1).astype(np.float32)
    image = alpha[..., None] * (200, 150, 40) + (1 - alpha[..., None]) * (20, 90, 200)
    image = (image + rng.normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)
    full, bounded = cutout(image, alpha), cutout(image, alpha, max_pixels=alpha.size // 4)
    assert np.array_equal(full[..., 3], bounded[..., 3])
    mixed = (alpha > 0.05) & (alpha < 0.95)
    difference = np.abs(full[..., :3].astype(int) - bounded[..., :3])[mixed].mean()
    photo_difference = np.abs(full[..., :3].astype(int) - image)[mixed].mean()
    assert difference < 6 < photo_difference


def write(path, shape=(8, 8, 3)):
    cv2.imwrite(str(path), np.zeros(shape, np.uint8))
    return path


def test_images_come_from_files_folders_and_globs_once(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    first, second = write(folder / "x.png"), write(folder / "y.jpg")
    third = write(tmp_path / "z.png")
    (folder / "notes.txt").write_text("not an image")
    images = collect_images([str(folder), str(third), str(tmp_path / "a" / "*.png")])
    assert images == [first.resolve(), second.resolve(), third.resolve()]
    with pytest.raises(FileNotFoundError, match=r"nothing\.png: no such image"):
        collect_images([str(tmp_path / "nothing.png")])
    other = tmp_path / "b"
    other.mkdir()
    write(other / "x.png")
    with pytest.raises(ValueError, match="share the stem 'x'"):
        collect_images([str(folder), str(other)])


def test_prompts_come_from_the_command_line_masks_or_json_beside_each_image(tmp_path):
    first, second = write(tmp_path / "x.png"), write(tmp_path / "y.png")
    given = UserPrompt(box=(0, 0, 4, 4))
    assert prompts_for([first, second], given) == [given, given]
    masks = tmp_path / "masks"
    masks.mkdir()
    write(masks / "x.png", (8, 8))
    with pytest.raises(FileNotFoundError, match=r"--mask .*masks: no mask for y\.png"):
        prompts_for([first, second], None, {"mask": masks})
    assert prompts_for([first], None, {"mask": masks})[0].mask == masks / "x.png"
    both = prompts_for([first], None, {"mask": masks, "trimap": masks / "x.png"})[0]
    assert (both.mask, both.trimap) == (masks / "x.png", masks / "x.png")
    empty = prompts_for([first, second], None)  # only a prompt-free family runs on these
    assert [p.kinds for p in empty] == [(), ()] and "no prompt" in empty[0].origin
    with pytest.raises(ValueError, match=r"x\.png \(no prompt.*the prompt has nothing"):
        empty[0].kind_for(("box", "points"))
    assert empty[0].kind_for(("box", "none")) == "none"
    assert UserPrompt(text="a cat").kind_for(("box", "none"), "none") == "none"
    for path in (first, second):
        path.with_suffix(".json").write_text(json.dumps({"bbox": [1, 1, 5, 5]}))
    assert [p.box for p in prompts_for([first, second], None)] == [(1, 1, 5, 5)] * 2
