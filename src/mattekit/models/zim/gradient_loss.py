"""ZIM's gradient loss (paper eq. 3) and the switch between its two operators.

The paper writes the loss (eq. 1-3, used for the label converter and for ZIM alike) as
``L1 + lambda x (|d_x M - d_x M'| + |d_y M - d_y M'|)`` with lambda = 10 but names no filter.
naver-ai/ZIM releases no training code; its one gradient operator is the evaluation's
(``eval/metric.py:112-122`` and ``:64-65``): the raw 3 x 3 Sobel kernels through
``F.conv2d(padding=1)``, i.e. unnormalised, zero border. ``release`` takes that operator in
eq. 3's form (the paper-size configs select it); lambda = 10 only means the same thing with the
same operator (the normalised one is 8x smaller). The families' default stays ``normalized``:
the training loss is not published, and the raw operator's 8x heavier term stalls a tiny model
trained from random weights (the CPU-scale grids').
"""

from __future__ import annotations

from typing import Literal

from mattekit.losses import GradientLoss

#: ``release``: raw Sobel, zero border (naver-ai/ZIM's operator); ``normalized``: Sobel / 8,
#: replicated border (mattekit before issue 25, which the recorded Tables 3a / 3b used).
GradientOperator = Literal["release", "normalized"]


def zim_gradient_loss(operator: GradientOperator = "normalized") -> GradientLoss:
    """Eq. 3 with the named operator (see :data:`GradientOperator`).

    Raises:
        ValueError naming ``gradient_operator`` and the two choices.
    """
    if operator == "release":
        return GradientLoss(normalized=False, padding="zeros")
    if operator == "normalized":
        return GradientLoss()
    raise ValueError(f"gradient_operator must be 'release' or 'normalized', got {operator!r}")
