"""ZIM's label converter: segmentation mask + image -> matte (how SA1B-Matte was made)."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.zim_converter.lightning_model import ZIMLabelConverter

register_model(
    ModelEntry(
        "zim_converter",
        ZIMLabelConverter,
        "ZIM's label converter: image + segmentation mask -> matte (Hiera, MGMatting PRN)",
        tiny={"variant": "tiny", "image_size": 32},
        paper_size={"variant": "hiera_base_plus"},
    )
)
