"""``MattingDataModule``: the one DataModule every family trains and evaluates on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

import cv2
import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from mattekit.data.convention import InputConvention
from mattekit.data.dataset import MattingDataset
from mattekit.data.draws import DrawConcat
from mattekit.data.mixing import (
    DrawShare,
    ScheduledBatchSampler,
    ScheduledDraws,
    WeightedSourceSampler,
)
from mattekit.data.predict_sets import SkipUnreadable, collate_readable, without_predicted
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.resumable import ResumableLoader
from mattekit.data.sample import MattingBatch, collate_samples
from mattekit.data.source import MattingSource
from mattekit.data.synthetic import SyntheticSource
from mattekit.data.transforms import AugmentConfig, MattingTransform
from mattekit.prompts.protocols import Quantize, get_protocol

logger = logging.getLogger(__name__)

Sources = MattingSource | list[MattingSource] | None


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` from a side or a pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _as_list(sources: Sources) -> list[MattingSource]:
    if sources is None:
        return []
    return list(sources) if isinstance(sources, Sequence) else [sources]


class MattingDataModule(L.LightningDataModule):
    """Shared data for every family: sources, augmentation, prompts, mixing and loaders.

    With no sources given, every stage uses the built-in synthetic scenes (seeded, download-free):
    training on ``synthetic_train_samples`` scenes of seed ``seed``, validation / test / predict
    on ``synthetic_eval_samples`` held-out scenes of seed ``seed + 1``, rendered at the evaluation
    size. The test (and predict) scenes are named ``synthetic_test`` and are the validation
    scenes of the same ``seed``: pass another ``--data.seed`` to ``test`` (as the grids do) to
    test on scenes that did not choose the checkpoint.

    Args:
        train: training source(s); several are mixed by ``weights`` or ``schedule``.
        val: validation source(s); each is evaluated in full.
        test: test source(s) (default: the validation sources).
        predict: prediction source(s) (default: the test sources).
        image_size: network input ``H`` (square) or ``(H, W)`` for training.
        eval_image_size: network input for val / test / predict (default: the model's input
            convention's side, else ``image_size``); SDMatte trains at 512 and evaluates at 1024.
        resize: how evaluation fits images to ``eval_image_size``: ``stretch`` or ``letterbox``
            (default: the model's input convention's, else ``stretch``). A value that
            contradicts the model's convention (:meth:`use_convention`) is an error.
        batch_size: training batch size.
        eval_batch_size: batch size for val / test / predict (default: ``batch_size``).
        num_workers: DataLoader workers.
        weights: per-source sampling weights for training (default: proportional to size).
        schedule: source names per iteration, cycled (TeachDiffusionMatting's alternation);
            ``"a|b|c"`` draws that iteration's source uniformly among a, b and c; excludes
            ``weights``.
        steps_per_epoch: training batches per epoch (default: one pass over the sources).
        prompts: prompt sampling ranges shared by all families.
        protocol: a named evaluation protocol (:data:`~mattekit.prompts.protocols.PROTOCOLS`:
            ``sdmatte``, ``zim``, ``shared``) for val / test / predict: its prompts (as the
            release draws them), its fit of the image (unless the model has its own) and its
            scoring (8-bit or float); None: evaluation prompts come from ``prompts`` (tables
            say ``sampled``).
        eval_clicks: exactly this many positive clicks and no negative one per evaluation
            sample, under the protocol or not (``mattekit clicks`` sets it per count).
        quantize: score predictions as 8-bit PNGs of them: ``round`` (DIM's MATLAB protocol
            reads mattes written that way), ``truncate`` (SDMatte's release), ``none`` (floats);
            default: the protocol's, else ``none``.
        augment: training augmentation.
        seed: seed of the evaluation prompts and of the synthetic scenes.
        synthetic_train_samples: size of the default synthetic training set.
        synthetic_eval_samples: size of the default synthetic evaluation set.
        skip_unreadable: ``predict`` only: an image that cannot be read is skipped with a
            warning naming it (the prediction writer counts them at the end) instead of
            stopping the run.
    """

    def __init__(
        self,
        train: Sources = None,
        val: Sources = None,
        test: Sources = None,
        predict: Sources = None,
        image_size: int | tuple[int, int] = 512,
        eval_image_size: int | tuple[int, int] | None = None,
        resize: Literal["stretch", "letterbox"] | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        weights: list[float] | None = None,
        schedule: list[str] | None = None,
        steps_per_epoch: int | None = None,
        prompts: PromptConfig = PromptConfig(),
        protocol: str | None = None,
        eval_clicks: int | None = None,
        quantize: Quantize | None = None,
        augment: AugmentConfig = AugmentConfig(),
        seed: int = 0,
        synthetic_train_samples: int = 1000,
        synthetic_eval_samples: int = 64,
        skip_unreadable: bool = False,
    ) -> None:
        super().__init__()
        # OpenCV's thread pool must not exist when DataLoader workers fork: a worker inherits
        # its locks mid-state and can hang in its first OpenCV call. Workers are the parallelism.
        cv2.setNumThreads(0)
        if weights is not None and schedule is not None:
            raise ValueError("give either weights or schedule for mixing sources, not both")
        self.image_size = _pair(image_size)
        self.eval_image_size = _pair(image_size if eval_image_size is None else eval_image_size)
        self.protocol = get_protocol(protocol) if protocol is not None else None
        # The release's fit of the image, where neither the model nor the user sets one.
        self._protocol_resize = (
            (self.protocol.input_convention or (None, None))[1] if self.protocol else None
        )
        self.resize = resize or self._protocol_resize or "stretch"
        self._given_input = (eval_image_size, resize)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.weights = weights
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.prompt_sampler = PromptSampler(prompts)
        evaluation = self.protocol.prompt_config(prompts) if self.protocol else prompts
        if eval_clicks is not None:
            evaluation = replace(
                evaluation, positive_points=(eval_clicks, eval_clicks), negative_points=(0, 0)
            )
        self.eval_prompt_sampler = PromptSampler(evaluation)
        self.quantize: Quantize = quantize or (self.protocol.quantize if self.protocol else "none")
        self.augment = augment
        self.seed = seed
        self.skip_unreadable = skip_unreadable
        # sample id -> already predicted; set by the prediction writer with skip_existing.
        self.predict_exclude: Callable[[str], bool] | None = None

        def synthetic(count: int, seed: int, name: str, size: tuple[int, int]) -> list:
            return [SyntheticSource(count, image_size=size, seed=seed, name=name)]

        def held_out(name: str) -> list[MattingSource]:
            return synthetic(synthetic_eval_samples, seed + 1, name, self.eval_image_size)

        train_scenes = synthetic(synthetic_train_samples, seed, "synthetic", self.image_size)
        self.sources = {
            "train": _as_list(train) or train_scenes,
            "val": _as_list(val) or held_out("synthetic_val"),
        }
        # Test defaults to the validation sources. The default synthetic ones are the same scenes
        # (a scene depends on seed, index and size, never on the name) under the stage's name, so
        # the grid's test with another --data.seed is not labelled as validation data.
        self.sources["test"] = _as_list(test) or _as_list(val) or held_out("synthetic_test")
        self.sources["predict"] = _as_list(predict) or self.sources["test"]
        names = [source.name for source in self.sources["train"]]
        if len(set(names)) != len(names):
            raise ValueError(f"training sources need distinct names for mixing, got {names}")

    def use_convention(self, convention: InputConvention, family: str) -> None:
        """Evaluate at the model's input convention (the CLI and the trainer call this when the
        model is set up): its side and fit replace the defaults.

        Raises:
            ValueError naming ``--data.eval_image_size`` or ``--data.resize`` when a value given
            here contradicts the model's (the checkpoint would be scored on another input than
            ``matte`` and the benchmark give it).
        """
        size, resize = self._given_input
        if isinstance(size, (list, tuple)):
            size = size[0] if size[0] == size[1] else tuple(size)
        resolved = convention.resolved(
            size,
            resize,
            family,
            flags=("data.eval_image_size", "data.resize"),
            fallback=(None, self._protocol_resize),
        )
        if convention.side is not None:
            self.eval_image_size = _pair(convention.side)
        self.resize = resolved.resize

    def dataset(self, stage: str) -> DrawConcat:
        """The stage's sources behind the shared pipeline, concatenated."""
        train = stage == "train"
        size = self.image_size if train else self.eval_image_size
        transform = MattingTransform(size, train, self.augment, self.resize)
        keep_original = stage in ("val", "test")
        sampler = self.prompt_sampler if train else self.eval_prompt_sampler
        return DrawConcat(
            [
                MattingDataset(s, transform, sampler, train, self.seed, keep_original)
                for s in self.sources[stage]
            ]
        )

    def _loader(
        self, stage: str, dataset: DrawConcat | None = None, loader=DataLoader, **kwargs
    ) -> DataLoader:
        # The loader's own generator seeds its workers: making an iterator must not draw from
        # torch's global RNG, which the model's training steps use (an exact resume restores it).
        return loader(
            self.dataset(stage) if dataset is None else dataset,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
            **{"collate_fn": collate_samples, **kwargs},
        )

    def _training_progress(self) -> tuple[int, int, int]:
        """(epoch, batches of it trained on by each process, processes), for checkpoints."""
        trainer = self.trainer
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return trainer.current_epoch, done, trainer.world_size

    def train_dataloader(self) -> ResumableLoader:
        """Draws seeded by the run's seed (``seed_everything``'s: ``torch.initial_seed()``), the
        epoch and the position in it (:mod:`mattekit.data.draws`); each of the trainer's
        processes trains its own share of them (:class:`~mattekit.data.mixing.DrawShare`, also
        under a one-process DDP, where Lightning's sampler would reorder them)."""
        trainer = self.trainer
        on_trainer = trainer is not None
        processes, rank = (trainer.world_size, trainer.global_rank) if on_trainer else (1, 0)
        sizes = [len(source) for source in self.sources["train"]]
        if self.schedule is not None:
            draws = self._scheduled_draws(sizes, processes)
        else:
            per_epoch = self.steps_per_epoch * self.batch_size if self.steps_per_epoch else None
            weights = self.weights or sizes
            draws = WeightedSourceSampler(sizes, weights, per_epoch, seed=torch.initial_seed())
        return self._loader(
            "train",
            batch_size=self.batch_size,
            sampler=DrawShare(draws, processes, rank),
            drop_last=True,
            loader=ResumableLoader,
            draws=draws,
            progress=self._training_progress,
        )

    def _scheduled_draws(self, sizes: list[int], processes: int) -> ScheduledDraws:
        """The schedule over all processes: global batch ``i`` (``batch_size`` draws of each
        process) comes from ``schedule[i % len(schedule)]``, as in one process with
        ``processes * batch_size``. An epoch has ``steps_per_epoch * batch_size`` draws however
        many processes share it, as the weighted draws do."""
        names = [source.name for source in self.sources["train"]]
        groups = [entry.split("|") for entry in self.schedule]
        unknown = sorted({n for group in groups for n in group} - set(names))
        if unknown:
            raise ValueError(f"schedule names unknown sources {unknown}; known: {names}")
        steps = self.steps_per_epoch // processes if self.steps_per_epoch else None
        if steps == 0:
            raise ValueError(
                f"--data.steps_per_epoch={self.steps_per_epoch} leaves no step to each of "
                f"{processes} processes: give at least {processes}"
            )
        batches = ScheduledBatchSampler(
            sizes,
            [tuple(names.index(n) for n in group) for group in groups],
            self.batch_size * processes,
            steps,
            seed=torch.initial_seed(),
        )
        return ScheduledDraws(batches)

    def _evaluation_loader(self, stage: str) -> DataLoader:
        """Every sample once, whatever the process count.

        Lightning's default ``DistributedSampler`` pads the last process's share by repeating
        samples, which biases metrics (5 samples on 2 processes scored 6). Here each process
        gets its own share, off by at most one sample; the metrics gather them at epoch end.
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return self._loader(stage, batch_size=self.eval_batch_size)
        dataset = self.dataset(stage)
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
        )
        return self._loader(stage, dataset, batch_size=self.eval_batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The predict sources, less the samples ``predict_exclude`` names (when their ids are
        known without loading them), with unreadable images skipped if ``skip_unreadable``."""
        dataset = self.dataset("predict")
        if self.predict_exclude is not None:
            dataset = without_predicted(dataset, self.predict_exclude)
        if not self.skip_unreadable:
            return self._loader("predict", dataset, batch_size=self.eval_batch_size)
        return self._loader(
            "predict",
            SkipUnreadable(dataset),
            batch_size=self.eval_batch_size,
            collate_fn=collate_readable,
        )


def synthetic_batch(image_size: int, count: int, stage: str = "val") -> MattingBatch:
    """Samples ``0 .. count-1`` of the default synthetic scenes of ``stage`` at ``image_size`` px,
    through the whole training or evaluation pipeline, collated (tests and benchmarks use it:
    scenes are seeded per index, so a sample is the same whatever ``count``)."""
    data = MattingDataModule(image_size=image_size, num_workers=0, synthetic_eval_samples=count)
    dataset = data.dataset(stage)
    return collate_samples([dataset[index] for index in range(count)])
