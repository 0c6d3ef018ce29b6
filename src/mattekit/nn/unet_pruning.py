"""BK-SDM block pruning: a UNet with fewer blocks, initialised from the teacher's retained ones.

Two families prune a Stable Diffusion UNet: LiteSDMatte (BK-SDM-Base: one residual + attention
pair per down stage) and TeachDiffusionMatting's student (BK-SDM-Tiny: also no mid block and no
innermost stage).

- A down stage keeps its first ``layers_per_block`` pairs.
- An up stage has one pair more than a down stage; it keeps its first ``layers_per_block`` pairs
  and its last one, so that every kept pair reads a skip connection of the same width as in the
  teacher (the removed middle pair read a skip that the pruned down stage no longer produces).
- Tiny drops the innermost down stage (SD's plain 8 x 8 ``DownBlock2D``) and the up stage that
  mirrors it; the new innermost down stage loses its downsampler, and student up stage ``i``
  starts from teacher up stage ``i + 1``. Every kept pair's input width is the teacher's.
- Everything else (time embedding, ``conv_in``, ``conv_out``) is kept whole.
"""

from __future__ import annotations

import re
from typing import Any

from diffusers import UNet2DConditionModel
from torch import Tensor

_STAGE_PAIR = re.compile(r"^(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.")
_STAGE = re.compile(r"^(down|up)_blocks\.(\d+)\.")
_PER_STAGE_KEYS = ("attention_head_dim", "num_attention_heads", "transformer_layers_per_block")


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


def pruned_config(
    teacher_config: dict[str, Any], layers_per_block: int = 1, tiny: bool = False
) -> dict[str, Any]:
    """The student's diffusers config: ``layers_per_block`` pairs per down stage; with ``tiny``
    also no mid block and no innermost stage (BK-SDM-Tiny)."""
    # diffusers' private entries (``_use_default_values`` among them) would let from_config
    # restore defaults over the values set here.
    config = {k: v for k, v in teacher_config.items() if not k.startswith("_")}
    config["layers_per_block"] = layers_per_block
    if tiny:
        if len(config["down_block_types"]) < 2:
            raise ValueError("tiny pruning needs a UNet with at least two stages")
        config["down_block_types"] = list(config["down_block_types"])[:-1]
        config["up_block_types"] = list(config["up_block_types"])[1:]
        config["block_out_channels"] = list(config["block_out_channels"])[:-1]
        for key in _PER_STAGE_KEYS:
            if isinstance(config.get(key), (list, tuple)):
                config[key] = list(config[key])[:-1]
        config["mid_block_type"] = None
    return config


def pruned_state_dict(
    teacher_state: dict[str, Tensor],
    teacher_layers: int,
    student_layers: int,
    up_stage_offset: int = 0,
) -> dict[str, Tensor]:
    """The teacher's UNet state dict renamed for the student: kept pairs renumbered, student up
    stage ``i`` from teacher up stage ``i + up_stage_offset``. Entries of dropped stages stay
    under their old names; the caller keeps those the student has."""
    keep = {d: kept_pairs(d, teacher_layers, student_layers) for d in ("down", "up")}
    source_of = {d: {src: dst for dst, src in enumerate(keep[d])} for d in keep}
    state: dict[str, Tensor] = {}
    for key, value in teacher_state.items():
        stage_match = _STAGE.match(key)
        if stage_match is None:
            state[key] = value
            continue
        direction, stage = stage_match.groups()
        stage = int(stage) - (up_stage_offset if direction == "up" else 0)
        if stage < 0:
            continue
        match = _STAGE_PAIR.match(key)
        if match is None:  # a stage's downsampler or upsampler
            state[f"{direction}_blocks.{stage}.{key[stage_match.end() :]}"] = value
            continue
        kind, index = match.group(3), int(match.group(4))
        if (target := source_of[direction].get(index)) is not None:
            prefix = f"{direction}_blocks.{stage}.{kind}.{target}."
            state[prefix + key[match.end() :]] = value
    return state


def prune_unet(
    teacher: UNet2DConditionModel, layers_per_block: int = 1, tiny: bool = False
) -> UNet2DConditionModel:
    """A pruned UNet (:func:`pruned_config`) with its weights copied from ``teacher``.

    Raises:
        RuntimeError (from ``load_state_dict``) if a kept block's shape differs from the
        teacher's, or if the student has a weight the teacher cannot supply.
    """
    config = dict(teacher.config)
    student = UNet2DConditionModel.from_config(pruned_config(config, layers_per_block, tiny))
    state = pruned_state_dict(
        teacher.state_dict(), config["layers_per_block"], layers_per_block, int(tiny)
    )
    own = student.state_dict()
    # Dropped stages, the mid block and the innermost downsampler have no place in the student.
    student.load_state_dict({k: v for k, v in state.items() if k in own}, strict=True)
    return student
