"""Activation checkpointing: declared blocks keep only their inputs and recompute their
activations in backward (``torch.utils.checkpoint``, non-reentrant).

A family declares its blocks (:meth:`~mattekit.models.base.MattingModule.checkpointed_blocks`:
SAM's or ViTMatte's ViT blocks, the SD UNets' resnet and transformer blocks, Hiera's blocks) and
``--model.activation_checkpointing`` hands them to :func:`checkpoint_blocks`. Each block keeps
its class, its parameter names (checkpoints load unchanged) and its own hooks; hooks on modules
inside it run again when it is recomputed.

A block is recomputed only where autograd keeps its activations: grad enabled, not traced for an
export, and a trainable parameter in it or an input that needs a gradient. Validation, test,
predict (no grad) and frozen blocks fed by frozen ones (SAMA's SAM encoder, a distillation
teacher under ``no_grad``) run the plain forward: checkpointing them would cost a second
forward and save nothing.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint


def checkpoint_blocks(blocks: Sequence[nn.Module], owner: str) -> None:
    """Recompute each of ``blocks`` in backward from now on (see the module docstring).

    Args:
        blocks: the modules to recompute; each is patched in place (calling it twice is
            harmless).
        owner: the family, named in errors.

    Raises:
        ValueError naming ``owner``: no blocks (the switch would silently do nothing), or a
        block holding BatchNorm, whose running statistics a recomputation would update twice.
    """
    if not blocks:
        raise ValueError(
            f"{owner}: activation_checkpointing is on but this model declares no blocks to "
            "recompute (checkpointed_blocks() is empty); set --model.activation_checkpointing "
            "false"
        )
    for block in blocks:
        norms = [name for name, m in block.named_modules() if isinstance(m, _BatchNorm)]
        if norms:
            raise ValueError(
                f"{owner}: {type(block).__name__} cannot be checkpointed: its BatchNorm "
                f"{norms[0] or '(the block)'} would update its running statistics twice"
            )
        block.forward = types.MethodType(_checkpointed_forward, block)


def is_checkpointed(block: nn.Module) -> bool:
    """Whether :func:`checkpoint_blocks` patched ``block``."""
    forward = block.__dict__.get("forward")
    return getattr(forward, "__func__", None) is _checkpointed_forward


def _checkpointed_forward(block: nn.Module, *args: object, **kwargs: object) -> object:
    # The class's forward, bound: the instance attribute is this function.
    forward = type(block).forward.__get__(block)
    if not _keeps_activations(block, [*args, *kwargs.values()]):
        return forward(*args, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def _keeps_activations(block: nn.Module, inputs: list[object]) -> bool:
    """Whether autograd would keep ``block``'s activations for a backward on these inputs."""
    if not torch.is_grad_enabled() or torch.jit.is_tracing():
        return False
    if any(p.requires_grad for p in block.parameters()):
        return True
    return any(t.requires_grad for t in _tensors(inputs))


def _tensors(values: Iterable[object]) -> Iterable[torch.Tensor]:
    """The tensors in ``values``, looking into lists, tuples and dicts (diffusers' kwargs)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, list | tuple):
            yield from _tensors(value)
        elif isinstance(value, dict):
            yield from _tensors(value.values())
