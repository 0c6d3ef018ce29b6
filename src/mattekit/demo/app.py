"""The demo page: upload a photo, click (or draw a box, or type text), see the alpha and the
cut-out, download the RGBA PNG.

    mattekit demo --ckpt_path CKPT [--port 7860] [--host 127.0.0.1] [--device cuda]
                  [--max_file_size 50mb] [--max_sessions 16]

The photo is encoded once (:class:`~mattekit.inference.interactive.InteractiveSession`): a click
re-runs only the prompt decoder of the SAM-based families. A box is two clicks in "box corner"
mode (Gradio's image does not report drags). Each browser page has its own photo, features and
download (:mod:`mattekit.demo.sessions`). Uploads are read by mattekit's own reader
(:func:`~mattekit.data.io.read_photo`: as displayed, refused past ``MATTEKIT_MAX_IMAGE_PIXELS``
before decoding), never by Gradio.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mattekit.atomic_files import unit_to_uint8, write_png_atomic
from mattekit.data.io import read_photo
from mattekit.demo.prompt_state import PromptState, click_modes, draw_prompts, upload_kinds
from mattekit.demo.sessions import (
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MAX_SESSIONS,
    DemoSession,
    SessionStore,
)
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.cutout import cutout

#: What each page update returns: the photo with prompts, alpha, cut-out, download, prompt line.
Outputs = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, str | None, str]

DEFAULT_MAX_FILE_SIZE = "50mb"
_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _message(error: Exception, path: str | Path | None) -> str:
    """``error``'s message with the server's upload path shortened to the file's name."""
    text = str(error)
    return text.replace(str(path), Path(path).name) if path else text


class DemoActions:
    """The page's callbacks, free of Gradio (tested directly): each takes the page's session
    key (Gradio's session hash) and returns :data:`Outputs`.

    Args:
        sessions: the per-page state; its checkpoint is shared by every page.
    """

    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions

    @property
    def accepted_prompts(self) -> tuple[str, ...]:
        return self.sessions.runner.accepted_prompts

    def upload(self, key: str, path: str | None) -> tuple[PromptState, Outputs]:
        """A new photo file: read as displayed and encoded now; the prompts are cleared. An
        unreadable or too large file is refused with the reader's message."""
        state = PromptState()
        if path is None:
            self.sessions.drop(key)
            return state, (None, None, None, None, "upload a photo")
        try:
            photo = read_photo(path)
        except (OSError, ValueError) as error:
            self.sessions.drop(key)  # no click may reach the page's previous photo
            return state, (None, None, None, None, _message(error, path))
        session = self.sessions.open(key)
        with self.sessions.model_lock:
            session.interactive.set_image(photo)
        if "none" in self.accepted_prompts:  # a prompt-free family mattes the photo at once
            return state, self.run(session, state)
        return state, (photo, None, None, None, state.describe())

    def click(
        self, key: str, state: PromptState, mode: str | None, x: int, y: int
    ) -> tuple[PromptState, Outputs]:
        """A click at ``(x, y)`` of the photo, in ``mode`` (None: the family takes no clicks)."""
        session = self._photo_session(key)
        if session is None:
            return state, self._no_photo()
        if not mode:
            takes = ", ".join(self.accepted_prompts)
            photo = session.interactive.image
            return state, (photo, None, None, None, f"clicks do not prompt it (it takes {takes})")
        state = state.add(mode, x, y)
        return state, self.run(session, state)

    def text(self, key: str, state: PromptState, text: str) -> tuple[PromptState, Outputs]:
        state = PromptState(text=text.strip())
        session = self._photo_session(key)
        return state, self._no_photo() if session is None else self.run(session, state)

    def upload_prompt(self, key: str, kind: str, path: str | None) -> tuple[PromptState, Outputs]:
        """A file as the prompt (``kind``: a mask, a trimap), read when the photo is matted
        (under the same pixel limit as photos)."""
        state = PromptState(files=((kind, path),) if path else ())
        session = self._photo_session(key)
        return state, self._no_photo() if session is None else self.run(session, state)

    def clear(self, key: str) -> tuple[PromptState, Outputs]:
        state = PromptState()
        session = self._photo_session(key)
        photo = None if session is None else session.interactive.image
        return state, (photo, None, None, None, state.describe())

    def close(self, key: str) -> None:
        """The page was closed: its photo, features and downloads go."""
        self.sessions.drop(key)

    def run(self, session: DemoSession, state: PromptState) -> Outputs:
        """Matte the session's photo with ``state``'s prompt (nothing yet while a box has one
        corner); the cut-out is written to the session's own folder."""
        photo = session.interactive.image
        overlay = draw_prompts(photo, state)
        prompt = state.prompt()
        if not prompt.kinds and "none" not in self.accepted_prompts:
            return overlay, None, None, None, state.describe()
        try:
            with self.sessions.model_lock:
                alpha = session.interactive.predict(prompt)
        except (OSError, ValueError) as error:  # a prompt file: unreadable, too large, empty
            named = state.files[0][1] if state.files else None
            return overlay, None, None, None, f"{state.describe()}: {_message(error, named)}"
        rgba = cutout(photo, alpha)
        path = session.folder / "cutout.png"
        write_png_atomic(path, rgba)
        return overlay, unit_to_uint8(alpha), rgba, str(path), state.describe()

    def _photo_session(self, key: str) -> DemoSession | None:
        session = self.sessions.get(key)
        return None if session is None or session.interactive.image is None else session

    def _no_photo(self) -> Outputs:
        minutes = round(self.sessions.idle_seconds / 60)
        line = (
            f"upload a photo first (a page's photo is dropped after {minutes} idle minutes, or "
            f"when {self.sessions.max_sessions} pages used more recently need room)"
        )
        return None, None, None, None, line


def file_size(text: str) -> int:
    """Bytes of a size such as ``50mb``, ``512kb`` or ``1000`` (bytes); for ``--max_file_size``."""
    match = re.fullmatch(r"(\d+)\s*([kmg]?b?)", text.strip().lower())
    if match is None or match[2] not in _UNITS or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size such as 50mb, 512kb or 1000")
    return int(match[1]) * _UNITS[match[2]]


def _upload_path(payload: dict[str, Any] | None) -> str | None:
    """The server-side file of an upload left unprocessed by Gradio (``preprocess=False``:
    Gradio would decode the image itself, with no pixel limit)."""
    return None if payload is None else payload.get("path")


def build_demo(actions: DemoActions, title: str = "mattekit") -> gr.Blocks:
    """The Gradio page (``gradio.Blocks``) for ``actions``."""
    takes = actions.accepted_prompts
    with gr.Blocks(title=f"{title} demo", analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}: upload a photo, then point at the object")
        state = gr.State(PromptState())
        with gr.Row():
            photo = gr.Image(label="photo (click on it)", type="filepath", image_mode=None,
                             sources=["upload"], elem_id="photo")  # fmt: skip
            alpha = gr.Image(label="alpha", interactive=False, elem_id="alpha")
            rgba = gr.Image(label="cut-out", image_mode="RGBA", interactive=False,
                            elem_id="cutout")  # fmt: skip
        with gr.Row():
            choices = click_modes(takes)
            mode = gr.Radio(choices, value=choices[0] if choices else None, label="a click adds",
                            elem_id="mode", visible=bool(choices))  # fmt: skip
            text = gr.Textbox(label="text prompt", visible="text" in takes, elem_id="text")
            files = {
                kind: gr.Image(
                    label=f"{kind} prompt",
                    type="filepath",
                    image_mode=None,
                    sources=["upload"],
                    elem_id=kind,
                )
                for kind in upload_kinds(takes)
            }
            clear = gr.Button("clear prompts", elem_id="clear")
        described = gr.Markdown(elem_id="prompt-info")
        download = gr.File(label="RGBA cut-out (PNG)", elem_id="download")
        outputs = [photo, alpha, rgba, download, described]

        def on_upload(payload, request: gr.Request):
            new_state, shown = actions.upload(request.session_hash, _upload_path(payload))
            return new_state, *shown

        def on_click(current, click_mode, event: gr.SelectData, request: gr.Request):
            x, y = (round(float(v)) for v in event.index[:2])
            new_state, shown = actions.click(request.session_hash, current, click_mode, x, y)
            return new_state, *shown

        def on_text(current, value, request: gr.Request):
            new_state, shown = actions.text(request.session_hash, current, value)
            return new_state, *shown

        def on_file(kind: str):
            def on_upload_file(payload, request: gr.Request):
                path = _upload_path(payload)
                new_state, shown = actions.upload_prompt(request.session_hash, kind, path)
                return new_state, *shown

            return on_upload_file

        def on_clear(request: gr.Request):
            new_state, shown = actions.clear(request.session_hash)
            return new_state, *shown

        def on_unload(request: gr.Request):
            actions.close(request.session_hash)

        photo.upload(on_upload, [photo], [state, *outputs], preprocess=False)
        photo.select(on_click, [state, mode], [state, *outputs])
        text.submit(on_text, [state, text], [state, *outputs])
        for kind, widget in files.items():
            widget.upload(on_file(kind), [widget], [state, *outputs], preprocess=False)
        clear.click(on_clear, [], [state, *outputs])
        demo.unload(on_unload)
    return demo


def demo_main(argv: list[str]) -> int:
    """``mattekit demo``: see the module docstring."""
    description = " ".join(__doc__.split("\n\n")[0].split())  # the first paragraph, whole
    parser = argparse.ArgumentParser(prog="mattekit demo", description=description)
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a run's Lightning .ckpt")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--image_size", type=int, help="network input side (default: the run's)")
    size_help = "largest upload, refused by the page (default %(default)s; b, kb, mb, gb)"
    parser.add_argument("--max_file_size", type=file_size, default=DEFAULT_MAX_FILE_SIZE,
                        help=size_help)  # fmt: skip
    pages_help = "browser pages whose photo is kept (least recently used dropped first)"
    parser.add_argument("--max_sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                        help=pages_help)  # fmt: skip
    args = parser.parse_args(argv)
    if args.max_sessions < 1:
        parser.error(f"--max_sessions must be at least 1, got {args.max_sessions}")
    try:
        runner = CheckpointModel(args.ckpt_path, args.device, args.image_size)
    except (OSError, ValueError) as error:
        parser.exit(2, f"mattekit demo: error: {error}\n")
    folder = Path(tempfile.mkdtemp(prefix="mattekit_demo_"))
    sessions = SessionStore(runner, folder, args.max_sessions, DEFAULT_IDLE_SECONDS)
    title = type(runner.model).__name__
    build_demo(DemoActions(sessions), title).launch(
        server_name=args.host, server_port=args.port, max_file_size=args.max_file_size
    )
    return 0
