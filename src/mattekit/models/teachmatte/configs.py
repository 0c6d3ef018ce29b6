"""Sizes of TeachDiffusionMatting's parts: Stable Diffusion 1.5 / 2.0 / 2.1 and a tiny variant.

The paper trains on SD 1.5 by default and reports SD 2.0 and 2.1 (appendix Table 9); the release
ships an SD 2.1 student. SD 2.0 and 2.1 share one UNet and VAE architecture (their weights
differ). The text encoder is OpenCLIP's: ViT-L-14 for SD 1.5 (SD 1.5 conditions on OpenAI CLIP
ViT-L/14's last layer, which open_clip provides as ``ViT-L-14``/``openai``) and ViT-H-14 for SD 2.x
(its penultimate layer, as SD 2 does). The tiny variant keeps the structure (three
cross-attention stages and a plain innermost one, so BK-SDM-Tiny pruning applies) at a width
that trains on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mattekit.models.sdmatte.configs import sd_unet_config, vae_config

VARIANTS = ("sd15", "sd20", "sd21", "tiny")

#: Text tokens per prompt: the release's 40 (of CLIP's 77 positions).
TEXT_TOKENS = 40

_SD15_UNET: dict[str, Any] = {
    **sd_unet_config("sd2"),
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "use_linear_projection": False,
    "sample_size": 64,
}

_TINY_UNET: dict[str, Any] = {
    **sd_unet_config("sd2"),
    "attention_head_dim": [2, 4, 4, 4],
    "block_out_channels": [32, 64, 64, 64],
    "cross_attention_dim": 32,
    "norm_num_groups": 8,
    "sample_size": 16,
}


@dataclass(frozen=True)
class TextTowerConfig:
    """An open_clip text transformer's shape and the layer whose tokens condition the UNet.

    Attributes:
        width, heads, layers: the transformer's.
        skip_last_layers: 1 reads the penultimate layer (SD 2.x), 0 the last (SD 1.5).
        embed_dim: width of open_clip's ``text_projection`` output (loaded, never used).
    """

    width: int
    heads: int
    layers: int
    skip_last_layers: int
    embed_dim: int
    context_length: int = 77
    vocab_size: int = 49408


_TEXT = {
    "sd15": TextTowerConfig(768, 12, 12, skip_last_layers=0, embed_dim=768),
    "sd2": TextTowerConfig(1024, 16, 24, skip_last_layers=1, embed_dim=1024),
    "tiny": TextTowerConfig(32, 2, 2, skip_last_layers=1, embed_dim=32),
}


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _family(variant: str) -> str:
    return "sd2" if variant in ("sd20", "sd21") else variant


def unet_config(variant: str) -> dict[str, Any]:
    """The unmodified Stable Diffusion UNet config of the variant (4 latent channels in)."""
    _check(variant)
    family = _family(variant)
    if family == "sd2":
        return sd_unet_config("sd2")
    return dict(_SD15_UNET if family == "sd15" else _TINY_UNET)


def text_config(variant: str) -> TextTowerConfig:
    """The open_clip text tower of the variant (ViT-L-14, ViT-H-14, or tiny)."""
    _check(variant)
    return _TEXT[_family(variant)]


def autoencoder_config(variant: str) -> dict[str, Any]:
    """AutoencoderKL config (SD 1.5's and SD 2's are the same architecture)."""
    _check(variant)
    return vae_config("tiny" if variant == "tiny" else "sd2")


#: Detail decoder widths ``(stream, fusion)``: ViTMatte's at paper size (2.5M parameters with the
#: student's 320-channel features); a quarter of them at the tiny size.
_DECODER = {
    "paper": ((48, 96, 192), (256, 128, 64, 32)),
    "tiny": ((12, 24, 48), (64, 32, 16, 8)),
}


def decoder_widths(variant: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(stream, fusion)`` widths of the variant's detail decoder."""
    _check(variant)
    return _DECODER["tiny" if variant == "tiny" else "paper"]
