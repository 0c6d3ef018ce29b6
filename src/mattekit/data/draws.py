"""Training randomness as a function of (run seed, epoch, position in the epoch).

Which sample a training step sees, and how it is augmented and prompted, depends on nothing
else: not on the process, the DataLoader worker, how many batches were prefetched, or whether the
run was interrupted. That makes a resumed run draw exactly what the uninterrupted one would have
(``tests/integration/test_resume.py`` kills a real ``fit`` and compares the weights).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import ConcatDataset


@dataclass(frozen=True)
class Draw:
    """One training draw.

    Attributes:
        index: the sample, in the concatenated sources (or within one source once routed).
        key: ``(run seed, epoch, position)``: the seed of the sample's augmentation and prompts.
    """

    index: int
    key: tuple[int, ...]

    def rng(self) -> np.random.Generator:
        """The sample's generator (NumPy's, seeded by the whole key)."""
        return np.random.default_rng(list(self.key))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's choice of samples."""
    words = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(words[0] >> np.uint64(1)))


class DrawConcat(ConcatDataset):
    """``ConcatDataset`` that also routes a :class:`Draw` to its source, keeping its key."""

    def __getitem__(self, item: int | Draw):
        if not isinstance(item, Draw):
            return super().__getitem__(item)
        source = bisect.bisect_right(self.cumulative_sizes, item.index)
        start = self.cumulative_sizes[source - 1] if source else 0
        return self.datasets[source][Draw(item.index - start, item.key)]
