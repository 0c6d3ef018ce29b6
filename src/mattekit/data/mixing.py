"""Drawing training samples from several sources: by weight, or by a per-iteration schedule.

Both samplers index the concatenated sources (source k occupies the index range
``offsets[k] : offsets[k] + sizes[k]``) and yield :class:`~mattekit.data.draws.Draw` items: which
sample, and the seed of everything random about it. Every draw is a function of the run's seed,
the epoch and the position in the epoch only (:mod:`mattekit.data.draws`), so an epoch is the same
however it is reached, and a resumed epoch continues where the interrupted one stopped
(:meth:`resume`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler

from mattekit.data.draws import Draw, epoch_generator


def _offsets(sizes: Sequence[int]) -> list[int]:
    return [sum(sizes[:k]) for k in range(len(sizes))]


class EpochDraws:
    """The epoch counter and the resume point shared by the samplers.

    Args:
        seed: the run's seed (every draw derives from it).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning (also through its distributed wrapper) before each epoch."""
        self.epoch = epoch

    def resume(self, epoch: int, position: int) -> None:
        """The next iteration is ``epoch``'s, from ``position`` (draws before it are skipped)."""
        self.epoch, self._start = epoch, position

    def _take_start(self) -> int:
        start, self._start = self._start, 0
        return start


class WeightedSourceSampler(EpochDraws, Sampler[Draw]):
    """Each draw picks a source with probability proportional to its weight, then a sample.

    Args:
        sizes: number of samples of each source.
        weights: relative weight of each source (need not sum to one).
        num_samples: draws per epoch (default: the total size of the sources).
        seed: the run's seed.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        num_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if len(weights) != len(sizes):
            raise ValueError(f"weights has {len(weights)} entries for {len(sizes)} sources")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.sizes = list(sizes)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.num_samples = num_samples or sum(sizes)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[Draw]:
        start = self._take_start()
        generator = epoch_generator(self.seed, self.epoch)
        offsets = torch.tensor(_offsets(self.sizes))
        sizes = torch.tensor(self.sizes)
        chosen = torch.multinomial(self.weights, self.num_samples, True, generator=generator)
        within = (torch.rand(self.num_samples, generator=generator) * sizes[chosen]).long()
        indices = (offsets[chosen] + within).tolist()
        for position in range(start, self.num_samples):
            yield Draw(indices[position], (self.seed, self.epoch, position))


class DrawShare(DistributedSampler):
    """One process's share of an epoch's draws (weighted or scheduled) under several processes.

    Process ``rank`` of ``num_replicas`` takes the positions ``rank, rank + num_replicas, ...``
    in order, up to the largest multiple of ``num_replicas`` (the last draws, fewer than
    ``num_replicas``, are trained by no one): every process gets as many draws and none is
    trained twice. Batched by ``b`` per process, step ``i`` of every process covers the
    positions ``i * b * num_replicas`` up to ``(i + 1) * b * num_replicas``: together the
    processes train the one-process batch of ``b * num_replicas`` draws (for a schedule,
    :class:`ScheduledDraws`, that batch's single source). Lightning's own wrapper pads the last
    share by repeating draws and shuffles positions across processes, which the resume point (a
    count of draws from the epoch's start, :class:`~mattekit.data.resumable.ResumableLoader`)
    cannot follow; being a ``DistributedSampler``, this one is left as it is. With one process
    it yields the draws unchanged.

    Args:
        draws: the epoch's draws for all processes.
        num_replicas: number of processes; rank: this one's.
    """

    def __init__(
        self, draws: WeightedSourceSampler | ScheduledDraws, num_replicas: int, rank: int
    ) -> None:
        super().__init__(range(len(draws)), num_replicas, rank, shuffle=False, drop_last=True)
        self.draws = draws

    def __iter__(self) -> Iterator[Draw]:
        # From the resume point on: the positions skipped are those every process trained.
        for draw in self.draws:
            position = draw.key[-1]
            if position < self.total_size and position % self.num_replicas == self.rank:
                yield draw

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.draws.set_epoch(epoch)


class ScheduledBatchSampler(EpochDraws, Sampler[list[Draw]]):
    """Batch ``i`` comes entirely from source ``schedule[i % len(schedule)]``.

    TeachDiffusionMatting alternates datasets by iteration; ``schedule=[0, 0, 1]`` gives two
    batches of source 0, then one of source 1, and so on. An entry may be a group of sources,
    ``(2, 3, 4)``: that iteration's source is drawn uniformly among them (the paper's extra
    iteration on one of P3M-10k, AM-2k and RM-1k).

    Args:
        sizes: number of samples of each source.
        schedule: per iteration, cycled: a source index, or a tuple of indices to draw from.
        batch_size: samples per batch.
        num_batches: batches per epoch (default: one pass over the schedule's share of data).
        seed: the run's seed.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        schedule: Sequence[int],
        batch_size: int,
        num_batches: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if not schedule:
            raise ValueError("schedule must name at least one source")
        groups = [tuple(k) if isinstance(k, (tuple, list)) else (k,) for k in schedule]
        bad = [k for group in groups for k in group if not 0 <= k < len(sizes)]
        if bad or not all(groups):
            raise ValueError(f"schedule names sources {bad}, but there are only {len(sizes)}")
        self.sizes = list(sizes)
        self.schedule = groups
        self.batch_size = batch_size
        self.num_batches = num_batches or max(1, sum(sizes) // batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[Draw]]:
        """Batches from the resume point on (:meth:`resume` counts batches here)."""
        start = self._take_start()
        generator = epoch_generator(self.seed, self.epoch)
        offsets = _offsets(self.sizes)
        size = self.batch_size
        for step in range(self.num_batches):
            group = self.schedule[step % len(self.schedule)]
            pick = torch.randint(0, len(group), (1,), generator=generator) if len(group) > 1 else 0
            source = group[int(pick)]
            within = torch.randint(0, self.sizes[source], (size,), generator=generator)
            if step >= start:
                indices = (within + offsets[source]).tolist()
                key = (self.seed, self.epoch)
                yield [Draw(i, (*key, step * size + j)) for j, i in enumerate(indices)]


class ScheduledDraws(Sampler[Draw]):
    """A :class:`ScheduledBatchSampler`'s batches, one draw after another, for a DataLoader that
    batches them again (directly, or each process its :class:`DrawShare` of them).

    Under ``N`` processes of ``b`` samples each, the schedule is built with ``b * N`` samples
    per batch: global batch ``i`` comes from ``schedule[i % len(schedule)]`` as in one process,
    and each process trains ``b`` of its draws.

    Args:
        batches: the schedule, with the batch size of all processes together.
    """

    def __init__(self, batches: ScheduledBatchSampler) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches) * self.batches.batch_size

    def __iter__(self) -> Iterator[Draw]:
        for batch in self.batches:
            yield from batch

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def resume(self, epoch: int, position: int) -> None:
        """Continue ``epoch`` from draw ``position``: the global batches before it are skipped
        (a resume point counts whole steps of every process, so under the same process count it
        falls on a batch's start; under another, the batch size and so the draws differ)."""
        self.batches.resume(epoch, position // self.batches.batch_size)
