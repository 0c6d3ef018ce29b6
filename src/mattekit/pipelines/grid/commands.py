"""The ``mattekit`` command lines of a grid, where each puts its files, and the results' header.

Order of arguments, later winning: grid defaults, the base, the stage's own arguments, the run's
overrides, (test only) the test extras, then what places and seeds the process.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from mattekit.pipelines.grid.placeholders import fill
from mattekit.pipelines.grid.spec import GridRun, GridSpec, Stage, render_value

# Before the base arguments, so a grid file can turn Lightning's per-run bars back on.
GRID_DEFAULTS = ("--trainer.enable_progress_bar=false",)
CHECKPOINT_PLACEHOLDER = "<best, else last checkpoint of the fit>"
# A run without run stages is this one fit, in ``<run>/fit/`` (the layout before run stages).
SINGLE_FIT = Stage("fit", ())


def placement(run_dir: str | Path, version: str, seed: int | str) -> list[str]:
    """Arguments that put a process's files in ``run_dir/<version>/`` and seed it.

    The logger is replaced, not just the root dir: a config that names its own logger folder
    (the quickstart's) would otherwise send every run of the grid to the same place.
    """
    return [
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger",
        f"--trainer.logger.save_dir={run_dir}",
        "--trainer.logger.name=",
        f"--trainer.logger.version={version}",
        f"--seed_everything={seed}",
    ]


def stage_dir(root: str | Path, stage: Stage) -> Path:
    """The folder of a chained stage: ``<root>/<name>/``, its fit in ``fit/`` below.

    ``root`` is the grid's folder for the shared stages (``runs/grid/<name>/pretrain/``, as
    before stages existed) and the run's folder for run stages.
    """
    return Path(root) / stage.name


def run_chain(spec: GridSpec) -> tuple[Stage, ...]:
    """The fits of every run, in order; the last one is tested."""
    return spec.run_stages or (SINGLE_FIT,)


def _fit_placement(spec: GridSpec, stage: Stage, run_dir: str | Path) -> str | Path:
    return run_dir if not spec.run_stages else stage_dir(run_dir, stage)


def fit_command(
    spec: GridSpec,
    run: GridRun,
    run_dir: str | Path,
    stage: Stage = SINGLE_FIT,
    checkpoints: Mapping[str, str] | None = None,
) -> list[str]:
    """The fit of one of a run's stages (its one fit by default); ``checkpoints`` fill ``{}``."""
    return [
        "fit",
        *GRID_DEFAULTS,
        *spec.base,
        *fill(stage.args, checkpoints or {}),
        *run.stage_override_args(stage.name),
        *placement(_fit_placement(spec, stage, run_dir), "fit", run.seed),
    ]


def test_command(
    spec: GridSpec,
    run: GridRun,
    run_dir: str | Path,
    checkpoint: str,
    checkpoints: Mapping[str, str] | None = None,
) -> list[str]:
    """The test of a run's last stage, with that stage's arguments, on ``checkpoint``."""
    last = run_chain(spec)[-1]
    # The test extras come after the overrides: they are the most specific (another data set).
    return [
        "test",
        *GRID_DEFAULTS,
        *spec.base,
        *fill(last.args, checkpoints or {}),
        *run.stage_override_args(last.name),
        *spec.test,
        *placement(run_dir, "test", run.seed),
        f"--ckpt_path={checkpoint}",
    ]


def shared_stage_command(
    spec: GridSpec, stage: Stage, run_dir: str | Path, checkpoints: Mapping[str, str]
) -> list[str]:
    """The fit of a stage made once before the runs: its own arguments only, the first seed."""
    return stage_fit_command(stage, run_dir, checkpoints, spec.seeds[0])


def stage_fit_command(
    stage: Stage, run_dir: str | Path, checkpoints: Mapping[str, str], seed: int
) -> list[str]:
    """The fit of a stage made once (a grid's or a benchmark's): its own arguments only,
    earlier stages' checkpoints filled in, its files in ``run_dir/fit/``, seeded by ``seed``."""
    args = fill(stage.args, checkpoints)
    return ["fit", *GRID_DEFAULTS, *args, *placement(run_dir, "fit", seed)]


def shell_line(args: list[str]) -> str:
    return shlex.join(["mattekit", *args])


def _checkpoint_of(stage: Stage) -> str:
    return f"<best, else last checkpoint of {stage.name}>"


def run_lines(spec: GridSpec, run: GridRun, run_dir: str | Path) -> list[str]:
    """A run's commands, as shell lines, with its stages' checkpoints as placeholders."""
    if not spec.run_stages:
        fit = shell_line(fit_command(spec, run, run_dir))
        return [fit, shell_line(test_command(spec, run, run_dir, CHECKPOINT_PLACEHOLDER))]
    fits = [shell_line(fit_command(spec, run, run_dir, stage)) for stage in spec.run_stages]
    tested = _checkpoint_of(spec.run_stages[-1])
    return [*fits, shell_line(test_command(spec, run, run_dir, tested))]


def shared_stage_lines(spec: GridSpec, grid_dir: Path) -> list[tuple[Stage, str]]:
    """Each shared stage with its command line; earlier checkpoints stay ``{name}``."""
    return [
        (stage, shell_line(shared_stage_command(spec, stage, stage_dir(grid_dir, stage), {})))
        for stage in spec.stages
    ]


def case_lines(spec: GridSpec) -> list[str]:
    """The grid file's explicit rows, one bullet each (none without ``cases``)."""
    if not spec.cases:
        return []
    bullets = [
        "- " + (", ".join(f"`{k}={render_value(v)}`" for k, v in case.items()) or "(defaults)")
        for case in spec.cases
    ]
    return ["Cases (each row's own arguments):", "", *bullets, ""]


def describe(spec: GridSpec, grid_file: Path, runs_root: Path) -> str:
    """The Markdown header of the results: the grid file, the exact commands, the grid."""
    run_dir = runs_root / spec.name / "<run>"
    example = GridRun(-1, -1, {key: f"<{key}>" for key in spec.keys})
    seeded = lambda line: line.replace("--seed_everything=-1", "--seed_everything=<seed>")  # noqa: E731
    commands = [f"    {seeded(line)}" for line in run_lines(spec, example, run_dir)]
    grid = "; ".join(
        f"`{key}` in " + ", ".join(f"`{render_value(v)}`" for v in values)
        for key, values in spec.grid.items()
    )
    stages = []
    for stage, line in shared_stage_lines(spec, runs_root / spec.name):
        stages += [
            f"`{{{stage.name}}}` is the best (else last) checkpoint of stage `{stage.name}`, "
            "made once before the grid:",
            "",
            f"    {line}",
            "",
        ]
    if spec.run_stages:
        names = ", ".join(f"`{stage.name}`" for stage in spec.run_stages)
        stages += [f"Each run fits its stages {names} in order and tests the last one.", ""]
    return "\n".join(
        [
            f"# Grid `{spec.name}`",
            "",
            f"Made by `mattekit grid {grid_file}`; runs in `{run_dir}/`. Each run is",
            "",
            *commands,
            "",
            *stages,
            *case_lines(spec),
            f"Grid: {grid or '(none)'}; seeds {', '.join(map(str, spec.seeds))}.",
            "",
            "Test metrics of the fit's best (else last) checkpoint; `wall_s` is fit + test. "
            "Each `... (reference)` row scores the family's reference prediction (the prompt "
            "box itself; the input mask for the label converter) on the `test_set` it names: "
            "the floor of the runs on that test set.",
        ]
    )
