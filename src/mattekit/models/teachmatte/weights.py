"""Chaining TeachDiffusionMatting's stages: reading a previous stage's run, and the files a run
starts from (an SD folder, an open_clip text encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mattekit.weights.files import read_weights_only
from mattekit.weights.lightning import load_submodule
from mattekit.weights.report import LoadReport

STAGES = ("teacher", "student", "decoder")
#: Settings a stage takes from the stage it starts from (they shape the networks it loads).
INHERITED = {
    "student": ("variant", "text_encoder", "text_tokens", "timestep"),
    "decoder": ("variant", "text_encoder", "text_tokens", "timestep", "prune", "attention_kernels"),
}


def previous_stage_settings(path: str | Path, stage: str) -> dict[str, Any]:
    """The settings ``stage`` inherits from the checkpoint of the stage before it.

    Raises:
        FileNotFoundError / ValueError naming ``previous_stage`` and the file when it is missing,
        not a TeachMatte checkpoint, or of the wrong stage.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"previous_stage: {path} not found")
    checkpoint = read_weights_only(path)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    expected = STAGES[STAGES.index(stage) - 1]
    found = hparams.get("stage")
    if found != expected:
        what = f"a {found!r} stage" if found else "not a TeachMatte"
        raise ValueError(
            f"previous_stage: {path} is {what} checkpoint; the {stage} stage starts from a "
            f"{expected!r} stage run"
        )
    return {key: hparams[key] for key in INHERITED[stage] if key in hparams}


def load_previous_stage(
    network: nn.Module, path: str | Path, keep: tuple[str, ...] = ()
) -> LoadReport:
    """Fill ``network`` (a soft-grounding network) from the previous stage's ``model.`` weights.

    Args:
        keep: parts of ``network`` left as they are: the text encoder when it is read from its
            own file (it is then not in the checkpoint), or parts shared with another network.
    """
    loaded = [name for name, _ in network.named_children() if name not in keep]
    prefixes = {f"model.{name}.": f"{name}." for name in loaded}
    return load_submodule(network, path, prefixes, allow_missing=tuple(f"{k}." for k in keep))
