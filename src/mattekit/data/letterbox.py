"""SAM's letterbox resize: longest side to fit, antialiased bilinear, as the official releases do.

SAM (and ZIM, which reuses it) resizes with ``ResizeLongestSide.apply_image``: torchvision's
``resize`` of a PIL image, i.e. PIL's bilinear filter, which widens its support when shrinking
(antialiasing). OpenCV's bilinear does not: a 4000 px photo shrunk to 1024 px would alias (moire on
hair, jagged edges) and differ from what the released weights saw. The output size and the
coordinate scaling follow ``ResizeLongestSide`` too (``int(side * scale + 0.5)``, x scaled by
new_w / old_w and y by new_h / old_h). Padding is a separate step (``A.PadIfNeeded``).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
from PIL import Image


def letterbox_size(size: tuple[int, int], fit: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of an image of ``size`` (H, W) scaled, aspect kept, to fit inside ``fit``.

    For a square ``fit`` this is SAM's ``ResizeLongestSide.get_preprocess_shape``.
    """
    height, width = size
    scale = min(fit[0] / height, fit[1] / width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_antialiased(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL bilinear resize (antialiased when shrinking) to ``size`` (h, w), dtype kept.

    Args:
        image: H x W x 3 uint8 (PIL's RGB path, exactly SAM's), or H x W (x C) float32 (PIL's
            32-bit float path, one channel at a time).
    """
    height, width = size
    if image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    if image.dtype != np.float32:
        raise TypeError(f"expected H x W x 3 uint8 or float32, got {image.shape} {image.dtype}")
    channels = image[..., None] if image.ndim == 2 else image
    resized = [
        np.array(
            Image.fromarray(np.ascontiguousarray(channels[..., c])).resize(  # 2-D float32: "F"
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(channels.shape[2])
    ]
    stacked = np.stack(resized, axis=-1)
    return stacked[..., 0] if image.ndim == 2 else stacked


class LetterboxResize(A.DualTransform):
    """Longest side to fit ``size`` (H, W), aspect kept: images antialiased bilinear (PIL), masks
    nearest, keypoints scaled per axis. Follow it with ``A.PadIfNeeded`` to letterbox."""

    def __init__(self, size: tuple[int, int], p: float = 1.0) -> None:
        super().__init__(p=p)
        self.size = tuple(size)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict:
        old_size = tuple(params["shape"][:2])
        return {"old_size": old_size, "new_size": letterbox_size(old_size, self.size)}

    def apply(self, img: np.ndarray, new_size: tuple[int, int], **params: Any) -> np.ndarray:
        return resize_antialiased(img, new_size)

    def apply_to_mask(self, mask: np.ndarray, new_size: tuple[int, int], **params) -> np.ndarray:
        return cv2.resize(mask, new_size[::-1], interpolation=cv2.INTER_NEAREST)

    def apply_to_keypoints(
        self, keypoints: np.ndarray, old_size: tuple[int, int], new_size: tuple[int, int], **params
    ) -> np.ndarray:
        scaled = keypoints.copy()
        scaled[:, 0] *= new_size[1] / old_size[1]
        scaled[:, 1] *= new_size[0] / old_size[0]
        return scaled

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size",)
