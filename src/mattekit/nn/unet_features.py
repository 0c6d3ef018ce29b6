"""The features after each stage of a diffusers UNet, captured by forward hooks.

Distillation between UNets of different depth (a BK-SDM-pruned student and its teacher) compares
what leaves each down block, the mid block and each up block: the stages keep their widths and
resolutions when blocks are pruned inside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn


def unet_stages(unet: nn.Module) -> list[nn.Module]:
    """The down blocks, the mid block (if any) and the up blocks, in execution order."""
    mid = [unet.mid_block] if getattr(unet, "mid_block", None) is not None else []
    return [*unet.down_blocks, *mid, *unet.up_blocks]


@contextmanager
def captured_stage_features(unet: nn.Module) -> Iterator[list[Tensor]]:
    """Within the block, each forward of ``unet`` appends its stage outputs (B x C x h x w,
    execution order) to the yielded list; a down block's skip connections are left out."""
    features: list[Tensor] = []

    def keep(_module: nn.Module, _inputs, output) -> None:
        features.append(output[0] if isinstance(output, tuple) else output)

    handles = [stage.register_forward_hook(keep) for stage in unet_stages(unet)]
    try:
        yield features
    finally:
        for handle in handles:
            handle.remove()
