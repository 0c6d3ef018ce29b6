"""A SAM checkpoint into mattekit's SAM build (ZIM's ``Zim``, which SAMA's SAM also is)."""

from __future__ import annotations

from torch import nn

from mattekit.weights.sam import LoadReport, load_sam_checkpoint

#: SAM's transposed convolutions, in a SAM checkpoint and in the build (under its pixel decoder).
SAM_UPSCALING = "mask_decoder.output_upscaling."
BUILD_UPSCALING = "mask_decoder.pixel_decoder.upscaling."
PIXEL_DECODER = "mask_decoder.pixel_decoder."


def load_sam_weights(model: nn.Module, path: str) -> LoadReport:
    """Initialise a SAM build from a SAM checkpoint of the same size.

    ``path`` is an official SAM checkpoint or a mattekit ZIM checkpoint (a Lightning
    ``.ckpt``, or the network's state dict), for example the tiny SAM that the CPU-scale
    ablations pretrain. Everything SAM has is copied. With SAM's decoder (the build has
    SAM's transposed convolutions, under its pixel decoder) they are loaded into it; with ZIM's
    hierarchical decoder the pixel decoder (new in ZIM) stays at its random initialisation
    unless the checkpoint has one, and SAM's transposed convolutions are dropped.
    """
    if any(key.startswith(BUILD_UPSCALING) for key in model.state_dict()):
        return load_sam_checkpoint(model, path, renames={SAM_UPSCALING: BUILD_UPSCALING})
    return load_sam_checkpoint(
        model,
        path,
        renames={BUILD_UPSCALING: SAM_UPSCALING},
        new_modules=(PIXEL_DECODER,),
        dropped=(SAM_UPSCALING,),
    )
