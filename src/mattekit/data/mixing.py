"""Drawing training samples from several sources: by weight, or by a per-iteration schedule.

Both samplers index a ``ConcatDataset`` of the sources (source k occupies the index range
``offsets[k] : offsets[k] + sizes[k]``) and draw their randomness from torch's global RNG, so
``seed_everything`` makes them reproducible and each epoch differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


def _offsets(sizes: Sequence[int]) -> list[int]:
    return [sum(sizes[:k]) for k in range(len(sizes))]


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, ()).item()))


class WeightedSourceSampler(Sampler[int]):
    """Each draw picks a source with probability proportional to its weight, then a sample.

    Args:
        sizes: number of samples of each source.
        weights: relative weight of each source (need not sum to one).
        num_samples: draws per epoch (default: the total size of the sources).
    """

    def __init__(
        self, sizes: Sequence[int], weights: Sequence[float], num_samples: int | None = None
    ) -> None:
        if len(weights) != len(sizes):
            raise ValueError(f"weights has {len(weights)} entries for {len(sizes)} sources")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.sizes = list(sizes)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.num_samples = num_samples or sum(sizes)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = _generator()
        offsets = torch.tensor(_offsets(self.sizes))
        sizes = torch.tensor(self.sizes)
        chosen = torch.multinomial(self.weights, self.num_samples, True, generator=generator)
        within = (torch.rand(self.num_samples, generator=generator) * sizes[chosen]).long()
        yield from (offsets[chosen] + within).tolist()


class ScheduledBatchSampler(Sampler[list[int]]):
    """Batch ``i`` comes entirely from source ``schedule[i % len(schedule)]``.

    TeachDiffusionMatting alternates datasets by iteration; ``schedule=[0, 0, 1]`` gives two
    batches of source 0, then one of source 1, and so on.

    Args:
        sizes: number of samples of each source.
        schedule: source index per iteration, cycled.
        batch_size: samples per batch.
        num_batches: batches per epoch (default: one pass over the schedule's share of data).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        schedule: Sequence[int],
        batch_size: int,
        num_batches: int | None = None,
    ) -> None:
        if not schedule:
            raise ValueError("schedule must name at least one source")
        bad = [k for k in schedule if not 0 <= k < len(sizes)]
        if bad:
            raise ValueError(f"schedule names sources {bad}, but there are only {len(sizes)}")
        self.sizes = list(sizes)
        self.schedule = list(schedule)
        self.batch_size = batch_size
        self.num_batches = num_batches or max(1, sum(sizes) // batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = _generator()
        offsets = _offsets(self.sizes)
        for step in range(self.num_batches):
            source = self.schedule[step % len(self.schedule)]
            within = torch.randint(0, self.sizes[source], (self.batch_size,), generator=generator)
            yield (within + offsets[source]).tolist()
