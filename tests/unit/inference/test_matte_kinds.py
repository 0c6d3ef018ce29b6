"""``mattekit matte`` runs every prompt kind a family takes: a trimap file or folder for a
trimap family, nothing at all for a prompt-free one."""

import json

import cv2
import numpy as np

from mattekit.data.io import read_image
from mattekit.pipelines.matte import matte_main


def write_photo(path, shape=(40, 56, 3)):
    photo = np.zeros(shape, np.uint8)
    photo[10:30, 15:40] = 220
    cv2.imwrite(str(path), photo)
    return path


def write_trimap(path, shape=(40, 56), unknown=(8, 32, 13, 42), known=(12, 28, 17, 38)):
    trimap = np.zeros(shape, np.uint8)
    trimap[unknown[0] : unknown[1], unknown[2] : unknown[3]] = 128
    trimap[known[0] : known[1], known[2] : known[3]] = 255
    cv2.imwrite(str(path), trimap)
    return path


def test_a_trimap_family_mattes_with_a_trimap_file_or_folder(tiny_checkpoint, tmp_path):
    checkpoint = str(tiny_checkpoint("vitmatte"))
    photos, trimaps = tmp_path / "photos", tmp_path / "trimaps"
    photos.mkdir(), trimaps.mkdir()
    for stem in ("a", "b"):
        write_photo(photos / f"{stem}.png")
    write_trimap(trimaps / "a.png")
    write_trimap(trimaps / "b.png", known=(14, 26, 20, 35))
    out = tmp_path / "out"
    argv = [str(photos), "--ckpt_path", checkpoint, "--image_size", "32", "--output_dir", str(out)]
    assert matte_main([*argv, "--trimap", str(trimaps)]) == 0
    first, second = (read_image(out / f"{stem}_alpha.png") for stem in ("a", "b"))
    assert first.shape[:2] == (40, 56) and not np.array_equal(first, second)
    record = json.loads((out / "a.inputs.json").read_text())
    assert record["kind"] == "trimap" and record["prompt"]["trimap_sha256"]


def test_a_prompt_free_family_mattes_without_a_prompt(tiny_checkpoint, tmp_path):
    path = tiny_checkpoint("baseline")  # the baseline takes ``none`` too: automatic matting
    photo = write_photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    argv = [str(photo), "--ckpt_path", str(path), "--image_size", "32", "--output_dir", str(out)]
    assert matte_main(argv) == 0
    assert read_image(out / "photo_alpha.png").shape[:2] == (40, 56)
    assert json.loads((out / "photo.inputs.json").read_text())["kind"] == "none"
