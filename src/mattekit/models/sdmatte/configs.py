"""diffusers configurations of SDMatte's UNet and autoencoders, paper size and tiny.

The paper size is Stable Diffusion 2's (``stabilityai/stable-diffusion-2``'s ``unet/config.json``
and ``vae/config.json``) with 8 input channels; LiteSDMatte prunes it to one residual +
attention pair per down stage (BK-SDM-v2-Base, :mod:`mattekit.nn.unet_pruning`). The tiny
size keeps the structure (three levels, cross-attention in the first two, a mid block with
cross-attention) at a width that trains on a CPU; no diffusion prior exists at that size.
"""

from __future__ import annotations

from typing import Any

VARIANTS = ("sd2", "tiny")

# Sinusoidal width per click coordinate: 84 at SD 2 size (10 clicks x 2 x 84 = 1680).
POINT_DIMS = {"sd2": 84, "tiny": 8}
# Image latent + prompt-map latent, concatenated.
UNET_IN_CHANNELS = 8
LATENT_CHANNELS = 4

_SD2_UNET: dict[str, Any] = {
    "act_fn": "silu",
    # diffusers reads SD 2's ``attention_head_dim`` as the number of heads (a naming quirk kept
    # for compatibility): 5 / 10 / 20 / 20 heads of width 64.
    "attention_head_dim": [5, 10, 20, 20],
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "use_linear_projection": True,
    # SD 2.0's and the SDMatte release's unet/config.json omit it (diffusers' default, False);
    # SD 2.1's sets it. A pretrained folder's own config decides; the processors follow the
    # layers' flag (mattekit.nn.sd_attention.attend).
    "upcast_attention": False,
    "sample_size": 96,
}

_TINY_UNET: dict[str, Any] = {
    **_SD2_UNET,
    "attention_head_dim": [2, 4, 4],
    "block_out_channels": [32, 64, 64],
    "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D"] * 2 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 2,
    "norm_num_groups": 8,
    "sample_size": 16,
}

_SD2_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": LATENT_CHANNELS,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}

_TINY_VAE: dict[str, Any] = {
    **_SD2_VAE,
    "block_out_channels": [8, 16, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "sample_size": 128,
}

# TAESD (diffusers ``AutoencoderTiny`` defaults, ``madebyollin/taesd``): 2.4M parameters.
_TAESD: dict[str, Any] = {
    "encoder_block_out_channels": [64, 64, 64, 64],
    "decoder_block_out_channels": [64, 64, 64, 64],
    "num_encoder_blocks": [1, 3, 3, 3],
    "num_decoder_blocks": [3, 3, 3, 1],
    "latent_channels": LATENT_CHANNELS,
    "scaling_factor": 1.0,
}

_TINY_TAESD: dict[str, Any] = {
    **_TAESD,
    "encoder_block_out_channels": [8, 8, 8, 8],
    "decoder_block_out_channels": [8, 8, 8, 8],
    "num_encoder_blocks": [1, 1, 1, 1],
    "num_decoder_blocks": [1, 1, 1, 1],
}


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def unet_config(variant: str, layers_per_block: int = 2) -> dict[str, Any]:
    """UNet2DConditionModel config with 8 input channels (``layers_per_block=1``: LiteSDMatte)."""
    _check(variant)
    config = dict(_SD2_UNET if variant == "sd2" else _TINY_UNET)
    config.update(in_channels=UNET_IN_CHANNELS, layers_per_block=layers_per_block)
    return config


def sd_unet_config(variant: str) -> dict[str, Any]:
    """The unmodified Stable Diffusion UNet config (4 input channels): a pretrained folder's."""
    _check(variant)
    return dict(_SD2_UNET if variant == "sd2" else _TINY_UNET)


def vae_config(variant: str, tiny_autoencoder: bool = False) -> dict[str, Any]:
    """AutoencoderKL config, or AutoencoderTiny's (TAESD) with ``tiny_autoencoder``."""
    _check(variant)
    if tiny_autoencoder:
        return dict(_TAESD if variant == "sd2" else _TINY_TAESD)
    return dict(_SD2_VAE if variant == "sd2" else _TINY_VAE)
