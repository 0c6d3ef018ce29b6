"""Every registered family under DDP, in one launch of two CPU processes (gloo).

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        tests/integration/ddp_registry_script.py OUT_DIR [PATTERN]

For every family of the registry (those matching PATTERN, a shell pattern, if given), as its
tiny variant (a staged family: every stage, each from the last stage's checkpoint), and SAMA's
other task schedules: ``mattekit fit`` for 2 steps, a resume from its ``last.ckpt`` for a third,
and ``mattekit test`` of the resumed checkpoint, each through
:class:`~mattekit.matting_cli.MattingCLI` in this process (Lightning joins the process group
torchrun set up). The first process rewrites ``OUT_DIR/results.json`` after each case::

    {"sama[alternate]": {"global_step": 2, "resumed_step": 3, "test_sad": 1.2,
                         "unstepped": ["model.heads.matting..."]}, ...}

``unstepped``: trainable parameters the optimiser holds no state for (never stepped). A failed
case is ``{"error": "..."}`` and ends the launch (the other process would wait in a collective).
"""

import sys
from pathlib import Path

import torch
from two_processes import recording

from mattekit.matting_cli import MattingCLI, resolve_model_aliases
from mattekit.models import list_models

# Two processes on two cores: one thread each, or they oversubscribe the CPU.
torch.set_num_threads(1)

TINY_RUN = [
    "--data.image_size=32",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--data.synthetic_train_samples=8",  # 2 steps per epoch on 2 processes
    "--data.synthetic_eval_samples=2",
    "--trainer.accelerator=cpu",
    "--trainer.devices=2",
    "--trainer.strategy=ddp",
    "--trainer.enable_progress_bar=false",
]
#: Settings beside the tiny variant that change which parameters a step trains.
EXTRA_CASES = {
    "sama": {
        "alternate": {"task_schedule": "alternate"},
        # every batch trains segmentation alone: the matting head is never stepped
        "segmentation_sources": {"segmentation_sources": ["synthetic"]},
    }
}


def model_args(settings: dict) -> list[str]:
    return [f"--model.{key}={value}" for key, value in settings.items()]


def cases(pattern: str = "*") -> list[tuple[str, str, list[str], str | None]]:
    """``(name, alias, model arguments, stage)`` of every case of the families matching
    ``pattern``, in the order they run."""
    found = []
    for entry in list_models(pattern):
        for stage in entry.stages or (None,):
            name = entry.alias + (f"[{stage}]" if stage else "")
            found.append((name, entry.alias, model_args(entry.tiny), stage))
        for name, settings in EXTRA_CASES.get(entry.alias, {}).items():
            args = model_args(entry.tiny | settings)
            found.append((f"{entry.alias}[{name}]", entry.alias, args, None))
    return found


def run(command: str, alias: str, args: list[str], root: Path) -> MattingCLI:
    argv = [command, "--model", alias, *args, *TINY_RUN, f"--trainer.default_root_dir={root}"]
    return MattingCLI(args=resolve_model_aliases(argv))


def unstepped(cli: MattingCLI) -> list[str]:
    """Trainable parameters without optimiser state: AdamW never stepped them."""
    state = cli.trainer.optimizers[0].state
    named = cli.model.named_parameters()
    return sorted(name for name, p in named if p.requires_grad and p not in state)


def fit_resume_test(alias: str, args: list[str], root: Path) -> tuple[dict, Path]:
    """The case's record and its resumed checkpoint."""
    fit = run("fit", alias, [*args, "--trainer.max_steps=2"], root)
    first = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    resumed = run("fit", alias, [*args, "--trainer.max_steps=3", f"--ckpt_path={first}"], root)
    checkpoint = Path(resumed.trainer.log_dir) / "checkpoints" / "last.ckpt"
    tested = run("test", alias, [*args, f"--ckpt_path={checkpoint}"], root)
    record = {
        "global_step": fit.trainer.global_step,
        "resumed_step": resumed.trainer.global_step,
        "test_sad": float(tested.trainer.callback_metrics["test/SAD"]),
        "unstepped": unstepped(resumed),
    }
    return record, checkpoint


def main(out: Path, pattern: str = "*") -> None:
    results: dict[str, dict] = {}
    last_stage: dict[str, Path] = {}
    for name, alias, args, stage in cases(pattern):
        if stage is not None:
            args = [*args, f"--model.stage={stage}"]
            if alias in last_stage:
                args.append(f"--model.previous_stage={last_stage[alias]}")
        with recording(results, name, out):
            results[name], last_stage[alias] = fit_resume_test(alias, args, out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:3])
