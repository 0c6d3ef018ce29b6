"""The features after each stage of a diffusers UNet, captured by forward hooks.

Distillation between UNets of different depth (a BK-SDM-pruned student and its teacher) compares
what leaves each down block, the mid block and each up block: the stages keep their widths and
resolutions when blocks are pruned inside them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D
from torch import Tensor, nn


def unet_blocks(unet: nn.Module) -> list[nn.Module]:
    """The UNet's resnet and transformer blocks, in module order: what diffusers' own gradient
    checkpointing recomputes, and ``--model.activation_checkpointing`` does for the SD families
    (:mod:`mattekit.nn.activation_checkpointing`)."""
    return [m for m in unet.modules() if isinstance(m, ResnetBlock2D | BasicTransformerBlock)]


def unet_stages(unet: nn.Module) -> list[nn.Module]:
    """The down blocks, the mid block (if any) and the up blocks, in execution order."""
    mid = [unet.mid_block] if getattr(unet, "mid_block", None) is not None else []
    return [*unet.down_blocks, *mid, *unet.up_blocks]


@contextmanager
def captured_stage_features(unet: nn.Module) -> Iterator[list[Tensor]]:
    """Within the block, each forward of ``unet`` appends its stage outputs (B x C x h x w,
    execution order) to the yielded list; a down block's skip connections are left out."""
    with captured_outputs(unet_stages(unet)) as features:
        yield features


@contextmanager
def captured_trunk_features(unet: nn.Module) -> Iterator[list[Tensor]]:
    """Within the block, each forward of ``unet`` appends the three tensors SDMatte's release
    distils (``utils/replace.py:491, 507, 539``): the output of the whole down stack, of the
    mid block and of the whole up stack (B x C x h x w each, in that order)."""
    down, up = unet.down_blocks[-1], unet.up_blocks[-1]
    mid = getattr(unet, "mid_block", None)
    # without a mid block the release appends the down stack's output a second time
    with captured_outputs([down, down if mid is None else mid, up]) as features:
        yield features


@contextmanager
def captured_outputs(modules: Sequence[nn.Module]) -> Iterator[list[Tensor]]:
    """Within the block, each forward of a module in ``modules`` appends its output (the first
    element of a tuple) to the yielded list, in execution order."""
    features: list[Tensor] = []

    def keep(_module: nn.Module, _inputs, output) -> None:
        features.append(output[0] if isinstance(output, tuple) else output)

    handles = [module.register_forward_hook(keep) for module in modules]
    try:
        yield features
    finally:
        for handle in handles:
            handle.remove()
