"""``mattekit matte`` at its edges (issue 23): photos as displayed (EXIF orientation), outputs
tied to the inputs that made them, photos too small to matte, prompts that point outside the
photo or the prompt file's folder, links, and prompts with more kinds than one run uses."""

import json
import logging

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from mattekit.data.io import read_image, read_photo
from mattekit.errors import UsageError
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.cutout import cutout
from mattekit.pipelines.matte import collect_images, matte_images, prompts_for
from mattekit.prompts.user import UserPrompt, read_prompt_file

ORIENTATION = 0x0112


def phone_photo(path, orientation: int, stored=(64, 96)):
    """A JPEG stored ``stored`` (rows, columns) with an EXIF orientation; its left half is
    bright, so every turn is told apart."""
    pixels = np.full((*stored, 3), 30, np.uint8)
    pixels[: stored[0] // 2, : stored[1] // 3] = 230
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_photos_are_read_as_a_viewer_displays_them(tmp_path, orientation):
    path = phone_photo(tmp_path / "phone.jpg", orientation)
    with Image.open(path) as image:
        displayed = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert np.array_equal(read_photo(path), displayed)
    assert read_image(path).shape == (64, 96, 3)  # data set readers keep the stored order


@pytest.fixture(scope="module")
def zim(tmp_path_factory, save_checkpoint):
    return CheckpointModel(save_checkpoint("zim", tmp_path_factory.mktemp("ckpt")), "cpu")


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_outputs_are_in_the_displayed_orientation(zim, tmp_path, orientation):
    photo = phone_photo(tmp_path / "phone.jpg", orientation)
    shown = read_photo(photo)
    # A box in displayed pixels that would be clipped in stored ones (for 6 and 8).
    box = (2, 2, shown.shape[1] - 3, shown.shape[0] - 3)
    matte_images(zim, [(photo, UserPrompt(box=box))], tmp_path / "out", progress=False)
    alpha = cv2.imread(str(tmp_path / "out" / "phone_alpha.png"), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(tmp_path / "out" / "phone_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == shown.shape[:2] and rgba.shape == (*shown.shape[:2], 4)
    # The cut-out's colours are those of the photo as displayed (the bright block moved).
    expected = cutout(shown, alpha / np.float32(255))
    assert np.abs(rgba[..., 2::-1].astype(int) - expected[..., :3]).mean() < 6


def write_photo(path, shape=(40, 56, 3)):
    cv2.imwrite(str(path), np.full(shape, 120, np.uint8))
    return path


def test_a_rerun_with_another_prompt_refuses_then_replaces(zim, tmp_path):
    photo, out = write_photo(tmp_path / "cat.png"), tmp_path / "out"
    first = UserPrompt(box=(5, 5, 30, 30))
    assert matte_images(zim, [(photo, first)], out, progress=False).matted == 1
    record = json.loads((out / "cat.inputs.json").read_text())
    assert record["prompt"]["box"] == [5, 5, 30, 30] and record["kind"] == "box"
    assert record["checkpoint_sha256"] == zim.sha256 and "mattekit" in record
    before = (out / "cat_alpha.png").read_bytes()

    again = matte_images(zim, [(photo, first)], out, progress=False)
    assert (again.matted, again.skipped) == (0, 1)  # the same inputs: done
    other = UserPrompt(box=(20, 10, 50, 38))
    with pytest.raises(UsageError, match=r"cat_alpha\.png was made from other inputs .*box"):
        matte_images(zim, [(photo, other)], out, progress=False)
    assert (out / "cat_alpha.png").read_bytes() == before
    replaced = matte_images(zim, [(photo, other)], out, progress=False, overwrite=True)
    assert replaced.matted == 1
    assert json.loads((out / "cat.inputs.json").read_text())["prompt"]["box"] == [20, 10, 50, 38]

    cv2.imwrite(str(photo), np.full((40, 56, 3), 9, np.uint8))
    with pytest.raises(UsageError, match="photo_sha256"):  # the same name, another photo
        matte_images(zim, [(photo, other)], out, progress=False)


def test_outputs_without_a_record_are_not_taken_as_done(zim, tmp_path):
    photo, out = write_photo(tmp_path / "cat.png"), tmp_path / "out"
    out.mkdir()
    (out / "cat_alpha.png").write_bytes(b"an older run's")
    with pytest.raises(UsageError, match="no record of its inputs"):
        matte_images(zim, [(photo, UserPrompt(box=(5, 5, 30, 30)))], out, progress=False)


def test_a_killed_run_leaves_no_output_taken_as_done(zim, tmp_path):
    photo, out = write_photo(tmp_path / "cat.png"), tmp_path / "out"
    prompt = UserPrompt(box=(5, 5, 30, 30))
    matte_images(zim, [(photo, prompt)], out, progress=False)
    (out / "cat_cutout.png").unlink()  # as if killed between the two writes
    assert matte_images(zim, [(photo, prompt)], out, progress=False).matted == 1
    assert (out / "cat_cutout.png").exists()


def test_a_photo_too_small_to_matte_is_an_error_and_writes_nothing(zim, tmp_path):
    photo = write_photo(tmp_path / "dot.png", (1, 1, 3))
    with pytest.raises(ValueError, match=r"dot\.png: a 1 x 1 photo; .* at least 8 x 8"):
        matte_images(zim, [(photo, UserPrompt(points=((0, 0, 1),)))], tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_click_outside_the_photo_is_an_error(zim, tmp_path):
    photo = write_photo(tmp_path / "cat.png")
    with pytest.raises(ValueError, match=r"the click at \(56, 3\) lies outside the 56 x 40"):
        matte_images(zim, [(photo, UserPrompt(points=((56, 3, 1),)))], tmp_path / "o")


def test_a_prompt_file_names_masks_in_its_own_folder_only(tmp_path):
    (tmp_path / "shots").mkdir()
    prompt_file = tmp_path / "shots" / "cat.json"
    for escape in ("../secret.png", "/etc/passwd"):
        prompt_file.write_text(json.dumps({"mask": escape}))
        with pytest.raises(ValueError, match=r"cat\.json: 'mask' .* leaves the json's folder"):
            read_prompt_file(prompt_file)
    (tmp_path / "secret.png").write_bytes(b"")
    (tmp_path / "shots" / "link.png").symlink_to(tmp_path / "secret.png")
    prompt_file.write_text(json.dumps({"mask": "link.png"}))
    with pytest.raises(ValueError, match="leaves the json's folder"):
        read_prompt_file(prompt_file)
    prompt_file.write_text(json.dumps({"mask": "masks/cat.png"}))
    assert read_prompt_file(prompt_file).mask == tmp_path / "shots" / "masks" / "cat.png"


def test_a_linked_photo_is_prompted_and_named_by_its_link(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "shots").mkdir()
    target = write_photo(tmp_path / "store" / "IMG_0001.png")
    link = tmp_path / "shots" / "cat.png"
    link.symlink_to(target)
    (tmp_path / "shots" / "cat.json").write_text(json.dumps({"bbox": [1, 1, 20, 20]}))
    images = collect_images([str(tmp_path / "shots"), str(target)])
    assert images == [link]  # one file, named by the first way it was given
    assert prompts_for(images, None)[0].box == (1, 1, 20, 20)


def test_a_prompt_with_two_kinds_says_which_is_run(zim, tmp_path, caplog):
    photo = write_photo(tmp_path / "cat.png")
    prompt = UserPrompt(points=((10, 10, 1),), box=(5, 5, 30, 30))
    with caplog.at_level(logging.WARNING, logger="mattekit"):
        matte_images(zim, [(photo, prompt)], tmp_path / "out", progress=False)
    assert "box is run and points left unused" in caplog.text
