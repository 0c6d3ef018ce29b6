"""The grid file of ``mattekit grid``: parsing, checking, and the runs it describes.

A grid file names a base command and ``grid:`` leaves; every combination of the leaves, once per
seed, is a run. Before the runs, a chain of named training stages (``stages:``, or ``pretrain:``
for one) may be made once; each run may itself be a chain (``run_stages:``). Checkpoints pass
down a chain as ``{name}`` placeholders. Format: ``experiments/README.md``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mattekit.pipelines.grid.placeholders import NAME, fill, placeholders
from mattekit.pipelines.grid.results import RunKey, run_key

_SPEC_KEYS = {
    "name", "base", "seeds", "grid", "cases", "test", "pretrain", "stages", "run_stages",
}  # fmt: skip
_STAGE_KEYS = {"name", "args"}
# ``pretrain: [args]`` is the one-stage chain of this name (so ``{pretrain}`` is its checkpoint).
PRETRAIN = "pretrain"
# A grid key ``<run stage>:<argument>`` overrides that run stage only.
SCOPE_SEPARATOR = ":"
# The run's test lives in ``<run>/test/``: no run stage may take that folder.
_RESERVED_RUN_STAGE_NAMES = {"test"}


def render_value(value: object) -> str:
    """A grid value as a command-line string jsonargparse parses back to the same value.

    Strings go verbatim (so ``"a b"`` stays one argument and ``"[box]"`` is a list to the
    parser, as on a shell); everything else as JSON, which is YAML: ``true``, ``null``, ``1.0``,
    ``["box", "points"]``, ``{"k": 1}``.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


@dataclass(frozen=True)
class Stage:
    """One ``fit`` of a chain; its best (else last) checkpoint is ``{name}`` to later stages.

    Attributes:
        name: names the placeholder and the stage's folder.
        args: the fit's arguments; ``{earlier stage}`` stands for that stage's checkpoint.
    """

    name: str
    args: tuple[str, ...]

    @property
    def uses(self) -> list[str]:
        """The stages whose checkpoints this one starts from, in order of first mention."""
        return placeholders(self.args)


@dataclass(frozen=True)
class GridSpec:
    """A parsed grid file.

    Attributes:
        name: names the results (``<name>.csv/.md``) and the runs folder.
        base: arguments every run's ``fit`` (each run stage's) and ``test`` get.
        grid: ``key -> values`` (``model.prompt_kinds -> [["box"], ["points"]]``), in file order;
            a key ``<run stage>:<argument>`` applies to that run stage only.
        cases: explicit rows, each ``key -> value`` (an ablation table whose rows are not a
            product: "no distillation", "no projector", ...); every case is combined with every
            combination of ``grid``. A key a case leaves out is not passed (the default).
        seeds: each combination runs once per seed.
        test: extra arguments of the ``test`` runs only (another test set, ...).
        stages: fits made once, in order, before the runs, each seeded by the first seed (so
            every row of an ablation starts from the same weights, as in a paper's table); their
            checkpoints fill ``{name}`` in later stages, ``base``, ``test`` and ``run_stages``.
            ``pretrain:`` in the file is the one stage named ``pretrain``.
        run_stages: when given, each run is this chain of fits (``base`` + the stage's args +
            the run's overrides) and tests the last one; else each run is one fit.
    """

    name: str
    base: tuple[str, ...]
    grid: dict[str, tuple] = field(default_factory=dict)
    cases: tuple[dict, ...] = ()
    seeds: tuple[int, ...] = (0,)
    test: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    run_stages: tuple[Stage, ...] = ()

    @property
    def stages_the_runs_use(self) -> set[str]:
        """The shared stages whose checkpoints the runs read (in base, test or a run stage)."""
        run_stage_args = [arg for stage in self.run_stages for arg in stage.args]
        used = placeholders([*self.base, *self.test, *run_stage_args])
        return set(used) & {stage.name for stage in self.stages}

    def with_checkpoints(self, checkpoints: Mapping[str, str]) -> GridSpec:
        """This spec with ``{name}`` replaced by ``checkpoints[name]`` in ``base`` and ``test``.

        Run stages keep their placeholders: they also name run stages, filled run by run.
        """
        return dataclasses.replace(
            self, base=fill(self.base, checkpoints), test=fill(self.test, checkpoints)
        )

    @property
    def keys(self) -> list[str]:
        """The results' key columns: the cases' keys, then the grid's, each once."""
        case_keys = [key for case in self.cases for key in case]
        return list(dict.fromkeys([*case_keys, *self.grid]))

    def combinations(self) -> list[dict[str, str]]:
        """Each case (in order) with the Cartesian product of the grid values, rendered, first
        key slowest."""
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[key] for key in keys)))
        return [
            {
                **{k: render_value(v) for k, v in case.items()},
                **{k: render_value(v) for k, v in zip(keys, combo, strict=True)},
            }
            for case in self.cases or ({},)
            for combo in combos
        ]


def _string_list(spec: dict, key: str, where: str) -> tuple[str, ...]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: '{key}' must be a list of command-line arguments (strings)")
    return tuple(value)


def _argument_key(key: object) -> str:
    """A grid or case key without the argument's dashes (``student:--model.lr`` too)."""
    scope, separator, argument = str(key).rpartition(SCOPE_SEPARATOR)
    return scope + separator + argument.lstrip("-")


def _parse_cases(spec: dict, path: Path, grid_keys: set[str]) -> tuple[dict, ...]:
    """The ``cases`` list: non-empty mappings of argument -> value, distinct, none setting a
    key the grid also varies."""
    entries = spec.get("cases") or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'cases' must be a list of {{argument: value}} mappings")
    cases: list[dict] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: cases[{index}] must be a mapping of argument -> value")
        case = {_argument_key(key): value for key, value in entry.items()}
        clash = sorted(set(case) & grid_keys)
        if clash:
            raise ValueError(f"{path}: cases[{index}] sets {clash}, which the grid also varies")
        rendered = {k: render_value(v) for k, v in case.items()}
        if any(rendered == {k: render_value(v) for k, v in c.items()} for c in cases):
            raise ValueError(f"{path}: cases[{index}] repeats an earlier case: {rendered}")
        cases.append(case)
    return tuple(cases)


def _parse_stages(spec: dict, key: str, path: Path) -> tuple[Stage, ...]:
    """The ``stages`` or ``run_stages`` list: ``{name, args}`` mappings, names unique."""
    entries = spec.get(key) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: '{key}' must be a list of {{name, args}} mappings")
    stages = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - _STAGE_KEYS or "name" not in entry:
            raise ValueError(f"{path}: each of '{key}' is a mapping with keys 'name' and 'args'")
        name = entry["name"]
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(
                f"{path}: {key} name {name!r} must be an identifier (letters, digits, _; not "
                "starting with a digit): it names a placeholder and a folder"
            )
        stages.append(Stage(name, _string_list(entry, "args", f"{path}: {key} '{name}'")))
    return tuple(stages)


def _check_uses(stage: Stage, earlier: list[str], later: list[str], path: Path) -> None:
    """Refuse placeholders that name no stage, the stage itself, or a stage made after it."""
    for name in stage.uses:
        if name == stage.name:
            raise ValueError(f"{path}: stage '{name}' cannot use its own checkpoint {{{name}}}")
        if name in later:
            raise ValueError(
                f"{path}: stage '{stage.name}' uses {{{name}}}, which is made after it: stages "
                "are made in the order listed and each can use only earlier ones (so no cycles)"
            )
        if name not in earlier:
            known = ", ".join(earlier) or "none"
            raise ValueError(
                f"{path}: stage '{stage.name}' uses {{{name}}}, which names no stage ({known})"
            )


def _check_base_uses(key: str, args: tuple[str, ...], shared: list[str], path: Path) -> None:
    """``base`` and ``test`` are the same for every run stage: only the grid's stages exist
    before all of them."""
    for name in placeholders(args):
        if name not in shared:
            known = ", ".join(shared) or "none"
            raise ValueError(
                f"{path}: '{key}' uses {{{name}}}, which names none of the grid's stages "
                f"({known}); a run stage's checkpoint goes in a later run stage's args"
            )


def _check_chains(spec: GridSpec, path: Path) -> None:
    """Every placeholder names an earlier stage; every stage's checkpoint is used."""
    shared = [stage.name for stage in spec.stages]
    chained = [stage.name for stage in spec.run_stages]
    both = sorted(set(shared) & set(chained))
    if len(set(shared)) != len(shared) or len(set(chained)) != len(chained) or both:
        raise ValueError(f"{path}: stage names must be unique across stages and run_stages")
    reserved = sorted(set(chained) & _RESERVED_RUN_STAGE_NAMES)
    if reserved:
        raise ValueError(f"{path}: a run stage cannot be named {reserved[0]} (the run's test)")
    for i, stage in enumerate(spec.stages):
        _check_uses(stage, shared[:i], [*shared[i:], *chained], path)
    for i, stage in enumerate(spec.run_stages):
        _check_uses(stage, [*shared, *chained[:i]], chained[i:], path)
    _check_base_uses("base", spec.base, shared, path)
    _check_base_uses("test", spec.test, shared, path)

    used = {name for stage in (*spec.stages, *spec.run_stages) for name in stage.uses}
    used |= set(placeholders((*spec.base, *spec.test)))
    # The last run stage is the one tested: used by the run's test.
    for stage in (*spec.stages, *spec.run_stages[:-1]):
        if stage.name not in used:
            raise ValueError(
                f"{path}: stage '{stage.name}' is given but nothing uses its checkpoint: write "
                f"{{{stage.name}}} where it goes (in a later stage's, a run stage's, base or test "
                f"arguments, e.g. --model.checkpoint={{{stage.name}}})"
            )
    for key in spec.keys:
        scope, _, _ = key.rpartition(SCOPE_SEPARATOR)
        if scope and scope not in chained:
            raise ValueError(f"{path}: grid key {key!r} names no run stage (known: {chained})")


def load_grid_spec(path: str | Path) -> GridSpec:
    """Read and check a grid YAML; errors name the file and the offending key."""
    path = Path(path)
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a grid file is a mapping with keys {sorted(_SPEC_KEYS)}")
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(_SPEC_KEYS)}")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{path}: 'grid' must map argument names to lists of values")
    leaves: dict[str, tuple] = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{path}: grid.{key} must be a non-empty list of values")
        rendered = [render_value(v) for v in values]
        if len(set(rendered)) != len(rendered):
            raise ValueError(f"{path}: grid.{key} lists a value twice (as passed): {rendered}")
        leaves[_argument_key(key)] = tuple(values)
    cases = _parse_cases(spec, path, set(leaves))
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise ValueError(f"{path}: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: 'seeds' lists a seed twice: {seeds}")
    if spec.get("pretrain") and spec.get("stages"):
        raise ValueError(f"{path}: give 'pretrain' (one stage) or 'stages', not both")
    stages = _parse_stages(spec, "stages", path)
    if spec.get("pretrain"):
        stages = (Stage(PRETRAIN, _string_list(spec, "pretrain", str(path))),)
    parsed = GridSpec(
        name=str(spec.get("name") or path.stem),
        base=_string_list(spec, "base", str(path)),
        grid=leaves,
        cases=cases,
        seeds=tuple(seeds),
        test=_string_list(spec, "test", str(path)),
        stages=stages,
        run_stages=_parse_stages(spec, "run_stages", path),
    )
    _check_chains(parsed, path)
    return parsed


@dataclass(frozen=True)
class GridRun:
    """One row of the table: a combination of grid values, a seed and a run index."""

    index: int
    seed: int
    overrides: dict[str, str]

    def stage_override_args(self, stage: str) -> list[str]:
        """The overrides of run stage ``stage``: those of every stage, then its own (they win)."""
        unscoped, scoped = [], []
        for key, value in self.overrides.items():
            scope, _, argument = key.rpartition(SCOPE_SEPARATOR)
            if not scope:
                unscoped.append(f"--{argument}={value}")
            elif scope == stage:
                scoped.append(f"--{argument}={value}")
        return unscoped + scoped

    def key(self, key_columns: list[str]) -> RunKey:
        """The key of this run's row in the results (see :func:`run_key`)."""
        return run_key({"seed": self.seed, **self.overrides}, key_columns)

    @property
    def label(self) -> str:
        values = " ".join(f"{key}={value}" for key, value in self.overrides.items())
        return f"run {self.index} seed {self.seed}" + (f" {values}" if values else "")
