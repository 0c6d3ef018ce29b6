"""Small fixed inputs shared by the metric tests (no files, no /work/shared)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor


def as_batch(*arrays: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W) arrays -> (B, 1, H, W) tensor."""
    return torch.stack([torch.as_tensor(np.asarray(a)) for a in arrays])[:, None].to(dtype)


def quantise(alpha: np.ndarray) -> np.ndarray:
    """Round to 8-bit levels k / 255 (float32), as mattes read from PNGs are."""
    return (np.round(np.clip(alpha, 0, 1) * 255) / 255).astype(np.float32)


def random_case(seed: int, height: int = 24, width: int = 31) -> tuple[np.ndarray, ...]:
    """(pred, gt, trimap): 8-bit mattes with flat 0 / 1 areas, soft edges, speckles and a
    trimap in {0, 128, 255} whose unknown band covers the soft edges."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.random((height, width)), (0, 0), 2.5)
    field = (field - field.min()) / (field.max() - field.min())
    gt = quantise((field - 0.35) * 4)
    noise = cv2.GaussianBlur(rng.normal(0, 0.35, (height, width)), (0, 0), 1.0)
    pred = quantise(gt + noise)
    speckles = rng.random((height, width)) < 0.04  # many small, equally sized components
    pred[speckles] = 1.0
    trimap = np.full((height, width), 128, np.uint8)
    trimap[(gt == 0) & (rng.random((height, width)) < 0.8)] = 0
    trimap[(gt == 1) & (rng.random((height, width)) < 0.8)] = 255
    return pred, gt, trimap
