"""What a benchmark is: datasets x methods under one protocol, read from YAML (and overrides).

    mattekit benchmark experiments/benchmark_alphamatting.yaml --protocol.seed 1 --workers 2

Every field below is a command-line override (``--protocol.prompts '[box, mask]'``); the YAML
lists only what differs from the defaults. See ``experiments/benchmark.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import ActionConfigFile, ArgumentError, ArgumentParser

from mattekit.data.source import MattingSource
from mattekit.metrics.presets import PresetName
from mattekit.pipelines.grid.placeholders import placeholders
from mattekit.prompts import KindName
from mattekit.prompts.protocols import Quantize, get_protocol

#: The prompt kinds a benchmark can give: N clicks, a box, a coarse mask, the dataset's trimap
#: (classical methods only), a referring expression (families that take text).
#: The metrics of every preset, in table order.
MetricName = Literal["SAD", "MSE", "MAD", "Grad", "Conn"]


@dataclass(frozen=True)
class Protocol:
    """How every method is prompted and scored.

    Attributes:
        prompts: the prompt kinds; each method is scored once per kind it accepts (a row each).
        name: the evaluation protocol the stored prompts are drawn and the predictions scored
            by (:data:`~mattekit.prompts.protocols.PROTOCOLS`; ``shared`` by default).
        clicks: positive clicks of the ``points`` prompt (no negative clicks).
        quantize: score predictions as 8-bit PNGs of them (``round``: DIM's MATLAB protocol,
            ``truncate``: SDMatte's release, ``none``: floats); default: the protocol's.
        seed: seed of the stored prompts (and of synthetic datasets' scenes, through their own
            ``seed``).
        preset: the matting metric preset (``dim``, ``zim``, ``sdmatte``), named in every table.
        with_trimap: under a trimap-region preset, restrict the metrics to the unknown band of
            the dataset's own trimap (DIM's protocol); False, or a dataset without a trimap:
            the whole image.
    """

    prompts: list[KindName] = field(default_factory=lambda: ["box"])
    name: str = "shared"
    clicks: int = 1
    quantize: Quantize | None = None
    seed: int = 0
    preset: PresetName = "dim"
    with_trimap: bool = True

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("protocol.prompts: give at least one prompt kind")
        if len(set(self.prompts)) != len(self.prompts):
            raise ValueError(f"protocol.prompts: repeated kinds in {self.prompts}")
        if self.clicks < 1:
            raise ValueError(f"protocol.clicks must be at least 1, got {self.clicks}")
        get_protocol(self.name)  # an unknown name: the error lists the protocols


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: a name (its rows and folders) and any source the DataModule has.

    Attributes:
        name: row label and folder name (letters, digits, ``.``, ``_``, ``-``).
        source: the source, as in data configs: ``{class_path: ..., init_args: {...}}``.
        source_config: set by the parser: the source's ``class_path`` and ``init_args`` as
            given, which identify the data in the stored prompts and records.
    """

    name: str
    source: MattingSource
    source_config: dict = field(default_factory=dict, init=False, compare=False)


@dataclass(frozen=True)
class MethodSpec:
    """One method.

    Attributes:
        name: row label and folder name (letters, digits, spaces, ``.``, ``_``, ``-``, ``()``).
        kind: ``model`` (a trained mattekit checkpoint), ``classical`` (a weight-free method
            from pymatting, on a trimap) or ``floor`` (the prompt itself as the alpha).
        checkpoint: ``model``: the Lightning checkpoint.
        config: ``model``: the run's ``config.yaml`` (default: the one of the run the checkpoint
            belongs to, ``<run>/config.yaml`` beside ``<run>/checkpoints/``); it gives the input
            size.
        image_size: ``model``: the network input side (default: the run's ``data.image_size``).
        resize: ``model``: ``stretch`` or ``letterbox`` (default: the family's convention).
        algorithm: ``classical``: ``closed_form`` or ``knn``.
        device: where a model runs (``cpu``, ``cuda``).
    """

    name: str
    kind: Literal["model", "classical", "floor"]
    checkpoint: str | None = None
    config: str | None = None
    image_size: int | None = None
    resize: Literal["stretch", "letterbox"] | None = None
    algorithm: Literal["closed_form", "knn"] | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.kind == "model" and self.checkpoint is None:
            raise ValueError(f"method {self.name!r}: a model needs a checkpoint")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"method {self.name!r}: image_size must be positive")
        try:
            torch.device(self.device)
        except RuntimeError as error:
            raise ValueError(f"method {self.name!r}: device {self.device!r}: {error}") from None
        if self.kind == "classical" and self.algorithm is None:
            raise ValueError(f"method {self.name!r}: a classical method needs an algorithm")


@dataclass(frozen=True)
class StageSpec:
    """A ``mattekit fit`` made once before the methods run, recorded and reused as a grid's
    stages are (``experiments/README.md``): ``{name}`` in a later stage's ``args`` or in a
    method's ``checkpoint`` is its best (else last) checkpoint.

    Attributes:
        name: the placeholder and the folder (``<output>/stages/<name>/``).
        args: the fit's arguments (any ``mattekit fit`` flag or ``--config``).
    """

    name: str
    args: list[str]


@dataclass(frozen=True)
class BenchmarkSpec:
    """A whole benchmark (see the module docstring).

    Attributes:
        stages: fits made once (the methods' training), in order, seeded by ``stage_seed``.
        stages_dir: their folder (default ``<output>/stages``); benchmarks that name the same
            folder and the same stages share the fits (a stage whose command differs from the
            recorded one is refused, as in grids).
    """

    name: str
    datasets: list[DatasetSpec]
    methods: list[MethodSpec]
    protocol: Protocol = field(default_factory=Protocol)
    stages: list[StageSpec] = field(default_factory=list)
    stage_seed: int = 0
    stages_dir: str | None = None
    output: str | None = None
    workers: int = 1
    force: list[str] = field(default_factory=list)
    grid_images: int = 4
    tradeoff_metric: MetricName = "SAD"

    def __post_init__(self) -> None:
        for label, names, pattern in (
            ("dataset", [d.name for d in self.datasets], _DATASET_NAME),
            ("method", [m.name for m in self.methods], _METHOD_NAME),
        ):
            if not names:
                raise ValueError(f"a benchmark needs at least one {label}")
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{label} names must be distinct; repeated: {repeated}")
            for name in names:
                if not pattern.fullmatch(name) or name.strip(".") == "":
                    raise ValueError(f"{label} name {name!r}: use {pattern.pattern}")
        folders = [method_folder(m.name) for m in self.methods]
        clashing = sorted(
            {m.name for m in self.methods if folders.count(method_folder(m.name)) > 1}
        )
        if clashing:
            raise ValueError(f"method names {clashing} share a folder name: rename one")
        if self.grid_images < 0:
            raise ValueError(f"grid_images must be 0 or more, got {self.grid_images}")
        stage_names = [stage.name for stage in self.stages]
        known: set[str] = set()
        for stage in self.stages:
            missing = sorted(set(placeholders(stage.args)) - known)
            if missing or stage.name in known:
                raise ValueError(
                    f"stage {stage.name!r}: names must be distinct and a stage may only use "
                    f"earlier ones; unknown: {missing}"
                )
            known.add(stage.name)
        for method in self.methods:
            used = placeholders([method.checkpoint or ""])
            missing = sorted(set(used) - set(stage_names))
            if missing:
                raise ValueError(f"method {method.name!r}: no stage named {missing}")
            if method.checkpoint and not used and not Path(method.checkpoint).is_file():
                raise ValueError(
                    f"method {method.name!r}: checkpoint not found: {method.checkpoint}"
                )
        unknown = sorted(set(self.force) - {m.name for m in self.methods})
        if unknown:
            raise ValueError(f"--force names unknown methods {unknown}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")

    def output_dir(self, config_path: Path | None) -> Path:
        """``output``, else ``<config dir>/results/<name>``."""
        if self.output is not None:
            return Path(self.output)
        base = config_path.parent if config_path is not None else Path(".")
        return base / "results" / self.name


_DATASET_NAME = re.compile(r"[A-Za-z0-9._-]+")
_METHOD_NAME = re.compile(r"[A-Za-z0-9._() -]+")


def method_folder(name: str) -> str:
    """A method's folder name: its name with spaces and brackets as ``_``."""
    return re.sub(r"[ ()]", "_", name)


def benchmark_parser() -> ArgumentParser:
    """``mattekit benchmark``'s parser: a config file first, then overrides of its fields."""
    parser = ArgumentParser(
        exit_on_error=False,
        prog="mattekit benchmark",
        description="Compare methods on datasets under one protocol (experiments/benchmark.md).",
    )
    parser.add_argument("--config", action=ActionConfigFile, help="the benchmark YAML")
    parser.add_class_arguments(BenchmarkSpec, as_group=False, fail_untyped=True)
    return parser


def parse_benchmark(argv: list[str]) -> tuple[BenchmarkSpec, Path | None]:
    """The spec from ``[CONFIG.yaml] [--field value ...]`` and the config's path (or None).

    Raises:
        ValueError: a bad argument or config value (the message names it).
        FileNotFoundError: the config does not exist.
    """
    if argv and not argv[0].startswith("-"):
        if not Path(argv[0]).is_file():
            raise FileNotFoundError(f"benchmark config not found: {argv[0]}")
        argv = ["--config", argv[0], *argv[1:]]
    parser = benchmark_parser()
    try:
        config = parser.parse_args(argv)
        # `X.yaml` and `--config X.yaml` are one command: both write beside the (last) config.
        configs = config.pop("config", None)
        config_path = Path(str(configs[-1])) if configs else None
        source_configs = [dataset.source.as_dict() for dataset in config.datasets]
        instantiated = parser.instantiate_classes(config)
    except ArgumentError as error:
        raise ValueError(str(error)) from None
    spec = BenchmarkSpec(**instantiated.as_dict())
    for dataset, source_config in zip(spec.datasets, source_configs, strict=True):
        object.__setattr__(dataset, "source_config", source_config)
    return spec, config_path
