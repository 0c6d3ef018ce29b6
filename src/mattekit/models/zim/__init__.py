"""ZIM: SAM with a hierarchical pixel decoder and prompt-aware masked attention."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.zim.lightning_model import ZIM

register_model(
    ModelEntry(
        "zim",
        ZIM,
        "ZIM: SAM + hierarchical pixel decoder + prompt-aware masked attention "
        "(ICCV 2025 Highlight)",
        tiny={"variant": "tiny"},
        paper_size={"variant": "vit_b"},
    )
)
