"""ZIM's object-size breakdown of matting results (MicroMat-3K tables)."""

from __future__ import annotations

from torch import Tensor

SIZE_BUCKETS = ("S", "M", "L")


def object_size(alpha: Tensor, threshold: float = 0.3) -> str:
    """``"S"``, ``"M"`` or ``"L"`` by the fraction of pixels with ``alpha > threshold``.

    ZIM's evaluation: ratio < 0.01 is small, < 0.1 medium, else large.

    Args:
        alpha: the GT matte of one sample, any shape (1 x H x W), values in [0, 1].
    """
    # count / size in float64, as the release's numpy (eval_loader.py:94): a float32 mean puts
    # a ratio of exactly 0.01 just below it (S where the release says M)
    ratio = int((alpha > threshold).sum()) / alpha.numel()
    if ratio < 0.01:
        return "S"
    return "M" if ratio < 0.1 else "L"
