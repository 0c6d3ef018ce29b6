"""ViTMatte: a plain ViT + detail capture on image and trimap, the trimap-based reference."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.vitmatte.lightning_model import ViTMatte

register_model(
    ModelEntry(
        "vitmatte",
        ViTMatte,
        "ViTMatte: plain ViT + detail capture, trimap-based reference (Information Fusion 2024)",
        tiny={"variant": "tiny"},
        paper_size={"variant": "vit_b"},
    )
)
