"""SAMA (Segment And Matte Anything): SAM with multi-view local features, Local-Adapters and two
task heads (segmentation, matting)."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.sama.lightning_model import SAMA

register_model(
    ModelEntry(
        "sama",
        SAMA,
        "SAMA: frozen SAM + multi-view localization encoder + local adapters, "
        "segmentation and matting heads (AAAI 2026)",
        tiny={"variant": "tiny"},
        paper_size={"variant": "vit_b"},
    )
)
