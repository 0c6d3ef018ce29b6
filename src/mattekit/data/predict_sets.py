"""What ``predict`` iterates over: samples not yet predicted, and unreadable images skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch.utils.data import ConcatDataset, Dataset, Subset

from mattekit.data.io import ImageReadError
from mattekit.data.sample import MattingBatch, collate_samples

logger = logging.getLogger(__name__)


def without_predicted(dataset: ConcatDataset, predicted: Callable[[str], bool]) -> Dataset:
    """``dataset`` less the samples whose id ``predicted`` accepts.

    Only sources that know their ids without loading (``MattingSource.sample_id``) are
    filtered; the others are kept whole (the writer then skips their existing files).
    """
    keep, offset, skipped = [], 0, 0
    for part in dataset.datasets:
        source = part.source
        for index in range(len(part)):
            sample_id = source.sample_id(index)
            if sample_id is not None and predicted(sample_id):
                skipped += 1
            else:
                keep.append(offset + index)
        offset += len(part)
    if skipped:
        logger.info("%d of %d samples already predicted: not run again", skipped, offset)
    return Subset(dataset, keep) if skipped else dataset


class SkipUnreadable(Dataset):
    """``dataset`` whose unreadable items come out as None, with a warning naming the file."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict | None:
        try:
            return self.dataset[index]
        except (ImageReadError, OSError) as error:
            logger.warning("skipped, cannot be read: %s", error)
            return None


def collate_readable(samples: list[dict | None]) -> MattingBatch | None:
    """:func:`collate_samples` of the readable samples; None when there is none."""
    readable = [sample for sample in samples if sample is not None]
    return collate_samples(readable) if readable else None
