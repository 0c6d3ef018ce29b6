"""TeachDiffusionMatting: text-grounded SD teacher, pruned student, detail decoder."""

from mattekit.models.registry import ModelEntry, register_model
from mattekit.models.teachmatte.lightning_model import TeachMatte

register_model(
    ModelEntry(
        "teachmatte",
        TeachMatte,
        "TeachDiffusionMatting: text-grounded SD teacher, BK-SDM-Tiny sparse-attention "
        "student distilled from it, detail decoder; three stages (TMLR 2025)",
        tiny={"variant": "tiny"},
        paper_size={"variant": "sd21"},
        stages=("teacher", "student", "decoder"),
    )
)
