"""The converter's image encoder: timm's Hiera on 4 input channels, features at 4 strides.

No pretrained weights can be downloaded here, so Hiera is always built with ``pretrained=False``
and optionally initialised from a local file (:func:`load_hiera_weights`).

Checkpoint format (what :func:`load_hiera_weights` reads): a Hiera state dict, either

- a ``.safetensors`` file, or
- a ``torch.save`` file (``.pt`` / ``.pth``), read with ``weights_only=True``; the state dict may
  sit at the top level or under ``"model"``, ``"state_dict"``, ``"module"`` or ``"model_state"``
  (read by :func:`mattekit.weights.load_state_dict`, the one reader every family uses).

Keys are timm's (``patch_embed.proj.weight``, ``blocks.0.attn.qkv.weight``, ...); the official
Hiera release's names are mapped by timm's own filter. Two differences from this backbone are
adapted: an RGB patch embedding (3 input channels) gets a fourth, zero-initialised mask channel,
so the loaded network starts out exactly as the RGB one did; and a position embedding for another
token grid (the 224 px release at 1024 px) is resampled. Classifier-head keys are ignored.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import timm
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.hiera import Hiera, checkpoint_filter_fn
from torch import Tensor, nn

from mattekit.weights import load_state_dict

logger = logging.getLogger(__name__)

PATCH_EMBED_WEIGHT = "patch_embed.proj.weight"


def build_hiera(timm_name: str, image_size: int, in_chans: int = 4, **overrides) -> Hiera:
    """A randomly initialised timm Hiera for ``image_size`` x ``image_size`` inputs, head removed.

    Args:
        timm_name: a registered timm Hiera (``"hiera_base_plus_224"``); ``overrides`` change its
            configuration (``embed_dim``, ``stages``, ...).
        image_size: input side; Hiera's token grid is fixed at construction and needs
            ``image_size`` divisible by 32 (patch stride 4 x three 2x poolings).
        in_chans: input channels (RGB + mask).
    """
    if image_size % 32:
        raise ValueError(f"Hiera needs an input side divisible by 32, got image_size={image_size}")
    hiera = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=0,
        in_chans=in_chans,
        img_size=(image_size, image_size),
        **overrides,
    )
    # The classifier head's norm never sees the dense features; an unused parameter breaks DDP.
    hiera.prune_intermediate_layers(len(hiera.stage_ends), prune_head=True)
    return hiera


class HieraEncoder(nn.Module):
    """Hiera's stage outputs at strides 4, 8, 16 and 32 (channels ``C, 2C, 4C, 8C``).

    Hiera's token grid is fixed when it is built, so an input of another size is resized to
    ``image_size`` for the backbone, and the features are resized back to the input's strides.

    Args:
        hiera: a timm :class:`~timm.models.hiera.Hiera` (see :func:`build_hiera`).
    """

    def __init__(self, hiera: Hiera) -> None:
        super().__init__()
        self.hiera = hiera
        self.image_size = tuple(
            t * s for t, s in zip(hiera.tokens_spatial_shape, hiera.patch_stride, strict=True)
        )
        self.channels = [info["num_chs"] for info in hiera.feature_info]
        self.strides = [info["reduction"] for info in hiera.feature_info]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Multi-scale features.

        Args:
            x: B x C_in x H x W (normalised RGB + mask).

        Returns:
            ``[B x C_i x ceil(H / s_i) x ceil(W / s_i)]`` for strides ``s_i`` = 4, 8, 16, 32.
        """
        size = tuple(x.shape[-2:])
        if size != self.image_size:
            x = F.interpolate(x, self.image_size, mode="bilinear", align_corners=False)
        features = self.hiera.forward_intermediates(x, intermediates_only=True)
        if size == self.image_size:
            return features
        return [
            F.interpolate(
                feature,
                (math.ceil(size[0] / stride), math.ceil(size[1] / stride)),
                mode="bilinear",
                align_corners=False,
            )
            for feature, stride in zip(features, self.strides, strict=True)
        ]


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A Hiera state dict in timm's key names from a file (format: this module's docstring)."""
    state = load_state_dict(path)  # the shared safe reader: weights only, unwrapped
    return checkpoint_filter_fn(state)  # timm's renames: official Hiera release -> timm keys


def _adapt_to(state: dict[str, Tensor], hiera: Hiera) -> dict[str, Tensor]:
    """Drop head keys, widen an RGB patch embedding, resample a position embedding."""
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    weight = state.get(PATCH_EMBED_WEIGHT)
    expected_in = hiera.patch_embed.proj.in_channels
    if weight is not None and weight.shape[1] < expected_in:
        # Zero filters for the extra (mask) channel: at step 0 the network is the RGB one.
        widened = weight.new_zeros(weight.shape[0], expected_in, *weight.shape[2:])
        widened[:, : weight.shape[1]] = weight
        state[PATCH_EMBED_WEIGHT] = widened
    pos_embed = state.get("pos_embed")
    if (
        pos_embed is not None
        and hiera.pos_embed is not None
        and pos_embed.shape != hiera.pos_embed.shape
    ):
        state["pos_embed"] = resample_abs_pos_embed(
            pos_embed, list(hiera.tokens_spatial_shape), num_prefix_tokens=0
        )
    return state


def load_hiera_weights(hiera: Hiera, path: str | Path) -> None:
    """Initialise ``hiera`` from a local checkpoint (format: this module's docstring).

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when the file is missing, is not a state
            dict, lacks backbone weights or holds tensors of other shapes.
    """
    state = _adapt_to(read_state_dict(path), hiera)
    try:
        missing, unexpected = hiera.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches: another Hiera size
        raise ValueError(f"{path}: does not fit this Hiera variant: {error}") from error
    if missing:
        raise ValueError(
            f"{path}: not a checkpoint of this Hiera variant; {len(missing)} weights missing "
            f"(first: {', '.join(missing[:3])})"
        )
    if unexpected:
        logger.warning(
            "%s: ignored %d keys that are not backbone weights (first: %s)",
            path,
            len(unexpected),
            unexpected[0],
        )
    logger.info("label converter backbone: Hiera weights loaded from %s", path)
