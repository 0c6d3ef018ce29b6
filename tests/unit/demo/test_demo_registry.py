"""The demo over the registry: every registered family, driven through each prompt kind it
takes by the kind's own widget (clicks, box corners, an uploaded file, a text, nothing at all),
gives an alpha and a cut-out at the photo's size; the page shows only the widgets it takes."""

import numpy as np
import pytest

from mattekit.demo.app import DemoActions, build_demo
from mattekit.demo.prompt_state import PromptState
from mattekit.demo.sessions import SessionStore
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.models import MODELS
from mattekit.prompts import KINDS

SIZE = (40, 50)


def drive(actions: DemoActions, kind: str, prompt):
    """Give ``prompt`` (a UserPrompt of ``kind``) through the kind's widget; the page's output."""
    widget = KINDS[kind].widget
    if widget == "clicks":
        state = PromptState()
        for x, y, label in prompt.points:
            mode = "positive click" if label else "negative click"
            state, shown = actions.click("page", state, mode, x, y)
        return shown
    if widget == "box":
        x0, y0, x1, y1 = prompt.box
        state, _ = actions.click("page", PromptState(), "box corner", x0, y0)
        return actions.click("page", state, "box corner", x1, y1)[1]
    if widget == "upload":
        return actions.upload_prompt("page", kind, str(getattr(prompt, kind)))[1]
    if widget == "textbox":
        return actions.text("page", PromptState(), prompt.text)[1]
    raise AssertionError(f"no widget drives the {kind!r} prompt")


@pytest.mark.parametrize("alias", sorted(MODELS))
def test_every_family_mattes_with_every_kind_it_takes(
    alias, tiny_checkpoint, photo_file, user_prompt, tmp_path
):
    entry = MODELS[alias]
    side = entry.cls(**entry.tiny).input_convention.side
    runner = CheckpointModel(tiny_checkpoint(alias), image_size=None if side else 32)
    actions = DemoActions(SessionStore(runner, tmp_path / "downloads"))
    shown_ids = {block.elem_id for block in build_demo(actions).blocks.values() if block.visible}
    uploads = {name for name, kind in KINDS.items() if kind.widget == "upload"}
    assert shown_ids & uploads == uploads & set(entry.prompts)
    photo = np.full((*SIZE, 3), 40, np.uint8)
    photo[10:30, 15:35] = 220
    _, on_upload = actions.upload("page", photo_file(photo, "photo.png"))
    for kind in entry.prompts:
        shown = (
            on_upload if kind == "none" else drive(actions, kind, user_prompt(kind, tmp_path, SIZE))
        )
        _, alpha, rgba, download, line = shown
        assert alpha is not None, (kind, line)
        assert alpha.shape == SIZE and rgba.shape == (*SIZE, 4) and download, kind
