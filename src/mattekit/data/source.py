"""Base class of every data source: a sized collection of :class:`RawSample`."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from mattekit.data.sample import RawSample


class MattingSource(Dataset):
    """A source of raw samples (synthetic scenes, a benchmark folder, ...).

    Subclasses implement ``__len__`` and :meth:`load`. ``load`` receives the random generator of
    the pipeline so that random choices a source makes (a composition background, a text
    expression among several) follow the pipeline's seeding: seeded per index for evaluation,
    fresh per draw for training. A source never augments or samples prompts: the shared
    :class:`~mattekit.data.dataset.MattingDataset` does, identically for every source.

    Args:
        name: short name used in logs, sample ids and per-source schedules.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        """Return sample ``index`` (0 <= index < len(self))."""
        raise NotImplementedError

    def sample_id(self, index: int) -> str | None:
        """The id of sample ``index`` without loading it; None when that needs the file.

        ``predict`` with ``skip_existing`` uses it to leave out samples already predicted.
        """
        return None

    def sample_inputs(self, index: int) -> dict:
        """What sample ``index``'s prediction depends on besides the run (its files'
        SHA-256, say), for the record written beside it (:mod:`mattekit.output_records`);
        empty when the run's settings determine it."""
        return {}

    def __getitem__(self, index: int) -> RawSample:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        return self.load(index, np.random.default_rng(index))
