"""One photo, many prompts: what ``mattekit demo`` runs at every click.

The photo goes through the data pipeline once per prompt (a resize: cheap), but what depends on
the image only (:meth:`~mattekit.models.base.MattingModule.encode_image`: SAM's image embedding,
ZIM's pixel-decoder pyramid) is computed once per photo and reused, so a click re-runs only the
prompt decoder. Families whose whole network reads the prompt run their whole forward per click.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import torch

from mattekit.data.sample import MattingBatch, RawSample, collate_samples
from mattekit.data.source import MattingSource
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.models.evaluation import alpha_at_original_size
from mattekit.prompts.photo_samples import prompted_sample
from mattekit.prompts.user import UserPrompt


class _OnePhoto(MattingSource):
    """The session's photo with the current prompt, as a one-sample source."""

    def __init__(self, image: np.ndarray, prompt: UserPrompt) -> None:
        super().__init__("demo")
        self.image, self.prompt = image, prompt

    def __len__(self) -> int:
        return 1

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        return prompted_sample("photo", self.image, self.prompt, self.name)


class InteractiveSession:
    """Set a photo, then ask for its alpha with prompt after prompt.

    Args:
        runner: the checkpoint at its input convention.
    """

    def __init__(self, runner: CheckpointModel) -> None:
        self.runner = runner
        self.image: np.ndarray | None = None
        self._features: object | None = None
        self._key: str | None = None
        self.encodings = 0  # photos encoded (a new photo, not a new click, adds one)

    @property
    def accepted_prompts(self) -> tuple[str, ...]:
        return self.runner.accepted_prompts

    def _batch(self, prompt: UserPrompt) -> MattingBatch:
        source = _OnePhoto(self.image, prompt)
        return collate_samples([self.runner.dataset(source)[0]]).to(self.runner.device)

    @torch.inference_mode()
    def set_image(self, image: np.ndarray) -> None:
        """Take an H x W x 3 uint8 RGB photo; its features are computed now, once (the same
        photo again is not re-encoded)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got {image.shape} {image.dtype}")
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
        if key == self._key:
            return
        self.image, self._key = image, key
        height, width = image.shape[:2]
        whole = UserPrompt(box=(0, 0, width - 1, height - 1))
        self._features = self.runner.model.encode_image(self._batch(whole))
        self.encodings += 1

    @torch.inference_mode()
    def predict(self, prompt: UserPrompt) -> np.ndarray:
        """The photo's H x W float32 alpha for ``prompt``, run as its first kind the model
        takes (:meth:`UserPrompt.kind_for`).

        Raises:
            RuntimeError before :meth:`set_image`; ValueError for a prompt the model cannot take.
        """
        if self.image is None:
            raise RuntimeError("call set_image() before predict()")
        model = self.runner.model
        batch = self._batch(replace(prompt, kind=prompt.kind_for(model.accepted_prompts)))
        if self._features is None:
            outputs = model(batch)
        else:
            outputs = model.forward_with_features(batch, self._features)
        return alpha_at_original_size(outputs, batch)[0][0].float().cpu().numpy()
