"""Uploads are read by mattekit's own reader, never by Gradio: too many pixels or bytes that are
no image are refused with a message on the page, and photos come as displayed (EXIF)."""

import contextlib
import io

import cv2
import numpy as np
import pytest
from PIL import Image

import mattekit.data.io
from mattekit.data.io import MAX_PIXELS_VARIABLE
from mattekit.demo.app import DemoActions, demo_main
from mattekit.demo.sessions import SessionStore
from mattekit.inference.checkpoint_model import CheckpointModel

NOTHING = (None, None, None, None)


def test_a_photo_over_the_pixel_limit_is_refused_undecoded(zim_actions, photo_file, monkeypatch):
    path = photo_file(np.zeros((40, 50, 3), np.uint8), "huge.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "1000")
    decoded = []
    decode = cv2.imdecode
    monkeypatch.setattr(
        mattekit.data.io.cv2, "imdecode", lambda *a: decoded.append(1) or decode(*a)
    )
    _, shown = zim_actions.upload("page", path)
    assert shown[:4] == NOTHING and decoded == []
    assert shown[4].startswith("huge.png: 50 x 40 pixels, more than the 1000 allowed")
    assert str(path) not in shown[4]  # the server's upload folder is not shown
    assert "page" not in zim_actions.sessions


def test_bytes_that_are_no_image_are_refused_with_a_message(zim_actions, tmp_path):
    junk = tmp_path / "holiday.jpg"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    _, shown = zim_actions.upload("page", str(junk))
    assert shown[:4] == NOTHING and shown[4].startswith("holiday.jpg: ")


def test_a_new_upload_that_fails_forgets_the_previous_photo(zim_actions, photo_file, tmp_path):
    state, _ = zim_actions.upload("page", photo_file(np.zeros((48, 64, 3), np.uint8), "ok.png"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    zim_actions.upload("page", str(tmp_path / "bad.png"))
    _, shown = zim_actions.click("page", state, "positive click", 3, 3)
    assert shown[:4] == NOTHING and shown[4].startswith("upload a photo first")


def test_a_rotated_jpeg_comes_back_as_displayed(zim_actions, tmp_path):
    stored = np.full((64, 96, 3), 40, np.uint8)  # 96 wide, 64 high as stored
    stored[:16, :16] = (250, 30, 30)  # a red top-left corner, stored
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the corner at the top right
    path = tmp_path / "portrait.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    state, (photo, *_) = zim_actions.upload("page", str(path))
    assert photo.shape == (96, 64, 3)
    assert photo[4, 58, 0] > 200 and photo[4, 58, 2] < 80 and photo[90, 4, 0] < 80
    _, (photo, alpha, rgba, download, _) = zim_actions.click("page", state, "positive click", 9, 80)
    assert photo.shape == (96, 64, 3) and alpha.shape == (96, 64) and rgba.shape == (96, 64, 4)
    assert cv2.imread(download, cv2.IMREAD_UNCHANGED).shape == (96, 64, 4)


def test_a_mask_over_the_pixel_limit_is_refused_with_a_message(
    tiny_checkpoint, photo_file, tmp_path, monkeypatch
):
    runner = CheckpointModel(tiny_checkpoint("zim_converter"))
    actions = DemoActions(SessionStore(runner, tmp_path / "downloads"))
    actions.upload("page", photo_file(np.zeros((40, 50, 3), np.uint8), "photo.png"))
    mask = photo_file(np.full((40, 50, 3), 255, np.uint8), "mask.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "1000")
    _, shown = actions.upload_prompt("page", "mask", mask)
    assert shown[1:4] == (None, None, None) and shown[0].shape == (40, 50, 3)
    assert (
        shown[4] == "mask mask.png: mask.png: 50 x 40 pixels, more than the 1000 allowed; "
        f"set {MAX_PIXELS_VARIABLE} to read larger files"
    )
    monkeypatch.delenv(MAX_PIXELS_VARIABLE)
    _, shown = actions.upload_prompt("page", "mask", mask)
    assert shown[1].shape == (40, 50)  # the same mask within the limit prompts


def run_demo_main(argv: list[str], monkeypatch) -> dict:
    """``demo_main(argv)`` with Gradio's ``launch`` recorded instead of serving."""
    import gradio as gr

    launched: dict = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    assert demo_main(argv) == 0
    return launched


def test_uploads_are_limited_in_bytes(tiny_checkpoint, monkeypatch):
    checkpoint = str(tiny_checkpoint("zim"))
    launched = run_demo_main(["--ckpt_path", checkpoint], monkeypatch)
    assert launched["max_file_size"] == 50 * 1024**2
    launched = run_demo_main(["--ckpt_path", checkpoint, "--max_file_size", "512kb"], monkeypatch)
    assert launched["max_file_size"] == 512 * 1024


@pytest.mark.parametrize("argv", [["--max_file_size", "lots"], ["--max_sessions", "0"]])
def test_bad_limits_are_refused_naming_the_argument(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo_main(["--ckpt_path", str(tmp_path / "x.ckpt"), *argv])
    assert exit_info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_help_describes_the_demo_in_a_whole_sentence():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        demo_main(["--help"])
    text = " ".join(out.getvalue().split())
    assert ("The demo page: upload a photo, click (or draw a box, or type text), see the alpha "
            "and the cut-out, download the RGBA PNG.") in text  # fmt: skip
