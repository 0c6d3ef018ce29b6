"""The demo page: upload a photo, click (or draw a box, or type text), see the alpha and the
cut-out, download the RGBA PNG.

    mattekit demo --ckpt_path CKPT [--port 7860] [--host 127.0.0.1] [--device cuda]

The photo is encoded once (:class:`~mattekit.inference.interactive.InteractiveSession`): a click
re-runs only the prompt decoder of the SAM-based families. A box is two clicks in "box corner"
mode (Gradio's image does not report drags).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from mattekit.data.io import unit_to_uint8, write_png_atomic
from mattekit.demo.prompt_state import PromptState, click_modes, draw_prompts
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.inference.cutout import cutout
from mattekit.inference.interactive import InteractiveSession

#: What each page update returns: the photo with prompts, alpha, cut-out, download, prompt line.
Outputs = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, str | None, str]


class DemoActions:
    """The page's callbacks, free of Gradio (tested directly): each returns :data:`Outputs`.

    Args:
        session: the checkpoint's interactive session.
        folder: where the downloadable cut-outs are written.
    """

    def __init__(self, session: InteractiveSession, folder: Path) -> None:
        self.session, self.folder = session, folder
        self.photo: np.ndarray | None = None

    def upload(self, photo: np.ndarray | None) -> tuple[PromptState, Outputs]:
        """A new photo: encoded now; the prompts are cleared."""
        state = PromptState()
        if photo is None:
            self.photo = None
            return state, (None, None, None, None, "upload a photo")
        self.photo = np.ascontiguousarray(photo[..., :3]).astype(np.uint8)
        self.session.set_image(self.photo)
        return state, (self.photo, None, None, None, state.describe())

    def click(
        self, state: PromptState, mode: str | None, x: int, y: int
    ) -> tuple[PromptState, Outputs]:
        """A click at ``(x, y)`` of the photo, in ``mode`` (None: the family takes no clicks)."""
        if self.photo is None:
            return state, (None, None, None, None, "upload a photo first")
        if not mode:
            takes = ", ".join(self.session.accepted_prompts)
            return state, (
                self.photo,
                None,
                None,
                None,
                f"clicks do not prompt it (it takes {takes})",
            )
        state = state.add(mode, x, y)
        return state, self.run(state)

    def text(self, state: PromptState, text: str) -> tuple[PromptState, Outputs]:
        state = PromptState(text=text.strip())
        return state, self.run(state)

    def mask(self, path: str | None) -> tuple[PromptState, Outputs]:
        """A mask file as the prompt (mask-prompted families)."""
        state = PromptState(mask=path)
        if self.photo is None:
            return state, (None, None, None, None, "upload a photo first")
        return state, self.run(state)

    def clear(self) -> tuple[PromptState, Outputs]:
        state = PromptState()
        return state, (self.photo, None, None, None, state.describe())

    def run(self, state: PromptState) -> Outputs:
        """Matte the photo with ``state``'s prompt (nothing yet while a box has one corner)."""
        overlay = draw_prompts(self.photo, state)
        prompt = state.prompt()
        if not prompt.kinds:
            return overlay, None, None, None, state.describe()
        try:
            alpha = self.session.predict(prompt)
        except ValueError as error:
            return overlay, None, None, None, f"{state.describe()}: {error}"
        rgba = cutout(self.photo, alpha)
        path = self.folder / "cutout.png"
        write_png_atomic(path, rgba)
        return overlay, unit_to_uint8(alpha), rgba, str(path), state.describe()


def build_demo(session: InteractiveSession, title: str = "mattekit") -> gr.Blocks:
    """The Gradio page (``gradio.Blocks``) for ``session``."""
    takes = session.accepted_prompts
    actions = DemoActions(session, Path(tempfile.mkdtemp(prefix="mattekit_demo_")))
    with gr.Blocks(title=f"{title} demo", analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}: upload a photo, then point at the object")
        state = gr.State(PromptState())
        with gr.Row():
            photo = gr.Image(label="photo (click on it)", type="numpy", sources=["upload"],
                             elem_id="photo")  # fmt: skip
            alpha = gr.Image(label="alpha", interactive=False, elem_id="alpha")
            rgba = gr.Image(label="cut-out", image_mode="RGBA", interactive=False,
                            elem_id="cutout")  # fmt: skip
        with gr.Row():
            choices = click_modes(takes)
            mode = gr.Radio(choices, value=choices[0] if choices else None, label="a click adds",
                            elem_id="mode", visible=bool(choices))  # fmt: skip
            text = gr.Textbox(label="text prompt", visible="text" in takes, elem_id="text")
            mask = gr.Image(label="mask prompt", type="filepath", sources=["upload"],
                            visible="mask" in takes, elem_id="mask")  # fmt: skip
            clear = gr.Button("clear prompts", elem_id="clear")
        described = gr.Markdown(elem_id="prompt-info")
        download = gr.File(label="RGBA cut-out (PNG)", elem_id="download")
        outputs = [photo, alpha, rgba, download, described]

        def on_upload(image):
            new_state, shown = actions.upload(image)
            return new_state, *shown

        def on_click(current, click_mode, event: gr.SelectData):
            x, y = (round(float(v)) for v in event.index[:2])
            new_state, shown = actions.click(current, click_mode, x, y)
            return new_state, *shown

        def on_text(current, value):
            new_state, shown = actions.text(current, value)
            return new_state, *shown

        def on_mask(path):
            new_state, shown = actions.mask(path)
            return new_state, *shown

        def on_clear():
            new_state, shown = actions.clear()
            return new_state, *shown

        photo.upload(on_upload, [photo], [state, *outputs])
        photo.select(on_click, [state, mode], [state, *outputs])
        text.submit(on_text, [state, text], [state, *outputs])
        mask.upload(on_mask, [mask], [state, *outputs])
        clear.click(on_clear, [], [state, *outputs])
    return demo


def demo_main(argv: list[str]) -> int:
    """``mattekit demo``: see the module docstring."""
    parser = argparse.ArgumentParser(prog="mattekit demo", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a run's Lightning .ckpt")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--image_size", type=int, help="network input side (default: the run's)")
    args = parser.parse_args(argv)
    try:
        runner = CheckpointModel(args.ckpt_path, args.device, args.image_size)
    except (OSError, ValueError) as error:
        parser.exit(2, f"mattekit demo: error: {error}\n")
    title = type(runner.model).__name__
    build_demo(InteractiveSession(runner), title).launch(
        server_name=args.host, server_port=args.port
    )
    return 0
