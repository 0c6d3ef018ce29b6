"""Interactive inference on a photo in SAM's convention, returning a continuous alpha."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from mattekit.models.sam.inputs import sam_image, sam_tokens
from mattekit.models.zim.torch_model import Zim, ZimImageFeatures


class ZimPredictor:
    """Set an image once, then ask for mattes with clicks or a box (like SAM's predictor).

    The image's longest side is resized to the model's input size, normalised and zero-padded at
    the bottom-right; :meth:`set_image` computes everything that depends on the image only (the
    image embedding and the pixel decoder's pyramid), so each prompt runs only the decoder.
    Prompts are in the photo's own pixels; the alpha comes back at the photo's size.

    Args:
        model: a :class:`Zim` (e.g. ``ZIM.load_from_checkpoint(...).model``).
    """

    def __init__(self, model: Zim) -> None:
        self.model = model.eval()
        self.transform = ResizeLongestSide(model.image_size)
        self._features: ZimImageFeatures | None = None
        self._original_size = self._input_size = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """Encode an H x W x 3 uint8 RGB photo (the expensive step, once per photo)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got {image.shape} {image.dtype}")
        resized = self.transform.apply_image(image)  # antialiased, as SAM's and ZIM's releases
        tensor = torch.from_numpy(resized).permute(2, 0, 1)[None].float().to(self.device) / 255
        size = self.model.image_size
        padded = F.pad(tensor, (0, size - tensor.shape[-1], 0, size - tensor.shape[-2]))
        content = torch.tensor([resized.shape[:2]], device=self.device)
        self._features = self.model.encode(sam_image(padded, content, size))
        self._original_size, self._input_size = image.shape[:2], resized.shape[:2]

    @torch.no_grad()
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> np.ndarray:
        """Alpha for clicks (N x 2 ``x, y`` with N labels, 1 positive / 0 negative) or a box.

        A box ``(x0, y0, x1, y1)`` replaces any clicks (see the README for how the release
        differs). Tokens follow :func:`~mattekit.models.sam.inputs.sam_tokens`: the box alone,
        or the clicks and one padding point.

        Returns:
            H x W float32 alpha in [0, 1] at the photo's size: the logits are resized to the
            photo first, then passed through the sigmoid, as in the release.
        """
        if self._features is None:
            raise RuntimeError("call set_image() before predict()")
        coords, labels = sam_tokens(*self._prompt_in_model_pixels(point_coords, point_labels, box))
        logits, _ = self.model.decode(self._features, coords[None], labels[None])
        size = self.model.image_size
        logits = F.interpolate(logits[:, :1], (size, size), mode="bilinear", align_corners=False)
        logits = logits[..., : self._input_size[0], : self._input_size[1]]
        logits = F.interpolate(logits, self._original_size, mode="bilinear", align_corners=False)
        return logits[0, 0].sigmoid().cpu().numpy().astype(np.float32)

    def _prompt_in_model_pixels(
        self,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        box: np.ndarray | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
        """:func:`sam_tokens`'s arguments: N x 2 clicks, N labels, the 4 box, the kind."""
        clicks, labels, model_box = np.zeros((0, 2)), np.zeros(0), np.zeros(4)
        if box is not None:
            kind = "box"
            model_box = self.transform.apply_boxes(
                np.asarray(box, np.float32).reshape(1, 4), self._original_size
            )
        elif point_coords is not None and point_labels is not None:
            kind = "points"
            clicks = np.asarray(point_coords, np.float32).reshape(-1, 2)
            labels = np.asarray(point_labels).reshape(-1)
            if len(clicks) != len(labels) or not len(clicks):
                raise ValueError("point_coords and point_labels must be non-empty and match")
            if not np.isin(labels, (0, 1)).all():
                raise ValueError(f"point_labels must be 1 (positive) or 0 (negative), got {labels}")
            clicks = self.transform.apply_coords(clicks, self._original_size)
        else:
            raise ValueError("give a box, or point_coords with point_labels")
        return (
            torch.as_tensor(clicks, dtype=torch.float32, device=self.device),
            torch.as_tensor(labels, dtype=torch.long, device=self.device),
            torch.as_tensor(model_box, dtype=torch.float32, device=self.device).reshape(4),
            kind,
        )
