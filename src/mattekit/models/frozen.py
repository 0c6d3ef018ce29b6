"""Frozen parts: submodules that never train (a frozen SAM, a VAE, a distillation teacher).

A frozen part is named by its dotted path on the LightningModule. It receives no gradient,
never reaches the optimiser, and stays in ``eval()`` through training, so its BatchNorm
statistics and dropout never change. A part can be kept out of checkpoints (a Stable Diffusion
teacher is gigabytes): the family then reads it from its own file every time it is built, even
when a trained run is restored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class FrozenPart:
    """One frozen submodule.

    Attributes:
        name: dotted path on the LightningModule (``"model.image_encoder"``, ``"teacher"``).
        in_checkpoint: False leaves its weights out of saved checkpoints; the family must then
            load it from its file in ``configure_models`` (``initial_weights(path, stored=False)``
            returns the path even when restoring).
    """

    name: str
    in_checkpoint: bool = True

    @property
    def prefix(self) -> str:
        return self.name + "."


def freeze_parts(module: nn.Module, parts: Iterable[FrozenPart]) -> None:
    """No gradients and eval mode for every part.

    Raises:
        ValueError naming ``freeze`` and the path when no submodule has that name.
    """
    for part in parts:
        try:
            submodule = module.get_submodule(part.name)
        except AttributeError as error:
            children = [name for name, _ in module.named_children()]
            raise ValueError(
                f"freeze: no submodule named '{part.name}' (top-level submodules: {children})"
            ) from error
        submodule.requires_grad_(False)
        submodule.eval()


def keep_frozen_in_eval(module: nn.Module, parts: Iterable[FrozenPart]) -> None:
    """Put the parts back in eval mode (after ``module.train()`` switched everything)."""
    for part in parts:
        module.get_submodule(part.name).eval()


def without_unstored_parts(
    state: Mapping[str, Tensor], parts: Iterable[FrozenPart]
) -> dict[str, Tensor]:
    """``state`` without the weights of parts kept out of checkpoints."""
    prefixes = tuple(part.prefix for part in parts if not part.in_checkpoint)
    if not prefixes:
        return dict(state)
    return {key: value for key, value in state.items() if not key.startswith(prefixes)}


def with_unstored_parts(
    state: Mapping[str, Tensor], module: nn.Module, parts: Iterable[FrozenPart]
) -> dict[str, Tensor]:
    """``state`` completed with ``module``'s current weights of parts kept out of checkpoints.

    Those parts were read from their own files when the module was built; a checkpoint that
    lacks them is complete, and one that has them (saved before the part was declared) wins.
    """
    prefixes = tuple(part.prefix for part in parts if not part.in_checkpoint)
    if not prefixes:
        return dict(state)
    # The module's state dict is built only here: most families store every part.
    current = module.state_dict()
    unstored = {k: v for k, v in current.items() if k.startswith(prefixes) and k not in state}
    return {**unstored, **state}
