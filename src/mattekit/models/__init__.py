"""The model registry: lower-case alias -> family class, with a line of description each.

Explicit on purpose (after anomalib): a family is registered by one line here, and
``mattekit models`` / :func:`list_models` show exactly what exists.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from mattekit.models.base import MattingModule
from mattekit.models.baseline.lightning_model import Baseline
from mattekit.models.sama.lightning_model import SAMA
from mattekit.models.sdmatte.lightning_model import LiteSDMatte, SDMatte
from mattekit.models.teachmatte.lightning_model import TeachMatte
from mattekit.models.zim.lightning_model import ZIM
from mattekit.models.zim_converter.lightning_model import ZIMLabelConverter


@dataclass(frozen=True)
class ModelEntry:
    """One registered family.

    Attributes:
        alias: lower-case CLI name (``mattekit fit --model <alias>``).
        cls: the :class:`MattingModule` subclass.
        summary: one line for ``mattekit models``.
        tiny: init args of the tiny variant used by tests and CPU smoke runs.
        paper_size: init args of the paper-size variant; the contract tests build it on the
            meta device to check its structure.
        stages: a family trained in stages, its stage names in order (``--model.stage``); each
            later stage starts from a run of the one before (``--model.previous_stage CKPT``).
            The contract and CLI tests run every stage, chained.
    """

    alias: str
    cls: type[MattingModule]
    summary: str
    tiny: dict = field(default_factory=dict)
    paper_size: dict = field(default_factory=dict)
    stages: tuple[str, ...] = ()

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    @property
    def prompts(self) -> tuple[str, ...]:
        """Prompt kinds the family accepts (declared once, on the family class)."""
        return self.cls.accepted_prompts


MODELS: dict[str, ModelEntry] = {
    entry.alias: entry
    for entry in [
        ModelEntry(
            "baseline",
            Baseline,
            "small prompt-conditioned U-Net; smoke model and reference row",
            tiny={"base_channels": 8, "depth": 2},
        ),
        ModelEntry(
            "litesdmatte",
            LiteSDMatte,
            "LiteSDMatte: BK-SDM-pruned UNet + tiny autoencoder, distilled from SDMatte "
            "(ICCV 2025)",
            tiny={"variant": "tiny"},
            paper_size={"variant": "sd2"},
        ),
        ModelEntry(
            "sama",
            SAMA,
            "SAMA: frozen SAM + multi-view localization encoder + local adapters, "
            "segmentation and matting heads (AAAI 2026)",
            tiny={"variant": "tiny"},
            paper_size={"variant": "vit_b"},
        ),
        ModelEntry(
            "sdmatte",
            SDMatte,
            "SDMatte: Stable Diffusion 2 grafted for interactive matting, visual-prompt "
            "cross-attention + masked self-attention (ICCV 2025)",
            tiny={"variant": "tiny"},
            paper_size={"variant": "sd2"},
        ),
        ModelEntry(
            "teachmatte",
            TeachMatte,
            "TeachDiffusionMatting: text-grounded SD teacher, BK-SDM-Tiny sparse-attention "
            "student distilled from it, detail decoder; three stages (TMLR 2025)",
            tiny={"variant": "tiny"},
            paper_size={"variant": "sd21"},
            stages=("teacher", "student", "decoder"),
        ),
        ModelEntry(
            "zim",
            ZIM,
            "ZIM: SAM + hierarchical pixel decoder + prompt-aware masked attention "
            "(ICCV 2025 Highlight)",
            tiny={"variant": "tiny"},
            paper_size={"variant": "vit_b"},
        ),
        ModelEntry(
            "zim_converter",
            ZIMLabelConverter,
            "ZIM's label converter: image + segmentation mask -> matte (Hiera, MGMatting PRN)",
            tiny={"variant": "tiny", "image_size": 32},
            paper_size={"variant": "hiera_base_plus"},
        ),
    ]
}


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered families whose alias matches a shell-style ``pattern`` (``"sd*"``)."""
    return [entry for alias, entry in sorted(MODELS.items()) if fnmatch.fnmatch(alias, pattern)]


def get_model_entry(name: str) -> ModelEntry:
    """Look a family up by alias or class name (case-insensitive)."""
    for entry in MODELS.values():
        if name.lower() in (entry.alias, entry.cls.__name__.lower()):
            return entry
    known = ", ".join(MODELS)
    raise KeyError(f"unknown model {name!r}; registered: {known} (see `mattekit models`)")


__all__ = ["MODELS", "MattingModule", "ModelEntry", "get_model_entry", "list_models"]
