"""``MattingDataModule``: the one DataModule every family trains and evaluates on."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import cv2
import lightning as L
from torch.utils.data import ConcatDataset, DataLoader

from mattekit.data.dataset import MattingDataset
from mattekit.data.mixing import ScheduledBatchSampler, WeightedSourceSampler
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import collate_samples
from mattekit.data.source import MattingSource
from mattekit.data.synthetic import SyntheticSource
from mattekit.data.transforms import AugmentConfig, MattingTransform

logger = logging.getLogger(__name__)

Sources = MattingSource | list[MattingSource] | None


def _as_list(sources: Sources) -> list[MattingSource]:
    if sources is None:
        return []
    return list(sources) if isinstance(sources, Sequence) else [sources]


class MattingDataModule(L.LightningDataModule):
    """Shared data for every family: sources, augmentation, prompts, mixing and loaders.

    With no sources given, every stage uses the built-in synthetic scenes (seeded, download-free):
    training on ``synthetic_train_samples`` scenes, validation / test / predict on
    ``synthetic_eval_samples`` held-out scenes (a different seed).

    Args:
        train: training source(s); several are mixed by ``weights`` or ``schedule``.
        val: validation source(s); each is evaluated in full.
        test: test source(s) (default: the validation sources).
        predict: prediction source(s) (default: the test sources).
        image_size: network input ``H`` (square) or ``(H, W)``.
        resize: how evaluation fits images to ``image_size``: ``stretch`` or ``letterbox``
            (SAM's convention, for SAM-based families on real photos).
        batch_size: training batch size.
        eval_batch_size: batch size for val / test / predict (default: ``batch_size``).
        num_workers: DataLoader workers.
        weights: per-source sampling weights for training (default: proportional to size).
        schedule: source names per iteration, cycled (TeachDiffusionMatting's alternation);
            excludes ``weights``.
        steps_per_epoch: training batches per epoch (default: one pass over the sources).
        prompts: prompt sampling ranges shared by all families.
        augment: training augmentation.
        seed: seed of the evaluation prompts and of the synthetic scenes.
        synthetic_train_samples: size of the default synthetic training set.
        synthetic_eval_samples: size of the default synthetic evaluation set.
    """

    def __init__(
        self,
        train: Sources = None,
        val: Sources = None,
        test: Sources = None,
        predict: Sources = None,
        image_size: int | tuple[int, int] = 512,
        resize: Literal["stretch", "letterbox"] = "stretch",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        weights: list[float] | None = None,
        schedule: list[str] | None = None,
        steps_per_epoch: int | None = None,
        prompts: PromptConfig = PromptConfig(),
        augment: AugmentConfig = AugmentConfig(),
        seed: int = 0,
        synthetic_train_samples: int = 1000,
        synthetic_eval_samples: int = 64,
    ) -> None:
        super().__init__()
        # OpenCV's thread pool must not exist when DataLoader workers fork: a worker inherits
        # its locks mid-state and can hang in its first OpenCV call. Workers are the parallelism.
        cv2.setNumThreads(0)
        if weights is not None and schedule is not None:
            raise ValueError("give either weights or schedule for mixing sources, not both")
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.resize = resize
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.weights = weights
        self.schedule = schedule
        self.steps_per_epoch = steps_per_epoch
        self.prompt_sampler = PromptSampler(prompts)
        self.augment = augment
        self.seed = seed

        def synthetic(count: int, seed: int, name: str) -> list[MattingSource]:
            return [SyntheticSource(count, image_size=self.image_size, seed=seed, name=name)]

        self.sources = {
            "train": _as_list(train) or synthetic(synthetic_train_samples, seed, "synthetic"),
            "val": _as_list(val) or synthetic(synthetic_eval_samples, seed + 1, "synthetic_val"),
        }
        self.sources["test"] = _as_list(test) or self.sources["val"]
        self.sources["predict"] = _as_list(predict) or self.sources["test"]
        names = [source.name for source in self.sources["train"]]
        if len(set(names)) != len(names):
            raise ValueError(f"training sources need distinct names for mixing, got {names}")

    def dataset(self, stage: str) -> ConcatDataset:
        """The stage's sources behind the shared pipeline, concatenated."""
        train = stage == "train"
        transform = MattingTransform(self.image_size, train, self.augment, self.resize)
        keep_original = stage in ("val", "test")
        return ConcatDataset(
            [
                MattingDataset(s, transform, self.prompt_sampler, train, self.seed, keep_original)
                for s in self.sources[stage]
            ]
        )

    def _loader(self, stage: str, **kwargs) -> DataLoader:
        return DataLoader(
            self.dataset(stage),
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        sizes = [len(source) for source in self.sources["train"]]
        names = [source.name for source in self.sources["train"]]
        if self.schedule is not None:
            unknown = sorted(set(self.schedule) - set(names))
            if unknown:
                raise ValueError(f"schedule names unknown sources {unknown}; known: {names}")
            batches = ScheduledBatchSampler(
                sizes,
                [names.index(n) for n in self.schedule],
                self.batch_size,
                self.steps_per_epoch,
            )
            return self._loader("train", batch_sampler=batches)
        num_samples = self.steps_per_epoch * self.batch_size if self.steps_per_epoch else None
        sampler = WeightedSourceSampler(sizes, self.weights or sizes, num_samples)
        return self._loader("train", batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", batch_size=self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", batch_size=self.eval_batch_size)
