"""BK-SDM block pruning: a UNet with fewer residual + attention pairs, initialised from the
teacher's retained pairs (LiteSDMatte's UNet; BK-SDM-v2-Base at paper size).

A down stage keeps its first ``layers_per_block`` pairs. An up stage has one pair more than a
down stage; it keeps its first ``layers_per_block`` pairs and its last one, so that every kept
pair reads a skip connection of the same width as in the teacher (the removed middle pair read a
skip that the pruned down stage no longer produces). The mid block and everything outside the
stages are kept whole.
"""

from __future__ import annotations

import re

from diffusers import UNet2DConditionModel
from torch import Tensor

_STAGE_PAIR = re.compile(r"^(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.")


def kept_pairs(direction: str, teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher pair indices each student pair of a stage is copied from, in order."""
    if student_layers > teacher_layers:
        raise ValueError(
            f"a pruned UNet has at most the teacher's {teacher_layers} pairs per stage, "
            f"got layers_per_block={student_layers}"
        )
    if direction == "down":
        return list(range(student_layers))
    return [*range(student_layers), teacher_layers]


def pruned_state_dict(
    teacher_state: dict[str, Tensor], teacher_layers: int, student_layers: int
) -> dict[str, Tensor]:
    """The teacher's UNet state dict renamed for a student with ``student_layers`` per stage."""
    keep = {d: kept_pairs(d, teacher_layers, student_layers) for d in ("down", "up")}
    source_of = {d: {src: dst for dst, src in enumerate(keep[d])} for d in keep}
    state: dict[str, Tensor] = {}
    for key, value in teacher_state.items():
        match = _STAGE_PAIR.match(key)
        if match is None:
            state[key] = value
            continue
        direction, stage, kind, index = match.groups()
        if (target := source_of[direction].get(int(index))) is not None:
            prefix = f"{direction}_blocks.{stage}.{kind}.{target}."
            state[prefix + key[match.end() :]] = value
    return state


def prune_unet(teacher: UNet2DConditionModel, layers_per_block: int = 1) -> UNet2DConditionModel:
    """A UNet with ``layers_per_block`` pairs per down stage, weights copied from ``teacher``.

    Raises:
        RuntimeError (from ``load_state_dict``) if a kept pair's shape differs from the teacher's.
    """
    config = dict(teacher.config)
    teacher_layers = config["layers_per_block"]
    config["layers_per_block"] = layers_per_block
    student = UNet2DConditionModel.from_config(config)
    state = pruned_state_dict(teacher.state_dict(), teacher_layers, layers_per_block)
    student.load_state_dict(state, strict=True)
    return student
