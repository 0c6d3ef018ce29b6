"""Named metric definitions, so that every number can be traced to the code that defines it.

The same names (SAD, MSE, Grad, Conn) are computed differently across matting codebases. Each
difference is a field of :class:`MattingPreset`; the three shipped presets are

* ``"dim"`` (:data:`DIM`): DIM's MATLAB evaluation (Xu et al. 2017, after Rhemann et al. 2009).
* ``"zim"`` (:data:`ZIM`): naver-ai/ZIM ``eval/metric.py``.
* ``"sdmatte"`` (:data:`SDMATTE`): vivoCameraResearch/SDMatte ``utils/evaluate.py``.

See ``README.md`` in this folder for the definitions in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Region = Literal["trimap_unknown", "whole_image"]
GradientKind = Literal["gaussian_minmax", "gaussian", "sobel"]
ComponentRule = Literal["largest_foreground", "largest_label_with_background"]
TieBreak = Literal["column_major", "row_major"]


@dataclass(frozen=True)
class MattingPreset:
    """One complete definition of the five matting metrics.

    Attributes:
        name: short key (``PRESETS[name]``).
        region: ``"trimap_unknown"`` sums over the trimap's unknown pixels when a trimap is given
            (the whole image otherwise); ``"whole_image"`` always uses the whole image and ignores
            a trimap (one logged warning).
        gradient: ``"gaussian_minmax"``: MATLAB ``mat2gray`` then first-order Gaussian-derivative
            filters (sigma 1.4, 9x9, replicate borders), sum of squared magnitude differences
            / 1000; ``"gaussian"``: the same without the min-max normalisation (alphas in [0, 1],
            i.e. the 8-bit matte divided by 255); ``"sobel"``: 3x3 Sobel with zero padding,
            magnitude ``sqrt(gx^2 + gy^2 + 1e-8)``, mean absolute magnitude difference x 1e3.
        conn_component: ``"largest_foreground"``: largest 4-connected component of
            ``(pred >= t) & (gt >= t)``, background excluded; ``"largest_label_with_background"``:
            ``argmax(bincount(labels))`` over all labels including the background label 0, which
            selects the background whenever it is the biggest region (SDMatte's port).
        conn_tie_break: which of several equally large components wins: the first in
            column-major scan order (MATLAB ``bwconncomp`` + ``max``) or row-major order
            (``skimage.measure.label`` + ``argmax``).
        mse_scale: factor applied to the per-image mean squared error.
        mad_scale: factor applied to the per-image mean absolute difference.
        reproduces: which papers' tables these numbers are comparable with.

    SAD (sum / 1000) and Conn (sum / 1000) have the same scale in every preset.
    """

    name: str
    region: Region
    gradient: GradientKind
    conn_component: ComponentRule
    conn_tie_break: TieBreak
    mse_scale: float
    mad_scale: float
    reproduces: str


DIM = MattingPreset(
    name="dim",
    region="trimap_unknown",
    gradient="gaussian_minmax",
    conn_component="largest_foreground",
    conn_tie_break="column_major",
    mse_scale=1.0,
    mad_scale=1.0,
    reproduces=(
        "DIM's MATLAB evaluation code (Xu et al. 2017, after Rhemann et al. 2009): the "
        "Composition-1k / Distinctions-646 tables of trimap-based methods evaluated with it, and "
        "alphamatting.com-style SAD/MSE/Grad/Conn. MSE and MAD are raw means (papers usually "
        "print them x1e3); without a trimap (trimap-free methods) U is the whole image."
    ),
)
"""DIM's MATLAB evaluation: unknown region of the trimap, mat2gray + Gaussian Grad, exact Conn."""

ZIM = MattingPreset(
    name="zim",
    region="whole_image",
    gradient="sobel",
    conn_component="largest_foreground",
    conn_tie_break="row_major",
    mse_scale=1e3,
    mad_scale=1e3,
    reproduces=(
        "ZIM (Kim et al., ICCV 2025), MicroMat-3K tables (SAD, MSE, MAE, Grad, Conn), as computed "
        "by naver-ai/ZIM eval/metric.py: whole image, MSE/MAE x1e3, Grad = mean L1 of Sobel "
        "gradient magnitudes x1e3."
    ),
)
"""ZIM's eval/metric.py: whole image, Sobel Grad (mean x1e3), Conn with background excluded."""

SDMATTE = MattingPreset(
    name="sdmatte",
    region="whole_image",
    gradient="gaussian",
    conn_component="largest_label_with_background",
    conn_tie_break="row_major",
    mse_scale=1e3,
    mad_scale=1e3,
    reproduces=(
        "SDMatte / LiteSDMatte (ICCV 2025) tables on AIM-500, AM-2k, P3M-500-NP and "
        "RefMatte-RW-100 (MSE, MAD, SAD, Grad, Conn), as computed by vivoCameraResearch/SDMatte "
        "utils/evaluate.py + evaluation.py: whole image, MSE/MAD x1e3, Grad without min-max "
        "normalisation, Conn with the background-selecting bincount quirk."
    ),
)
"""SDMatte's utils/evaluate.py: whole image, Gaussian Grad on alpha/255, quirky Conn."""

PRESETS: dict[str, MattingPreset] = {preset.name: preset for preset in (DIM, ZIM, SDMATTE)}
#: The shipped presets' names, for signatures that take one (jsonargparse checks a
#: ``--model.metric_preset`` against it). Written once, here; a test keeps it equal to ``PRESETS``.
PresetName = Literal["dim", "zim", "sdmatte"]


def resolve_preset(preset: str | MattingPreset) -> MattingPreset:
    """Return the preset named ``preset`` (or ``preset`` itself when it already is one)."""
    if isinstance(preset, MattingPreset):
        return preset
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ValueError(
            f"preset must be one of {sorted(PRESETS)} or a MattingPreset, got {preset!r}"
        ) from None
