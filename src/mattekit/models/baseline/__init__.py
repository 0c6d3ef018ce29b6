"""A small prompt-conditioned U-Net: the smoke model and reference row."""

from mattekit.models.baseline.lightning_model import Baseline
from mattekit.models.registry import ModelEntry, register_model

register_model(
    ModelEntry(
        "baseline",
        Baseline,
        "small prompt-conditioned U-Net; smoke model and reference row",
        tiny={"base_channels": 8, "depth": 2},
    )
)
