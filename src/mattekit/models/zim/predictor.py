"""Interactive inference on a photo in SAM's convention, returning a continuous alpha."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from mattekit.models.zim.torch_model import BOX_LABELS, Zim


class ZimPredictor:
    """Set an image once, then ask for mattes with clicks or a box (like SAM's predictor).

    The image's longest side is resized to the model's input size and the rest padded at the
    bottom-right; prompts are in the photo's own pixels; the alpha comes back at the photo's size.

    Args:
        model: a :class:`Zim` (e.g. ``ZIM.load_from_checkpoint(...).model``).
    """

    def __init__(self, model: Zim) -> None:
        self.model = model.eval()
        self.transform = ResizeLongestSide(model.image_size)
        self._embedding = self._images = None
        self._original_size = self._input_size = None

    @property
    def device(self) -> torch.device:
        return self.model.pixel_mean.device

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """Encode an H x W x 3 uint8 RGB photo (the expensive step, once per photo)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be H x W x 3 uint8 RGB, got {image.shape} {image.dtype}")
        resized = self.transform.apply_image(image)
        tensor = torch.from_numpy(resized).permute(2, 0, 1)[None].float().to(self.device) / 255
        normalised = self.model.normalize(tensor)
        size = self.model.image_size
        pad = (0, size - normalised.shape[-1], 0, size - normalised.shape[-2])
        self._images = F.pad(normalised, pad)  # zeros after normalising: SAM's padding
        self._embedding = self.model.encode(self._images)
        self._original_size, self._input_size = image.shape[:2], resized.shape[:2]

    @torch.no_grad()
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> np.ndarray:
        """Alpha for clicks (N x 2 ``x, y`` with N labels, 1 positive / 0 negative) or a box.

        A box ``(x0, y0, x1, y1)`` replaces any clicks, as in the official release.

        Returns:
            H x W float32 alpha in [0, 1] at the photo's size.
        """
        if self._embedding is None:
            raise RuntimeError("call set_image() before predict()")
        if box is not None:
            coords = np.asarray(box, np.float32).reshape(2, 2)
            labels = np.array(BOX_LABELS)
        elif point_coords is not None and point_labels is not None:
            coords = np.asarray(point_coords, np.float32).reshape(-1, 2)
            labels = np.asarray(point_labels).reshape(-1)
            if len(coords) != len(labels) or not len(coords):
                raise ValueError("point_coords and point_labels must be non-empty and match")
            # SAM's decoder was trained with one padding point after clicks.
            coords = np.concatenate([coords, np.zeros((1, 2), np.float32)])
            labels = np.concatenate([labels, [-1]])
        else:
            raise ValueError("give a box, or point_coords with point_labels")
        coords = self.transform.apply_coords(coords, self._original_size)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=self.device)[None]
        labels_t = torch.as_tensor(labels, dtype=torch.long, device=self.device)[None]
        logits, _ = self.model.decode(self._embedding, self._images, coords_t, labels_t)
        size = self.model.image_size
        logits = F.interpolate(logits[:, :1], (size, size), mode="bilinear", align_corners=False)
        logits = logits[..., : self._input_size[0], : self._input_size[1]]
        logits = F.interpolate(logits, self._original_size, mode="bilinear", align_corners=False)
        return logits[0, 0].sigmoid().cpu().numpy().astype(np.float32)
