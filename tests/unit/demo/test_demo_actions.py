"""The demo's prompt state and callbacks without a browser: what each click adds, when a box is
complete, what is drawn, and what one click returns (alpha, cut-out, a downloadable file)."""

import cv2
import numpy as np
import pytest

from mattekit.demo.prompt_state import PromptState, click_modes, draw_prompts


def test_clicks_and_box_corners_make_the_prompt():
    state = PromptState().add("positive click", 10, 5).add("negative click", 2, 3)
    assert state.prompt().points == ((10.0, 5.0, 1), (2.0, 3.0, 0))
    state = state.add("box corner", 30, 40)
    assert state.box is None and "click the opposite one" in state.describe()
    state = state.add("box corner", 12, 20)
    assert state.box == (12.0, 20.0, 30.0, 40.0)
    assert state.prompt().kinds == ("box", "points")
    assert state.add("box corner", 1, 1).corners == ((1, 1),)  # a third corner: a new box
    assert state.describe().startswith("positive click at (10, 5); negative click at (2, 3)")
    with pytest.raises(ValueError, match="unknown click mode"):
        state.add("lasso", 1, 1)
    assert click_modes(("points", "box")) == ["positive click", "negative click", "box corner"]
    assert click_modes(("box",)) == ["box corner"] and click_modes(("text",)) == []


def test_prompts_are_drawn_on_a_copy_of_the_photo():
    photo = np.zeros((40, 60, 3), np.uint8)
    drawn = draw_prompts(photo, PromptState().add("positive click", 30, 20))
    assert not photo.any() and drawn[20, 30, 1] > 200 and drawn[20, 30, 0] < 100


def test_a_click_returns_the_alpha_the_cutout_and_a_file(zim_actions, photo_file):
    photo = np.full((48, 64, 3), 80, np.uint8)
    state, shown = zim_actions.upload("page", photo_file(photo, "photo.png"))
    session = zim_actions.sessions.get("page").interactive
    assert session.encodings == 1 and shown[1] is None
    state, (overlay, alpha, rgba, path, line) = zim_actions.click(
        "page", state, "positive click", 30, 20
    )
    assert alpha.shape == (48, 64) and alpha.dtype == np.uint8
    assert rgba.shape == (48, 64, 4) and np.array_equal(rgba[..., 3], alpha)
    written = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written[..., 3], alpha)
    assert line == "positive click at (30, 20)" and overlay.shape == photo.shape
    state, shown = zim_actions.click("page", state, "box corner", 5, 5)
    assert shown[1] is not None  # the clicks still prompt while the box waits for a corner
    state, shown = zim_actions.text("page", state, "the cat")
    assert shown[1] is None and "the model needs points or box" in shown[4]
    assert session.encodings == 1
    _, shown = zim_actions.click("page", PromptState(), None, 3, 3)  # no click modes
    assert shown[1] is None and shown[4] == "clicks do not prompt it (it takes points, box)"
