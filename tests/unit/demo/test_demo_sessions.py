"""Each browser page keeps its own photo, features and download; pages are bounded in number
and expire when idle; one checkpoint serves them all."""

import threading

import cv2
import numpy as np
import pytest

from mattekit.atomic_files import unit_to_uint8
from mattekit.demo.sessions import SessionStore
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.interactive import InteractiveSession
from mattekit.prompts.user import UserPrompt

RED, BLUE = (255, 0, 0), (0, 0, 255)


def solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.full((height, width, 3), colour, np.uint8)


def test_two_pages_get_their_own_photo_alpha_and_download(zim_actions, photo_file):
    red, blue = photo_file(solid(64, 80, RED), "red.png"), photo_file(solid(48, 64, BLUE), "b.png")
    state_a, (shown_a, *_) = zim_actions.upload("page-a", red)
    # B uploads between A's upload and A's click: A must still matte its own photo.
    state_b, (shown_b, *_) = zim_actions.upload("page-b", blue)
    assert shown_a.shape == (64, 80, 3) and shown_b.shape == (48, 64, 3)
    _, (photo_a, alpha_a, rgba_a, path_a, _) = zim_actions.click(
        "page-a", state_a, "positive click", 30, 20
    )
    _, (photo_b, alpha_b, rgba_b, path_b, _) = zim_actions.click(
        "page-b", state_b, "positive click", 30, 20
    )
    assert photo_a.shape == (64, 80, 3) and tuple(photo_a[5, 5]) == RED
    assert photo_b.shape == (48, 64, 3) and tuple(photo_b[5, 5]) == BLUE
    assert alpha_a.shape == (64, 80) and rgba_a.shape == (64, 80, 4)
    assert alpha_b.shape == (48, 64) and rgba_b.shape == (48, 64, 4)
    assert path_a != path_b
    written_a = cv2.imread(path_a, cv2.IMREAD_UNCHANGED)
    written_b = cv2.imread(path_b, cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written_a[..., 3], alpha_a) and np.array_equal(written_b[..., 3], alpha_b)
    sessions = zim_actions.sessions
    for photo, alpha in ((solid(64, 80, RED), alpha_a), (solid(48, 64, BLUE), alpha_b)):
        lone = InteractiveSession(sessions.runner)  # what a page alone with this photo gets
        lone.set_image(photo)
        expected = unit_to_uint8(lone.predict(UserPrompt(points=((30, 20, 1),))))
        assert np.array_equal(alpha, expected)
    assert sessions.get("page-a").interactive.runner is sessions.get("page-b").interactive.runner
    assert [s.interactive.encodings for s in sessions.sessions()] == [1, 1]


def test_clicks_from_threads_read_their_own_page(zim_actions, photo_file):
    """Gradio runs callbacks in threads: interleaved clicks of two pages never cross."""
    pages = {"a": solid(64, 80, RED), "b": solid(48, 64, BLUE)}
    states = {k: zim_actions.upload(k, photo_file(v, f"{k}.png"))[0] for k, v in pages.items()}
    seen: dict[str, list[tuple[int, ...]]] = {"a": [], "b": []}

    def clicks(key: str) -> None:
        for step in range(3):
            _, shown = zim_actions.click(key, states[key], "positive click", 10 + step, 10)
            seen[key].append((*shown[0].shape, *shown[1].shape, *shown[2][5, 5, :3]))

    threads = [threading.Thread(target=clicks, args=(key,)) for key in pages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["a"] == [(64, 80, 3, 64, 80, *RED)] * 3
    assert seen["b"] == [(48, 64, 3, 48, 64, *BLUE)] * 3


def test_sessions_are_bounded_and_expire(tiny_checkpoint, tmp_path):
    now = [0.0]
    runner = CheckpointModel(tiny_checkpoint("zim"))
    store = SessionStore(runner, tmp_path, max_sessions=2, idle_seconds=60, clock=lambda: now[0])
    first = store.open("a")
    store.open("b")
    now[0] = 10.0
    assert store.get("a") is first  # "a" is now the most recently used
    store.open("c")  # full: the least recently used ("b") goes
    assert "b" not in store and "a" in store and len(store) == 2
    (first.folder / "cutout.png").write_bytes(b"png")
    now[0] = 71.0  # "a" last used at 10, "c" made at 10: both idle 61 s
    assert store.get("a") is None and store.get("c") is None and len(store) == 0
    assert not first.folder.exists()  # its downloads went with it
    with pytest.raises(ValueError, match="max_sessions"):
        SessionStore(runner, tmp_path, max_sessions=0)


def test_a_dropped_page_is_asked_to_upload_again(zim_actions, photo_file):
    state, _ = zim_actions.upload("a", photo_file(solid(48, 64, RED), "red.png"))
    zim_actions.close("a")
    _, shown = zim_actions.click("a", state, "positive click", 3, 3)
    assert shown[:4] == (None, None, None, None) and shown[4].startswith("upload a photo first")
