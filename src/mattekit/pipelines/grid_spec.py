"""The grid file of ``mattekit grid``: parsing, checking, and the runs it describes.

A grid file names a base command and ``grid:`` leaves; every combination of the leaves, once per
seed, is a run. Format: ``experiments/README.md``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mattekit.pipelines.grid_results import RunKey, run_key

_SPEC_KEYS = {"name", "base", "seeds", "grid", "test", "pretrain"}
# Stands for the pretraining fit's checkpoint in the arguments of the runs.
PRETRAIN_PLACEHOLDER = "{pretrain}"


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
class GridSpec:
    """A parsed grid file.

    Attributes:
        name: names the results (``<name>.csv/.md``) and the runs folder.
        base: arguments every ``fit`` and ``test`` gets (flags or ``--config`` files).
        grid: ``key -> values`` (``model.prompt_kinds -> [["box"], ["points"]]``), in file order.
        seeds: each combination runs once per seed.
        test: extra arguments of the ``test`` runs only (another test set, ...).
        pretrain: arguments of one ``fit`` run before the grid, seeded by the first seed; its
            best (else last) checkpoint replaces ``{pretrain}`` in ``base`` and ``test``, so
            every run starts from the same weights (as every row of a paper's ablation starts
            from the same pretrained model). Empty: no pretraining.
    """

    name: str
    base: tuple[str, ...]
    grid: dict[str, tuple] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    test: tuple[str, ...] = ()
    pretrain: tuple[str, ...] = ()

    def with_pretrained(self, checkpoint: str) -> GridSpec:
        """This spec with ``{pretrain}`` replaced by ``checkpoint`` in the runs' arguments."""
        fill = lambda args: tuple(a.replace(PRETRAIN_PLACEHOLDER, checkpoint) for a in args)  # noqa: E731
        return dataclasses.replace(self, base=fill(self.base), test=fill(self.test))

    def combinations(self) -> list[dict[str, str]]:
        """The Cartesian product of the grid values, rendered, first key slowest."""
        keys = list(self.grid)
        values = itertools.product(*(self.grid[key] for key in keys))
        return [{k: render_value(v) for k, v in zip(keys, combo, strict=True)} for combo in values]


def _string_list(spec: dict, key: str, path: Path) -> tuple[str, ...]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}: '{key}' must be a list of command-line arguments (strings)")
    return tuple(value)


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
        leaves[str(key).lstrip("-")] = tuple(values)
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):
        raise ValueError(f"{path}: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: 'seeds' lists a seed twice: {seeds}")
    base, test = _string_list(spec, "base", path), _string_list(spec, "test", path)
    pretrain = _string_list(spec, "pretrain", path)
    uses_pretrained = any(PRETRAIN_PLACEHOLDER in arg for arg in base + test)
    if pretrain and not uses_pretrained:
        raise ValueError(
            f"{path}: 'pretrain' is given but no base or test argument uses its checkpoint "
            f"(write {PRETRAIN_PLACEHOLDER} where it goes, e.g. --model.checkpoint={{pretrain}})"
        )
    if uses_pretrained and not pretrain:
        raise ValueError(f"{path}: {PRETRAIN_PLACEHOLDER} is used but there is no 'pretrain' run")
    if any(PRETRAIN_PLACEHOLDER in arg for arg in pretrain):
        raise ValueError(f"{path}: the 'pretrain' run cannot use its own checkpoint")
    return GridSpec(
        name=str(spec.get("name") or path.stem),
        base=base,
        grid=leaves,
        seeds=tuple(seeds),
        test=test,
        pretrain=pretrain,
    )


@dataclass(frozen=True)
class GridRun:
    """One row of the table: a combination of grid values, a seed and a run index."""

    index: int
    seed: int
    overrides: dict[str, str]

    @property
    def override_args(self) -> list[str]:
        return [f"--{key}={value}" for key, value in self.overrides.items()]

    def key(self, key_columns: list[str]) -> RunKey:
        """The key of this run's row in the results (see :func:`run_key`)."""
        return run_key({"seed": self.seed, **self.overrides}, key_columns)

    @property
    def label(self) -> str:
        values = " ".join(f"{key}={value}" for key, value in self.overrides.items())
        return f"run {self.index} seed {self.seed}" + (f" {values}" if values else "")
