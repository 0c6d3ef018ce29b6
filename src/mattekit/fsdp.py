"""Sharded training (FSDP) of a :class:`~mattekit.models.base.MattingModule`, on GPUs or CPUs.

:class:`MattingFSDPStrategy` is Lightning's ``FSDPStrategy`` (torch's FSDP1, ``use_orig_params``)
fitted to the family contract:

- **Units**: each block the family declares in
  :meth:`~mattekit.models.base.MattingModule.checkpointed_blocks` (the SD UNets' resnet and
  transformer blocks, SAM's ViT blocks) is its own FSDP unit: its weights are gathered only
  while it runs. Everything else that trains forms the root unit. An ``auto_wrap_policy``
  given to the strategy replaces this.
- **Frozen parts** (:attr:`~mattekit.models.base.MattingModule.frozen_parts`: a VAE, a text
  encoder, a distillation teacher) are FSDP ``ignored_modules``: whole on every process, never
  gathered, never reduced, as under DDP. A teacher built when fitting starts (a resumed
  distillation) is added after wrapping and stays outside FSDP the same way.
- **Parameter groups**: the family's :meth:`parameter_groups` are computed before wrapping, on
  the names and shapes the user's ``lr_multipliers`` and ``no_decay`` rules refer to. Wrapped,
  the names carry ``_fsdp_wrapped_module.`` and every parameter is a flat 1-D shard (the
  ``ndim <= 1`` no-decay rule would spare all of them); FSDP keeps the parameter objects, so
  the groups made before wrapping are the optimiser's.
- **CPU**: Lightning refuses ``FSDPStrategy`` itself off a GPU (its accelerator connector checks
  the exact type); this subclass runs with gloo on CPU processes too, FSDP placed by
  ``device_id`` (without it torch's FSDP looks for an accelerator and stops: "FSDP needs a
  non-CPU accelerator device").
- **Same start everywhere**: the first process's weights, trained and frozen, are broadcast
  before wrapping (``sync_module_states``), as DDP does.
- **Checkpoints**: one file with the full state dict (``state_dict_type="full"``), read back
  weights-only like every checkpoint mattekit reads; frozen parts kept out of checkpoints are
  filled from the module, as :meth:`~mattekit.models.base.MattingModule.load_state_dict` does;
  the optimiser state is keyed by parameter name (:meth:`MattingFSDPStrategy.optimizer_state`).
- **Private APIs**: four of Lightning's private helpers (the full-state-dict context, moving
  torchmetrics, activation checkpointing, loading a raw state) and torch's
  ``clean_tensor_name`` are reused rather than rewritten, since their behaviour is what
  Lightning's own FSDP does. They are imported at module load, so a Lightning release that
  moves one fails ``import mattekit.fsdp`` (and ``tests/unit/test_fsdp_strategy.py``) at once,
  never mid-run; ``lightning`` is pinned below its next major version for that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.fabric.strategies.fsdp import (
    _get_full_state_dict_context,
    _move_torchmetrics_to_device,
    _setup_activation_checkpointing,
)
from lightning.fabric.strategies.model_parallel import _load_raw_module_state
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp._common_utils import clean_tensor_name
from torch.distributed.fsdp.wrap import CustomPolicy

from mattekit.models.base import MattingModule
from mattekit.models.frozen import FrozenPart
from mattekit.weights.files import read_weights_only

logger = logging.getLogger(__name__)


def frozen_modules(module: nn.Module, parts: list[FrozenPart]) -> list[nn.Module]:
    """The submodules of ``parts``, outermost only (a part inside another is left out)."""
    names = sorted({part.name for part in parts})
    outermost = [n for n in names if not any(n.startswith(other + ".") for other in names)]
    return [module.get_submodule(name) for name in outermost]


def declared_blocks(module: nn.Module) -> list[nn.Module]:
    """The blocks a :class:`MattingModule` declares in ``checkpointed_blocks()``; none for
    other modules, or where the family refuses activation checkpointing (TeachMatte's decoder
    stage raises: nothing of its trains in repeated blocks)."""
    if not isinstance(module, MattingModule):
        return []
    try:
        return module.checkpointed_blocks()
    except ValueError as refusal:
        logger.info("FSDP: one unit for what trains (%s)", refusal)
        return []


def block_policy(blocks: list[nn.Module]) -> CustomPolicy:
    """An FSDP auto-wrap policy making each of ``blocks`` (by identity) its own unit."""
    chosen = {id(block) for block in blocks}
    return CustomPolicy(lambda submodule: id(submodule) in chosen)


class MattingFSDPStrategy(FSDPStrategy):
    """Lightning's ``FSDPStrategy`` for matting families, on GPUs (NCCL) or CPUs (gloo).

    Takes ``FSDPStrategy``'s arguments (``sharding_strategy``, ``cpu_offload``, ...); see the
    module docstring for what it decides itself. ``state_dict_type="sharded"`` (one folder of
    shards per checkpoint) is refused: mattekit's commands read one file.

    Args:
        sync_module_states: broadcast the first process's weights (trained and frozen) when
            wrapping, as DDP does, so processes that built different random weights agree.
        **kwargs: ``FSDPStrategy``'s arguments.
    """

    strategy_name = "mattekit_fsdp"

    def __init__(self, *args: Any, sync_module_states: bool = True, **kwargs: Any) -> None:
        if kwargs.get("state_dict_type", "full") != "full":
            raise ValueError(
                "MattingFSDPStrategy: state_dict_type must be 'full' (one checkpoint file that "
                f"mattekit test / predict / export read), got {kwargs['state_dict_type']!r}"
            )
        super().__init__(*args, **kwargs)
        self.sync_module_states = sync_module_states
        self._groups: list[dict] | None = None

    def setup(self, trainer: L.Trainer) -> None:
        module = self.lightning_module
        if trainer.state.fn == TrainerFn.FITTING and isinstance(module, MattingModule):
            # Before wrapping: names and shapes as the family and the user's settings know them.
            self._groups = module.parameter_groups()
        try:
            super().setup(trainer)
        finally:
            self._groups = None

    def setup_optimizers(self, trainer: L.Trainer) -> None:
        if self._groups is None:
            super().setup_optimizers(trainer)
            return
        with _parameter_groups_pinned(self.lightning_module, self._groups):
            super().setup_optimizers(trainer)

    def _setup_model(self, model: nn.Module) -> nn.Module:
        if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            return super()._setup_model(model)  # wrapped by the module itself
        frozen = frozen_modules(model, getattr(model, "frozen_parts", []))
        options = dict(self.kwargs)
        options["ignored_modules"] = [*frozen, *options.get("ignored_modules", [])]
        if "auto_wrap_policy" not in options:
            inside_frozen = {id(m) for part in frozen for m in part.modules()}
            blocks = [b for b in declared_blocks(model) if id(b) not in inside_frozen]
            if blocks:
                options["auto_wrap_policy"] = block_policy(blocks)
        # FSDP moves what it manages, not its ignored modules, nor does it set the module's
        # ``device`` (a teacher built later is moved there); its own ``sync_module_states``
        # skips ignored modules and refuses CPU tensors. The whole module comes to the device
        # before sharding (SD 2 with its VAE and text encoder: about 5 GB in float32).
        model.to(self.root_device)
        if self.sync_module_states:
            _broadcast_from_first(model)
        wrapped = FullyShardedDataParallel(
            module=model,
            cpu_offload=self.cpu_offload,
            mixed_precision=self.mixed_precision_config,
            sharding_strategy=self.sharding_strategy,
            device_id=self.root_device,
            **options,
        )
        _move_torchmetrics_to_device(wrapped, self.root_device)
        _setup_activation_checkpointing(wrapped, self._activation_checkpointing_kwargs)
        return wrapped

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The whole optimiser state on the first process, keyed by parameter name.

        Lightning's FSDP keys it by position in ``model.parameters()`` and reads positions back
        the same way: with frozen parameters among them (a distillation teacher built in one
        run and not the next) or parameter groups in another order (decayed, then not), every
        state lands on another parameter (a tiny SDMatte resume fails on a shape mismatch).
        """
        if isinstance(optimizer, LightningOptimizer):
            optimizer = optimizer._optimizer
        with _get_full_state_dict_context(self.model, world_size=self.world_size):
            return FullyShardedDataParallel.optim_state_dict(self.model, optimizer)

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict:
        """Lightning's for one full-state file, but read weights-only whatever ``weights_only``
        (Lightning's FSDP reads it with a pickle loader), with the frozen parts kept out of
        checkpoints filled in from the module, and the optimiser state keyed by name
        (:meth:`optimizer_state`; a position-keyed one, written without FSDP, is converted by
        :func:`keyed_by_name`)."""
        path = Path(self.broadcast(checkpoint_path))
        if not path.is_file():
            raise FileNotFoundError(
                f"MattingFSDPStrategy: checkpoint {path} is not a file (a folder of shards is "
                "not read: mattekit writes one file, state_dict_type='full')"
            )
        checkpoint = dict(read_weights_only(path))
        module = self.lightning_module
        state = checkpoint.pop("state_dict")
        for part in getattr(module, "frozen_parts", []):
            if not part.in_checkpoint and _has_submodule(module, part.name):
                # Ignored by FSDP: its state dict is the plain one, on every process.
                own = module.get_submodule(part.name).state_dict(prefix=part.prefix)
                state = {**own, **state}
        _load_raw_module_state(
            state, module=self.model, world_size=self.world_size, strict=module.strict_loading
        )
        saved = checkpoint.get("optimizer_states")
        if saved is None or module.trainer.state.fn != TrainerFn.FITTING:
            return checkpoint
        if len(saved) != len(self.optimizers):
            raise RuntimeError(
                f"{path}: holds {len(saved)} optimiser states, the run has {len(self.optimizers)}"
            )
        names = {p: clean_tensor_name(n) for n, p in self.model.named_parameters()}
        with _get_full_state_dict_context(self.model, self.world_size, rank0_only=False):
            for optimizer, optimizer_state in zip(self.optimizers, saved, strict=True):
                if optimizer_state["state"] and isinstance(
                    next(iter(optimizer_state["state"])), int
                ):
                    optimizer_state = keyed_by_name(optimizer_state, optimizer, names)
                flat = FullyShardedDataParallel.optim_state_dict_to_load(
                    self.model, optimizer, optimizer_state
                )
                optimizer.load_state_dict(flat)
        return checkpoint


def keyed_by_name(state: dict, optimizer: torch.optim.Optimizer, names: dict) -> dict:
    """An optimiser state keyed by position (written without FSDP) keyed by parameter name.

    Positions are those of the optimiser's own groups, in order, as
    ``torch.optim.Optimizer.load_state_dict`` reads them; ``names`` maps each parameter to its
    name in the model.
    """
    positions = [i for group in state["param_groups"] for i in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(positions) != len(params):
        raise ValueError(
            f"the checkpoint's optimiser holds {len(positions)} parameters, this run's "
            f"{len(params)}: resume with the settings it was trained with"
        )
    name = dict(zip(positions, (names[p] for p in params), strict=True))
    groups = [{**g, "params": [name[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {name[i]: s for i, s in state["state"].items()}, "param_groups": groups}


@contextmanager
def _parameter_groups_pinned(module: MattingModule, groups: list[dict]) -> Iterator[None]:
    """Within the block, ``module.parameter_groups()`` returns ``groups`` (made before
    wrapping), so the family's ``configure_optimizers`` builds its optimiser from them."""
    module.parameter_groups = lambda: groups
    try:
        yield
    finally:
        del module.parameter_groups


def _has_submodule(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def _broadcast_from_first(module: nn.Module) -> None:
    """The first process's parameters and buffers of ``module`` on every process."""
    if not dist.is_available() or not dist.is_initialized():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)
