"""A trained mattekit checkpoint ready for inference at its own input convention.

Shared by everything that runs a checkpoint on images outside training: the benchmark's model
rows and ``mattekit matte``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor

from mattekit.checkpoint_config import checkpoint_entry, run_folder_of
from mattekit.data.dataset import MattingDataset
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import MattingBatch
from mattekit.data.source import MattingSource
from mattekit.data.transforms import MattingTransform
from mattekit.errors import UsageError
from mattekit.models.base import MattingModule
from mattekit.models.evaluation import alpha_at_original_size
from mattekit.output_records import file_sha256


def run_data_settings(
    checkpoint: str | Path, config: str | Path | None = None
) -> tuple[int | None, str | None]:
    """``(side, resize)`` the checkpoint's run evaluated with: ``data.eval_image_size``, else
    ``data.image_size``, and ``data.resize``, from its ``config.yaml`` (``config``, else
    ``<run>/config.yaml`` beside ``<run>/checkpoints/``); ``(None, None)`` without one.

    Raises:
        FileNotFoundError: ``config`` is given and missing.
        ValueError: the run trained on non-square inputs.
    """
    path = Path(config) if config else run_folder_of(Path(checkpoint)) / "config.yaml"
    if not path.is_file():
        if config:
            raise FileNotFoundError(f"config not found: {path}")
        return None, None
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {}
    size = data.get("eval_image_size") or data.get("image_size")
    if isinstance(size, list):
        if size[0] != size[1]:
            raise ValueError(f"{path}: inference runs models on square inputs, got {size}")
        size = size[0]
    return size, data.get("resize")


class CheckpointModel:
    """A family's checkpoint (weights-only, registered classes only) in eval mode, with the
    input it runs at (:attr:`convention`): the family's own input convention
    (:attr:`~mattekit.models.base.MattingModule.input_convention`: ZIM letterboxes at its
    encoder's side, as SAM), what it leaves open filled by ``image_size`` / ``resize`` when
    given, else by the run's data settings (:func:`run_data_settings`).

    Args:
        checkpoint: a Lightning ``.ckpt`` of a registered family.
        device: where the model runs.
        image_size, resize: override the input side and fit (``stretch`` or ``letterbox``).
        config: the run's ``config.yaml`` when it is not beside the checkpoint's folder.

    Raises:
        FileNotFoundError naming the checkpoint; UsageError when no input size can be found;
        ValueError naming ``--image_size`` / ``--resize`` when they contradict the family's
        convention.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        resize: str | None = None,
        config: str | Path | None = None,
    ) -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        self.path = path
        self.device = torch.device(device)
        entry = checkpoint_entry(path)
        self.model: MattingModule = entry.cls.load_from_checkpoint(path, map_location="cpu")
        self.model.eval().to(self.device)
        self.convention = self.model.input_convention.resolved(
            image_size, resize, entry.cls.__name__, fallback=run_data_settings(path, config)
        )
        if self.convention.side is None:
            raise UsageError(f"{path}: no input size: give image_size, or the run's config.yaml")

    @property
    def side(self) -> int:
        return self.convention.side

    @property
    def resize(self) -> str:
        return self.convention.resize

    @property
    def accepted_prompts(self) -> tuple[str, ...]:
        return tuple(self.model.accepted_prompts)

    @property
    def sha256(self) -> str:
        """The checkpoint file's SHA-256 (read once), which output records name it by."""
        return file_sha256(self.path)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def dataset(self, source: MattingSource, seed: int = 0) -> MattingDataset:
        """``source`` at this model's input, with the source's own prompts kept."""
        return MattingDataset(
            source,
            MattingTransform((self.side, self.side), train=False, resize=self.resize),
            PromptSampler(PromptConfig()),
            train=False,
            seed=seed,
        )

    def alphas(self, batch: MattingBatch) -> list[Tensor]:
        """The predicted alphas at each image's stored size, ``[1 x H_i x W_i, ...]`` (call
        under ``torch.inference_mode()``; each sample run with its ``prompt_kind``, else the
        model's ``eval_prompt``)."""
        batch = batch.to(self.device)
        return alpha_at_original_size(self.model(batch), batch)

    def alpha(self, batch: MattingBatch) -> np.ndarray:
        """The first image's alpha, H x W float32 in [0, 1]."""
        return self.alphas(batch)[0][0].float().cpu().numpy()
