"""Named evaluation protocols: how a test set is resized, prompted and scored.

A protocol fixes everything around the model that moves a published number: the input resize,
where clicks and the box come from, how they are rasterised, whether the referring expression
is used, and whether predictions are quantised to 8 bits before scoring. Three are defined:

- ``sdmatte``: vivoCameraResearch/SDMatte's test branch (``data/dataset.py:901-909``, the maps in
  :mod:`mattekit.prompts.release_maps`) and its scoring: ``inference.py:60`` resizes the float
  prediction back to the photo (``cv2.resize``, bilinear), then writes ``astype(uint8)`` PNGs,
  which ``evaluation.py`` scores against the stored GT over the whole image.
- ``zim``: naver-ai/ZIM's ``eval/``: MicroMat-3K's stored clicks and box, the longest side
  letterboxed to 1024 (``zim_anything/utils/utils.py``, ``modeling/zim.py:121-131``), the float
  sigmoid scored against the matte / 255 (``eval/metric.py``).
- ``shared``: mattekit's cross-family protocol (the benchmark's), every family at its own input
  convention.

No protocol samples negative clicks at evaluation: the SDMatte release draws none, and stored
clicks (MicroMat-3K's) keep their own labels. Every protocol is seeded by mattekit's evaluation
generator; the SDMatte release draws its clicks (and its coarse masks: test sets ship none) from
the unseeded global generators.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from mattekit.atomic_files import unit_to_uint8
from mattekit.data.prompts import PromptConfig

PointMap = Literal["gaussian", "filtered"]
BoxMap = Literal["inclusive", "exclusive"]
BoxSource = Literal["tight", "largest_component"]
Quantize = Literal["none", "round", "truncate"]
Resize = Literal["stretch", "letterbox"]

AlphaT = TypeVar("AlphaT", np.ndarray, Tensor)


@dataclass(frozen=True)
class EvaluationProtocol:
    """How a test set is resized, prompted and scored.

    Attributes:
        name: the protocol's name (a key of :data:`PROTOCOLS`).
        description: one line for table captions (``protocol: sdmatte (...)``).
        stored_prompts: use a dataset's stored clicks and box (MicroMat-3K's json, the
            benchmark's store) when it has them; the fields below then apply only to datasets
            without them.
        point_sigma: the click map's sigma as a fraction of the network side.
        point_map: ``"gaussian"``: mattekit's exact max of Gaussians
            (:func:`mattekit.nn.prompt_maps.gaussian_point_map`); ``"filtered"``: the release's
            blurred deltas (:func:`mattekit.prompts.release_maps.filtered_click_map`).
        box_map: ``"inclusive"``: corners inside the box (:func:`mattekit.nn.prompt_maps.box_mask`);
            ``"exclusive"``: the release's ``[y0:y1, x0:x1]``, without the last row and column
            (:func:`mattekit.prompts.release_maps.exclusive_box_map`).
        box_source: ``"tight"``: the box of ``alpha > 0``; ``"largest_component"``: the release's
            rule (:func:`mattekit.prompts.release_maps.largest_component_box`).
        box_jitter: each box edge moves by up to this fraction of the box's extent; 0 keeps
            test numbers independent of the seed.
        positive_clicks: clicks drawn from the GT when a sample has none stored.
        point_threshold: clicks are drawn where alpha exceeds it.
        relative_threshold: the threshold is a fraction of ``alpha.max()`` (mattekit:
            ``alpha >= t * max``, so a glass whose alpha never reaches 0.8 is clicked) rather
            than absolute (the release: ``alpha > t``, and no click at all when fewer than
            ``positive_clicks`` pixels pass).
        quantize: what the prediction becomes before scoring (:func:`quantized`): ``"none"``
            (floats), ``"round"`` (an 8-bit PNG as mattekit writes it), ``"truncate"`` (an 8-bit
            PNG as the SDMatte release writes it). The GT is scored as stored.
        input_convention: ``(side, resize)`` the whole evaluation runs at (``"stretch"`` to
            side x side; ``"letterbox"``: longest side to ``side``, padded bottom-right), or
            None for each model's own convention.
        text_to_cross_attention: a sample's referring expression (RefMatte-RW100) is fed to the
            text cross-attention (SDMatte's down and up blocks); otherwise the empty caption.
    """

    name: str
    description: str
    stored_prompts: bool
    point_sigma: float
    point_map: PointMap
    box_map: BoxMap
    box_source: BoxSource
    box_jitter: float
    positive_clicks: int
    point_threshold: float
    relative_threshold: bool
    quantize: Quantize
    input_convention: tuple[int, Resize] | None
    text_to_cross_attention: bool

    def prompt_config(self, base: PromptConfig) -> PromptConfig:
        """``base`` (a run's prompt settings) with this protocol's evaluation prompts:
        ``positive_clicks`` clicks and no negative ones, its threshold, maps, box and jitter,
        and a dataset's stored prompts used or not."""
        return replace(
            base,
            positive_points=(self.positive_clicks, self.positive_clicks),
            negative_points=(0, 0),
            point_threshold=self.point_threshold,
            absolute_threshold=not self.relative_threshold,
            point_sigma=self.point_sigma,
            point_map=self.point_map,
            box_source=self.box_source,
            box_map=self.box_map,
            box_jitter=self.box_jitter,
            use_source_prompts=self.stored_prompts,
        )

    def __post_init__(self) -> None:
        if self.point_sigma <= 0:
            raise ValueError(f"protocol {self.name}: point_sigma must be > 0")
        if self.box_jitter < 0:
            raise ValueError(f"protocol {self.name}: box_jitter must be >= 0")
        if self.positive_clicks < 1:
            raise ValueError(f"protocol {self.name}: positive_clicks must be >= 1")


SDMATTE = EvaluationProtocol(
    name="sdmatte",
    description="protocol: sdmatte (release data/dataset.py test branch, 8-bit truncated PNGs)",
    stored_prompts=False,  # the release samples from the alpha, even where a dataset has prompts
    point_sigma=35 / 1024,  # GenPoint(0.8, psm, radius + 10) with radius 25 (configs/*.py:26)
    point_map="filtered",  # dataset.py:290-291
    box_map="exclusive",  # dataset.py:247
    box_source="largest_component",  # dataset.py:206-229
    box_jitter=0.0,  # GenBBox() at test: coe_scale 0 (dataset.py:905)
    positive_clicks=10,  # dataset.py:272
    point_threshold=0.8,  # dataset.py:269, 906
    relative_threshold=False,
    quantize="truncate",  # inference.py:60: cv2.resize(...).astype(np.uint8)
    input_convention=(1024, "stretch"),  # Resize((1024, 1024)), dataset.py:902
    # RefMatte's last expression (dataset.py:74) reaches the down and up blocks' cross-attention
    # (meta_arch.py:176-190, use_encoder_hidden_states_list [False, True, False])
    text_to_cross_attention=True,
)

SHARED = EvaluationProtocol(
    name="shared",
    description="protocol: shared (mattekit's cross-family benchmark protocol, float scores)",
    stored_prompts=True,
    point_sigma=0.05,  # PromptConfig.point_sigma
    point_map="gaussian",
    box_map="inclusive",
    box_source="tight",
    # The benchmark's stored boxes, which every method shares, were drawn with
    # PromptConfig.box_jitter; its recorded tables were made with it.
    box_jitter=0.01,
    positive_clicks=1,  # the benchmark's Protocol.clicks
    point_threshold=0.8,
    relative_threshold=True,
    quantize="none",  # replace with "round" for DIM-style scoring of 8-bit PNGs
    input_convention=None,
    text_to_cross_attention=False,
)

ZIM = EvaluationProtocol(
    name="zim",
    description="protocol: zim (release eval/: stored MicroMat-3K prompts, letterbox 1024)",
    stored_prompts=True,  # eval/eval_loader.py: the json's "point" and "bbox"
    # ZIM reads clicks and boxes as coordinates and builds its attention map inside the model,
    # so the map fields are only for map-input families scored under this protocol: shared's.
    point_sigma=SHARED.point_sigma,
    point_map=SHARED.point_map,
    box_map=SHARED.box_map,
    box_source=SHARED.box_source,
    box_jitter=0.0,
    positive_clicks=SHARED.positive_clicks,
    point_threshold=SHARED.point_threshold,
    relative_threshold=SHARED.relative_threshold,
    quantize="none",  # eval/metric.py: the sigmoid vs matte / 255, both float
    input_convention=(1024, "letterbox"),  # ResizeLongestSide(1024), pad bottom-right
    text_to_cross_attention=False,
)

#: What tables say when evaluation prompts come from the run's own prompt sampler (the
#: DataModule's ``prompts``, seeded per sample) rather than a named protocol.
SAMPLED_PROTOCOL = "sampled"

#: The named protocols, by name.
PROTOCOLS: dict[str, EvaluationProtocol] = {p.name: p for p in (SDMATTE, ZIM, SHARED)}


def get_protocol(name: str) -> EvaluationProtocol:
    """The protocol called ``name``.

    Raises:
        ValueError: naming ``name`` and the known protocols.
    """
    if name not in PROTOCOLS:
        raise ValueError(
            f"protocol: unknown name {name!r}; known protocols: {', '.join(sorted(PROTOCOLS))}"
        )
    return PROTOCOLS[name]


def quantized(alpha: AlphaT, mode: Quantize) -> AlphaT:
    """``alpha`` as an 8-bit PNG would give it back: k / 255, k in 0 ... 255.

    ``"round"`` takes the nearest level (halves to even), as
    :func:`mattekit.atomic_files.unit_to_uint8` writes every matte; ``"truncate"`` the level
    below, as the SDMatte release's
    ``(alpha * 255).astype(np.uint8)`` does (0.999 -> 254 / 255, where rounding gives 255 / 255).
    Values are clipped to [0, 1] first (the release clips its output too). Products are taken in
    float32, as the release computes them.

    Args:
        alpha: any shape, float in [0, 1]; a numpy array or a tensor.
        mode: ``"none"`` (returned unchanged), ``"round"`` or ``"truncate"``.

    Returns:
        the same shape and kind: float32 for an array, the input's dtype for a tensor.
    """
    if mode == "none":
        return alpha
    if mode not in ("round", "truncate"):
        raise ValueError(f"quantized: mode must be 'none', 'round' or 'truncate', got {mode!r}")
    if isinstance(alpha, Tensor):
        scaled = alpha.float().clamp(0, 1) * 255
        levels = torch.round(scaled) if mode == "round" else torch.floor(scaled)
        return (levels / 255).to(alpha.dtype)
    if mode == "round":
        return unit_to_uint8(alpha).astype(np.float32) / 255
    scaled = np.clip(np.asarray(alpha, np.float32), 0, 1) * np.float32(255)
    return scaled.astype(np.uint8).astype(np.float32) / 255
