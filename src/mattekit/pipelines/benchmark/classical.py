"""Weight-free rows of a benchmark: classical matting on a trimap, and the prompt as the alpha.

Classical methods (closed-form and KNN matting, from pymatting) need a trimap. They get the
stored one for the ``trimap`` prompt (the dataset's own when it has one: an upper reference,
marked so in the tables; for a dataset without one, the trimap sampled from the GT when the
prompts were stored, marked "sampled from the GT") and one derived from the prompt otherwise:

- ``mask``: the training pipeline's trimap rule (:func:`~mattekit.data.prompts.sample_trimap`)
  on the mask: eroded by ``TRIMAP_BAND`` of the longer side (a disk; none below half a pixel)
  it is foreground, beyond the mask dilated as much background, the rest unknown.
- ``box``: outside the box is background, inside unknown, and the box's central third (on each
  axis) foreground: a guess that fails for objects with a hole in the middle (the rule, not the
  method, is then to blame).

Clicks alone give no background, so classical methods do not take the ``points`` prompt.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from mattekit.data.prompts import sample_trimap
from mattekit.nn.prompt_maps import box_mask
from mattekit.pipelines.benchmark.prompt_store import StoredPrompt
from mattekit.prompts import KINDS, get_kind

#: Half width of a derived trimap's unknown band, as a fraction of the image's longer side.
TRIMAP_BAND = 0.02
#: Prompt kinds each weight-free method takes.
CLASSICAL_PROMPTS = ("trimap", "mask", "box")
#: The kinds with a floor row.
FLOOR_PROMPTS = tuple(name for name, kind in KINDS.items() if kind.floor_field is not None)

Algorithm = Literal["closed_form", "knn"]


def box_alpha(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The filled box (inclusive pixel coordinates) as an H x W float32 {0, 1} map: the same
    rasterisation as the models' reference row (:func:`~mattekit.nn.prompt_maps.box_mask`)."""
    return box_mask(torch.from_numpy(box)[None].double(), size)[0, 0].float().numpy()


def derived_trimap(prompt: StoredPrompt, kind: str, size: tuple[int, int]) -> np.ndarray:
    """The trimap a classical method gets for prompt ``kind`` (H x W uint8 {0, 128, 255}).

    Raises:
        ValueError: for a kind classical methods do not take.
    """
    if kind == "trimap":
        return prompt.trimap
    if kind == "mask":
        # The training pipeline's trimap rule, on the mask as a binary alpha.
        return sample_trimap(prompt.coarse_mask.astype(np.float32), TRIMAP_BAND, max(size))
    trimap = np.full(size, 128, np.uint8)
    if kind == "box":
        inside = box_alpha(prompt.box, size) > 0
        trimap[~inside] = 0
        x0, y0, x1, y1 = prompt.box
        third_x, third_y = (x1 - x0) / 3, (y1 - y0) / 3
        centre = np.array([x0 + third_x, y0 + third_y, x1 - third_x, y1 - third_y], np.float32)
        trimap[box_alpha(centre, size) > 0] = 255
        return trimap
    raise ValueError(f"classical methods take the prompts {CLASSICAL_PROMPTS}, not {kind!r}")


def classical_alpha(algorithm: Algorithm, image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """pymatting's closed-form or KNN matting, called as a user would call it directly.

    Args:
        image: H x W x 3 uint8 RGB (divided by 255 in float64, as ``pymatting.load_image``).
        trimap: H x W uint8 {0, 128, 255} (divided by 255 in float64).

    A trimap with no foreground (or no background) pixel, which pymatting refuses, gets the
    solution both methods' equations have then: the constant alpha of the one known label
    (0 everywhere, or 1), the known pixels kept.

    Returns:
        H x W float64 alpha in [0, 1].
    """
    from pymatting import estimate_alpha_cf, estimate_alpha_knn  # numba: imported when used

    has_foreground, has_background = bool((trimap == 255).any()), bool((trimap == 0).any())
    if not (has_foreground and has_background):
        constant = 1.0 if has_foreground else 0.0
        return np.where(trimap == 128, constant, trimap / 255.0)
    estimate = {"closed_form": estimate_alpha_cf, "knn": estimate_alpha_knn}[algorithm]
    return estimate(image.astype(np.float64) / 255.0, trimap.astype(np.float64) / 255.0)


def floor_alpha(prompt: StoredPrompt, kind: str, size: tuple[int, int]) -> np.ndarray:
    """The kind's floor region as the alpha (H x W float32,
    :attr:`~mattekit.prompts.PromptKind.floor_field`): the filled box (for boxes, clicks and
    text), the coarse mask, the trimap (1 / 0.5 / 0).

    Raises:
        ValueError: for a kind without a floor (``none``).
    """
    field = get_kind(kind).floor_field
    if field == "box":
        return box_alpha(prompt.box, size)
    if field == "coarse_mask":
        return prompt.coarse_mask.astype(np.float32)
    if field == "trimap":
        return np.round(prompt.trimap.astype(np.float32) / 255, 1)
    raise ValueError(f"the floor takes the prompts {FLOOR_PROMPTS}, not {kind!r}")
