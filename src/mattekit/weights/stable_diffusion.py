"""Reading a local diffusers Stable Diffusion folder (``StableDiffusionPipeline.save_pretrained``'s
layout): the UNet and the autoencoder, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, UNet2DConditionModel


def load_unet_and_vae(folder: str | Path) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """``(unet, vae)`` from ``folder/unet`` and ``folder/vae`` (``config.json`` + weights).

    Raises:
        FileNotFoundError naming the folder and the missing part.
    """
    folder = Path(folder)
    for part in ("unet", "vae"):
        if not (folder / part / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder}: not a diffusers Stable Diffusion folder (no {part}/config.json)"
            )
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", local_files_only=True)
    vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True)
    return unet, vae
