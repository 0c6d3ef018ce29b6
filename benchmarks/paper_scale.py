"""How each family (stage) is trained in its paper or release: the side, global batch and GPU
count the memory budget sizes configs for, the side the GPU check and the export benchmark run
at, and the memory a run holds between steps."""

from __future__ import annotations

from dataclasses import dataclass

from mattekit.pipelines.benchmark.resident import GIB


@dataclass(frozen=True)
class Case:
    """One family (stage) as its paper trains it.

    Attributes:
        side: the paper's training side (px).
        global_batch: the paper's global batch, None where the paper does not state it.
        gpus: the paper's GPU count (the config's device count), None where not stated.
        source: where ``side``, ``global_batch`` and ``gpus`` come from.
    """

    alias: str
    stage: str | None
    side: int
    global_batch: int | None
    gpus: int | None
    source: str

    @property
    def name(self) -> str:
        return self.alias if self.stage is None else f"{self.alias}_{self.stage}"


CASES = [
    Case("zim", None, 1024, 16, None, "ZIM §4.2: 1024 px, batch 16 (GPUs not stated)"),
    Case("zim_converter", None, 1024, 16, None, "ZIM §4.1: 1024 px, batch 16"),
    Case("sama", None, 1024, None, None, "SAMA: SAM ViT-B at 1024; batch not stated"),
    Case("vitmatte", None, 512, 20, 2, "ViTMatte release: 512 crops, 10 per GPU x 2"),
    Case("sdmatte", None, 512, 18, 2, "SDMatte: 9 per GPU x 2 H20; release trains at 512"),
    Case("litesdmatte", None, 512, 18, 2, "as SDMatte, with its teacher (distillation)"),
    Case("teachmatte", "teacher", 512, 32, 4, "TeachMatte Table 4: 512 px, 32 on 4 A100"),
    Case("teachmatte", "student", 512, 32, 2, "TeachMatte Table 4: 512 px, 32 on 2 A100"),
    Case("teachmatte", "decoder", 512, 16, 1, "TeachMatte Table 4: 512 px, 16 on 1 A100"),
]
#: The side of a family not in :data:`CASES` (the baseline: it has no paper).
DEFAULT_SIDE = 512


def paper_side(alias: str) -> int:
    """The side ``alias`` trains at in its paper or release (the GPU check's and the export
    benchmark's side too)."""
    return next((case.side for case in CASES if case.alias == alias), DEFAULT_SIDE)


#: Where the paper does not state a global batch: ZIM's 16 (the same SAM backbone).
DEFAULT_GLOBAL_BATCH, DEFAULT_GPUS = 16, 8


def state_gib(parameters: int, trainable: int) -> float:
    """What a run holds between steps, counted (GiB): fp32 weights and AdamW's two moments of
    the trainable ones. Gradients are set to None after each step, so a step's measured peak
    holds them."""
    return (4 * parameters + 8 * trainable) / GIB
