"""Each sample loaded once for a whole benchmark: its prompts, every in-process method and the
scoring read the same :class:`~mattekit.data.sample.RawSample` (a synthetic scene is rendered,
a photo decoded, once instead of once per method and prompt kind)."""

from __future__ import annotations

import dataclasses

import numpy as np

from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource


def _arrays(raw: RawSample) -> list[np.ndarray]:
    values = (getattr(raw, field.name) for field in dataclasses.fields(raw))
    return [value for value in values if isinstance(value, np.ndarray)]


class CachedSource(MattingSource):
    """``source`` with its loaded samples kept while they fit in ``budget_bytes``.

    A load is reused only when the generator it is given starts in the state the kept load
    started from (the benchmark loads sample ``index`` with ``evaluation_rng(seed, index)``
    everywhere), and the generator is left where that load left it: a caller's later draws are
    those it would make after a real load. Every caller gets the same arrays: the benchmark's
    methods, prompts and scoring copy what they change (they are not made read-only, which
    torch would warn about on every ``from_numpy``). Pickled (to a worker process), it holds
    no samples.
    """

    def __init__(self, source: MattingSource, budget_bytes: int = 2**30) -> None:
        super().__init__(source.name)
        self.source = source
        self.budget_bytes = budget_bytes
        self._kept: dict[int, tuple[dict, RawSample, dict]] = {}
        self._used_bytes = 0

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        before = rng.bit_generator.state
        kept = self._kept.get(index)
        if kept is not None and kept[0] == before:
            rng.bit_generator.state = kept[2]
            return kept[1]
        raw = self.source.load(index, rng)
        size = sum(array.nbytes for array in _arrays(raw))
        if self._used_bytes + size <= self.budget_bytes:
            self._kept[index] = (before, raw, rng.bit_generator.state)
            self._used_bytes += size
        return raw

    def sample_id(self, index: int) -> str | None:
        return self.source.sample_id(index)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_kept": {}, "_used_bytes": 0}
