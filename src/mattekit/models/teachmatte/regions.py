"""Region targets from the GT alpha: background, foreground and transparent, at H/8.

The paper derives them "by morphological operations" with kernel 15 (at 512 px): the transparent
region is every pixel within the kernel of a fractional alpha (the unknown band of a trimap,
dilated), the rest is foreground where alpha > 0.5 and background elsewhere. At H/8 a cell is
transparent when any of its pixels is (the band never thins away), else it takes the majority
of its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BACKGROUND, FOREGROUND, TRANSPARENT = 0, 1, 2
#: Alphas within this of 0 or 1 count as opaque / clear (one 8-bit grey level).
_CERTAIN = 1 / 255


@dataclass(frozen=True)
class RegionTargets:
    """Attributes:
    classes: B x h x w long in {0: background, 1: foreground, 2: transparent}.
    known: B x 1 x h x w float, 1 on background and foreground (the paper's M).
    """

    classes: Tensor
    known: Tensor

    @property
    def transparent(self) -> Tensor:
        """B x 1 x h x w float, 1 on the transparent region (the paper's 1 - M, R's target)."""
        return 1 - self.known


def scaled_kernel(kernel_at_512: int, side: int) -> int:
    """The morphology kernel for an input of ``side`` px (odd, at least 1): the paper's size is
    for 512 px inputs."""
    size = max(1, round(kernel_at_512 * side / 512))
    return size if size % 2 else size + 1


def region_targets(alpha: Tensor, kernel: int, factor: int = 8) -> RegionTargets:
    """Region classes of ``alpha`` (B x 1 x H x W in [0, 1]) at ``H / factor``.

    Args:
        kernel: dilation of the fractional band, in input pixels (odd).
    """
    fractional = ((alpha > _CERTAIN) & (alpha < 1 - _CERTAIN)).float()
    band = F.max_pool2d(fractional, kernel, stride=1, padding=kernel // 2)
    transparent = F.max_pool2d(band, factor) > 0
    foreground = F.avg_pool2d((alpha > 0.5).float(), factor) > 0.5
    classes = torch.where(transparent, TRANSPARENT, foreground.long() * FOREGROUND)
    return RegionTargets(classes[:, 0], (~transparent).float())


def alpha_from_regions(probabilities: Tensor) -> Tensor:
    """The teacher's alpha estimate for evaluation: P(foreground) + P(transparent) / 2.

    B x 3 x h x w class probabilities -> B x 1 x h x w.
    """
    return probabilities[:, FOREGROUND : FOREGROUND + 1] + probabilities[:, TRANSPARENT:] / 2
