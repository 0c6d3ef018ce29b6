"""The Stable Diffusion families under FSDP, in one launch of two CPU processes (gloo).

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        tests/integration/fsdp_script.py OUT_DIR

Cases, in order (tiny variants): ``sdmatte``; ``litesdmatte`` distilling from the sdmatte
case's checkpoint (a frozen teacher); ``teachmatte[teacher]``, then ``teachmatte[student]``
from it. Each: ``mattekit fit`` for 2 steps under ``configs/trainer/fsdp_cpu.yaml``
(:class:`~mattekit.fsdp.MattingFSDPStrategy`), a resume from its ``last.ckpt`` for a third,
``mattekit test`` of the resumed checkpoint under DDP, all through
:class:`~mattekit.matting_cli.MattingCLI` in this process. The first process rewrites
``OUT_DIR/results.json`` after each case::

    {"sdmatte": {"global_step": 2, "resumed_step": 3, "checkpoint_is_file": true,
                 "missing": [], "unexpected": [], "reshaped": [], "loaded_equal": true,
                 "blocks": 28, "block_units": 28, "other_units": ["SDMatte"],
                 "frozen": [], "frozen_reshaped": [], "group_mismatches": [],
                 "local_fraction": [0.5, 0.5], "adam_steps": [3], "test_sad": 1.2}, ...}

``missing`` / ``unexpected`` / ``reshaped``: the checkpoint's state dict against a module
built in one process with the same arguments (as it would save); ``loaded_equal``:
``load_from_checkpoint`` of the file holds its tensors; ``block_units``: FSDP units wrapping
one of the ``blocks`` the family declares; ``other_units``: the other units' module types (the
root, and the BatchNorm layers FSDP wraps alone under a mixed-precision policy);
``group_mismatches``: parameters whose learning rate or weight decay differs from the
one-process module's ``parameter_groups()``; ``frozen_reshaped``: frozen parameters whose shape
FSDP changed (a flattened shard); ``local_fraction``: per process, its trainable elements over
the whole model's; ``adam_steps``: AdamW's step counts after the resumed step (3: the state was
restored).
A failed case is ``{"error": "..."}`` and ends the launch.
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.distributed.fsdp._common_utils import clean_tensor_name
from two_processes import recording

from mattekit.matting_cli import MattingCLI, resolve_model_aliases
from mattekit.models import get_model_entry
from mattekit.models.base import MattingModule
from mattekit.models.frozen import without_unstored_parts
from mattekit.weights.files import read_weights_only

# Two processes on two cores: one thread each, or they oversubscribe the CPU.
torch.set_num_threads(1)

FSDP_CPU = Path(__file__).parents[2] / "configs" / "trainer" / "fsdp_cpu.yaml"
DATA = [
    "--data.image_size=32",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--data.synthetic_train_samples=8",  # 2 steps per epoch on 2 processes
    "--data.synthetic_eval_samples=2",
    "--trainer.enable_progress_bar=false",
]
DDP_CPU = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


def run(command: str, alias: str, settings: dict, root: Path, extra: list[str]) -> MattingCLI:
    model = [f"--model.{key}={value}" for key, value in settings.items()]
    argv = [command, "--model", alias, *model, *DATA, *extra, f"--trainer.default_root_dir={root}"]
    return MattingCLI(args=resolve_model_aliases(argv))


def state_differences(checkpoint: dict, reference: MattingModule) -> dict:
    """Keys and shapes of the checkpoint's state dict against what ``reference`` would save."""
    saved = checkpoint["state_dict"]
    own = without_unstored_parts(reference.state_dict(), reference.frozen_parts)
    return {
        "missing": sorted(set(own) - set(saved)),
        "unexpected": sorted(set(saved) - set(own)),
        "reshaped": sorted(k for k in own if k in saved and saved[k].shape != own[k].shape),
    }


def loaded_equal(cls: type[MattingModule], path: Path, checkpoint: dict) -> bool:
    """``load_from_checkpoint`` of ``path`` holds every tensor the file stores."""
    loaded = cls.load_from_checkpoint(path).state_dict()
    return all(torch.equal(loaded[k], v) for k, v in checkpoint["state_dict"].items())


def sharding(fit: MattingCLI, reference: MattingModule) -> dict:
    """How the fitted module is sharded (module docstring); every process takes part."""
    module = fit.model
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    whole = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    fractions = [None] * dist.get_world_size()
    dist.all_gather_object(fractions, round(trainable / whole, 3))
    shapes = {k: v.shape for k, v in reference.named_parameters(remove_duplicate=False)}
    frozen_reshaped = [
        f"{part.name}.{name}"
        for part in module.frozen_parts
        for name, p in module.get_submodule(part.name).named_parameters()
        if p.shape != shapes[f"{part.name}.{name}"]
    ]
    blocks = {id(block) for block in module.checkpointed_blocks()}
    units = [
        m.module for m in fit.trainer.model.modules() if isinstance(m, FullyShardedDataParallel)
    ]
    return {
        "blocks": len(reference.checkpointed_blocks()),
        "block_units": sum(id(unit) in blocks for unit in units),
        "other_units": sorted({type(unit).__name__ for unit in units if id(unit) not in blocks}),
        "frozen": sorted(part.name for part in module.frozen_parts),
        "frozen_reshaped": frozen_reshaped,
        "local_fraction": fractions,
    }


def optimiser_settings(groups: list[dict], named: dict) -> dict[str, tuple[float, float]]:
    """``{parameter name: (initial lr, weight decay)}`` of optimiser ``groups``; ``named`` maps
    each parameter to its name."""
    return {
        named[p]: (group.get("initial_lr", group["lr"]), group["weight_decay"])
        for group in groups
        for p in group["params"]
    }


def group_mismatches(fit: MattingCLI, reference: MattingModule) -> list[str]:
    """Parameters whose learning rate or weight decay under FSDP is not the one-process one."""
    wrapped = {p: clean_tensor_name(n) for n, p in fit.model.named_parameters()}
    sharded = optimiser_settings(fit.trainer.optimizers[0].param_groups, wrapped)
    plain = {p: n for n, p in reference.named_parameters()}
    expected = optimiser_settings(reference.parameter_groups(), plain)
    return sorted(n for n in expected.keys() | sharded.keys() if sharded.get(n) != expected.get(n))


def fit_resume_test(alias: str, settings: dict, root: Path) -> tuple[dict, Path, Path]:
    """The case's record, its first checkpoint and its resumed one."""
    fsdp = [f"--config={FSDP_CPU}"]
    fit = run("fit", alias, settings, root, [*fsdp, "--trainer.max_steps=2"])
    first = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    # The module as one process builds it, from the same files (a teacher, a previous stage).
    reference = get_model_entry(alias).cls(**settings)
    record = {"global_step": fit.trainer.global_step, **sharding(fit, reference)}
    record["group_mismatches"] = group_mismatches(fit, reference)
    resume = [*fsdp, "--trainer.max_steps=3", f"--ckpt_path={first}"]
    resumed = run("fit", alias, settings, root, resume)
    states = resumed.trainer.optimizers[0].state.values()
    record["adam_steps"] = sorted({int(state["step"]) for state in states})
    record["resumed_step"] = resumed.trainer.global_step
    last = Path(resumed.trainer.log_dir) / "checkpoints" / "last.ckpt"
    if int(os.environ.get("RANK", "0")) == 0:  # reads files only: no collective
        checkpoint = read_weights_only(last)
        record["checkpoint_is_file"] = last.is_file()
        record.update(state_differences(checkpoint, reference))
        record["loaded_equal"] = loaded_equal(type(reference), last, checkpoint)
    tested = run("test", alias, settings, root, [*DDP_CPU, f"--ckpt_path={last}"])
    record["test_sad"] = float(tested.trainer.callback_metrics["test/SAD"])
    return record, first, last


def main(out: Path) -> None:
    results: dict[str, dict] = {}
    checkpoints: dict[str, str] = {}
    tiny = {"variant": "tiny"}
    cases = [
        ("sdmatte", "sdmatte", lambda: tiny),
        ("litesdmatte", "litesdmatte", lambda: tiny | {"teacher_checkpoint": checkpoints["sd"]}),
        ("teachmatte[teacher]", "teachmatte", lambda: tiny | {"stage": "teacher"}),
        (
            "teachmatte[student]",
            "teachmatte",
            lambda: tiny | {"stage": "student", "previous_stage": checkpoints["teacher"]},
        ),
    ]
    for name, alias, settings in cases:
        with recording(results, name, out):
            results[name], first, last = fit_resume_test(alias, settings(), out / name)
        checkpoints.setdefault("sd", str(first))  # the sdmatte case: litesdmatte's teacher
        if name == "teachmatte[teacher]":
            checkpoints["teacher"] = str(last)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
