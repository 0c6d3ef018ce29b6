"""What a family exports: networks of plain tensors, with named example inputs.

A family's :meth:`~mattekit.models.base.MattingModule.export_graphs` returns them. By default the
whole inference forward is one graph of the batch's tensors (:func:`batch_graph`); SAM-based
families split it as SAM's and ZIM's releases do, an image encoder run once per image and a
prompt decoder run per click.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from torch import Tensor, nn

from mattekit.data.sample import MattingBatch
from mattekit.prompts import KINDS

#: The batch tensors a whole-model graph takes: the image, its content size and every prompt
#: kind's tensor fields (:attr:`~mattekit.prompts.PromptKind.batch_fields`; those a forward does
#: not read are dropped by the ONNX exporter's optimiser or ignored at run time). A field left
#: out would be frozen into the graph at the example's value.
_TENSORS = {field.name for field in fields(MattingBatch) if field.type == "Tensor"}
BATCH_INPUTS = tuple(
    dict.fromkeys(
        [
            "image",
            *(name for kind in KINDS.values() for name in kind.batch_fields if name in _TENSORS),
            "content_size",
        ]
    )
)


@dataclass
class ExportGraph:
    """One network to export.

    Attributes:
        name: file stem (``model``, ``encoder``, ``decoder``).
        module: takes the ``inputs`` positionally, returns a tensor or a tuple of ``outputs``.
        inputs: example inputs by name, in call order.
        outputs: output names.
        dynamic: per input, ``{axis: name}`` of the axes that may change between calls (the
            number of clicks of a decoder).
        note: one line for the manifest: what the inputs are and what the caller does around it.
        checks: further input sets the exported file must also match PyTorch on (another scene,
            another number of clicks): a graph that froze a value of the example fails them.
    """

    name: str
    module: nn.Module
    inputs: dict[str, Tensor]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    note: str = ""
    checks: list[dict[str, Tensor]] = field(default_factory=list)


class BatchForward(nn.Module):
    """A family's ``forward(batch)`` as a function of :data:`BATCH_INPUTS`; the batch's other
    fields (ids, sizes, ground truth: not read by inference) come from the example batch."""

    def __init__(self, family: nn.Module, example: MattingBatch, outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.family = family
        self.example = example
        self.output_names = outputs

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        batch = replace(self.example, **dict(zip(BATCH_INPUTS, tensors, strict=True)))
        outputs = self.family(batch)
        return tuple(outputs[name] for name in self.output_names)


def batch_graph(family: nn.Module, example: MattingBatch) -> ExportGraph:
    """The whole inference forward as one graph: ``alpha`` (and ``alpha_logits`` where the
    family gives them: resize those, not the alpha, to the photo's size)."""
    produced = family(example)
    outputs = tuple(name for name in ("alpha", "alpha_logits") if name in produced)
    return ExportGraph(
        "model",
        BatchForward(family, example, outputs),
        {name: getattr(example, name) for name in BATCH_INPUTS},
        outputs,
        note="the data pipeline's batch tensors at the network input (MattingBatch fields)",
    )
