"""Reading a local diffusers Stable Diffusion folder (``StableDiffusionPipeline.save_pretrained``'s
layout): the UNet and the autoencoder, nothing downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from diffusers import AutoencoderKL, UNet2DConditionModel

from mattekit.errors import RefusedFileError
from mattekit.weights.refusals import first_line

_Model = TypeVar("_Model")


def from_local_folder(cls: type[_Model], folder: str | Path) -> _Model:
    """``cls.from_pretrained(folder)`` (a diffusers model: ``config.json`` + weights), nothing
    downloaded.

    Raises:
        RefusedFileError naming the folder when its config or weights cannot be read.
    """
    try:
        return cls.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        # Not chained: a torch error under diffusers' would advise weights_only=False.
        raise RefusedFileError(
            f"{folder}: not a readable diffusers {cls.__name__} folder ({first_line(error)})"
        ) from None


def load_unet_and_vae(folder: str | Path) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """``(unet, vae)`` from ``folder/unet`` and ``folder/vae`` (``config.json`` + weights).

    Raises:
        FileNotFoundError naming the folder and the missing part; RefusedFileError when a part's
        weights cannot be read.
    """
    folder = Path(folder)
    for part in ("unet", "vae"):
        if not (folder / part / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder}: not a diffusers Stable Diffusion folder (no {part}/config.json)"
            )
    return (
        from_local_folder(UNet2DConditionModel, folder / "unet"),
        from_local_folder(AutoencoderKL, folder / "vae"),
    )
