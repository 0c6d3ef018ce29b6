"""Prompts made once per dataset and stored beside the results, then given to every method.

Each sample's prompts are drawn from its GT at the stored size with the protocol's seed and
written as MicroMat-3K's json (``{"point": [[x, y, label], ...], "bbox": [x0, y0, x1, y1]}`` in
pixels, plus ``"text"``), its coarse mask as ``<stem>_mask.png`` and, for a dataset without a
trimap, the trimap sampled from the GT as ``<stem>_trimap.png``. A dataset's own prompts
(MicroMat-3K's clicks and box, RefMatte's expressions, a trimap) are stored as they are.

``manifest.json`` records what the prompts were made with; prompts made with other settings are
never reused silently (:class:`PromptsConflict`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mattekit.atomic_files import write_bytes_atomic, write_png_atomic
from mattekit.data.dataset import evaluation_rng
from mattekit.data.io import read_json, read_mask, read_trimap
from mattekit.data.micromat import parse_micromat_prompt
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import RawSample
from mattekit.data.source import MattingSource
from mattekit.pipelines.benchmark.spec import Protocol
from mattekit.prompts import KINDS
from mattekit.prompts.protocols import get_protocol

#: Bumped when the way prompts are drawn changes: stored prompts of another version are stale.
PROMPT_VERSION = 1


class PromptsConflict(ValueError):
    """Stored prompts made with other settings than the benchmark's (the message says which)."""


def prompt_config(protocol: Protocol) -> PromptConfig:
    """How the stored prompts are drawn: by the named evaluation protocol (``shared``: the
    shared sampler's ranges, a dataset's own prompts and trimap kept), with
    ``protocol.clicks`` positive clicks and no negative ones."""
    config = get_protocol(protocol.name).prompt_config(PromptConfig())
    return dataclasses.replace(config, positive_points=(protocol.clicks,) * 2)


def load_raw(source: MattingSource, index: int, seed: int) -> RawSample:
    """Sample ``index`` at its stored size, loaded as every method sees it: with the evaluation
    generator of the shared pipeline (a composited source's background draw is then the same
    for the stored prompts and for every method)."""
    return source.load(index, evaluation_rng(seed, index))


@dataclass(frozen=True)
class StoredPrompt:
    """One sample's prompts at its stored size (H x W).

    Attributes:
        points: N x 3 float32 ``(x, y, label)``, label 1 positive / 0 negative.
        box: 4 float32 ``(x0, y0, x1, y1)``, inclusive pixel coordinates.
        coarse_mask: H x W uint8 {0, 1}.
        trimap: H x W uint8 {0, 128, 255}: the dataset's own, else one sampled from the GT.
        trimap_from_dataset: whether ``trimap`` is the dataset's own.
        text: the dataset's referring expression ("" when none).
    """

    points: np.ndarray
    box: np.ndarray
    coarse_mask: np.ndarray
    trimap: np.ndarray
    trimap_from_dataset: bool
    text: str = ""


def file_stem(sample_id: str) -> str:
    """A sample id as a file name (``synthetic/s0/000042`` -> ``synthetic__s0__000042``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id.replace("/", "__"))


class PromptStore:
    """The stored prompts of one dataset under ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, protocol: Protocol) -> None:
        self.folder = Path(folder)
        self.protocol = protocol
        self.sampler = PromptSampler(prompt_config(protocol))
        self.sample_ids: list[str] = []
        self._read: dict[int, StoredPrompt] = {}  # read once for every method

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_read": {}}  # a worker process reads its own

    def _manifest(self, source: MattingSource, identity: dict | None) -> dict:
        return {
            "version": PROMPT_VERSION,
            "source": identity or {"name": source.name},
            "samples": len(source),
            "seed": self.protocol.seed,
            "prompt_config": json.loads(json.dumps(dataclasses.asdict(self.sampler.config))),
        }

    def make(
        self, source: MattingSource, progress: bool = True, identity: dict | None = None
    ) -> None:
        """Draw and write every sample's prompts not yet stored; check the stored ones' settings.

        ``identity`` names the data (the source's ``class_path`` and ``init_args``; default its
        name): prompts stored for other data are not reused.

        Raises:
            PromptsConflict: the folder holds prompts made with other settings (a seed, a click
                count, another source).
            PromptsConflict: two samples share an id.
        """
        manifest_path = self.folder / "manifest.json"
        wanted = self._manifest(source, identity)
        if manifest_path.exists():
            stored = self.load_manifest()
            made = {k: v for k, v in stored.items() if k != "sample_ids"}
            if made != wanted:
                changed = sorted(k for k in wanted if made.get(k) != wanted[k])
                raise PromptsConflict(
                    f"{self.folder} holds prompts made with other settings ({', '.join(changed)} "
                    "differ): delete the folder to make them again, and every method's results "
                    "on this dataset with it"
                )
        seed = self.protocol.seed
        ids: list[str] = []
        for index in tqdm(range(len(source)), f"prompts {source.name}", disable=not progress):
            known = self.sample_ids[index] if index < len(self.sample_ids) else None
            if known is not None and (self.folder / f"{file_stem(known)}.json").exists():
                ids.append(known)
                continue
            rng = evaluation_rng(seed, index)
            raw = source.load(index, rng)
            self._write(raw, rng)
            ids.append(raw.sample_id)
        stems = [file_stem(i) for i in ids]
        if len(set(stems)) != len(stems):
            repeated = sorted({s for s in stems if stems.count(s) > 1})[:3]
            raise PromptsConflict(
                f"{source.name}: samples share ids (as file names: {repeated}); the benchmark "
                "stores prompts by sample id"
            )
        self.sample_ids = ids
        manifest = {**wanted, "sample_ids": ids}
        write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode())

    def load_manifest(self) -> dict:
        """Read ``manifest.json`` (the sample ids it lists become :attr:`sample_ids`)."""
        stored = read_json(self.folder / "manifest.json", "prompt manifest")
        self.sample_ids = list(stored["sample_ids"])
        return stored

    def _write(self, raw: RawSample, rng: np.random.Generator) -> None:
        """Draw ``raw``'s prompts with ``rng`` (the generator it was loaded with) and write them."""
        drawn = self.sampler(
            raw.alpha, rng, raw.sample_id, trimap=raw.trimap, points=raw.points, box=raw.box
        )
        clicks = drawn.labels >= 0
        points = np.concatenate([drawn.points[clicks], drawn.labels[clicks, None]], axis=1)
        stem = file_stem(raw.sample_id)
        record = {
            "point": [[float(v) for v in row] for row in points],
            "bbox": [float(v) for v in drawn.box],
            "text": raw.text,
        }
        write_png_atomic(self.folder / f"{stem}_mask.png", drawn.coarse_mask * np.uint8(255))
        if raw.trimap is None:
            write_png_atomic(self.folder / f"{stem}_trimap.png", drawn.trimap)
        # The json last: its presence marks the sample as stored.
        write_bytes_atomic(self.folder / f"{stem}.json", json.dumps(record).encode())

    def read(self, index: int, raw: RawSample) -> StoredPrompt:
        """The stored prompts of sample ``index`` (``raw``: the sample, for its size and trimap).

        Raises:
            ValueError naming the file: a sample whose id is not the stored one (the dataset
            changed since the prompts were made), or a malformed file.
        """
        kept = self._read.get(index)
        if kept is not None and raw.sample_id == self.sample_ids[index]:
            return kept
        prompt = self._read_files(index, raw)
        self._read[index] = prompt
        return prompt

    def _read_files(self, index: int, raw: RawSample) -> StoredPrompt:
        expected = self.sample_ids[index]
        if raw.sample_id != expected:
            raise PromptsConflict(
                f"{self.folder}: sample {index} is {raw.sample_id!r} but the prompts were made "
                f"for {expected!r}; the dataset changed: delete the folder to make them again"
            )
        stem = file_stem(raw.sample_id)
        height, width = raw.size
        path = self.folder / f"{stem}.json"
        document = read_json(path, "prompt file")
        points, box = parse_micromat_prompt(document, path, height, width, raw.sample_id)
        if box is None:
            raise ValueError(f"{path}: no 'bbox'")
        coarse_mask = read_mask(self.folder / f"{stem}_mask.png").astype(np.uint8)
        trimap = raw.trimap
        if trimap is None:
            trimap = read_trimap(self.folder / f"{stem}_trimap.png")
        for name, stored in (("mask", coarse_mask), ("trimap", trimap)):
            if stored.shape != raw.size:
                raise PromptsConflict(
                    f"{self.folder / stem}_{name}.png is {stored.shape[1]}x{stored.shape[0]} but "
                    f"the image is {width}x{height}: the dataset changed since the prompts were "
                    "made; delete the folder to make them again"
                )
        text = document.get("text", "")
        return StoredPrompt(points, box, coarse_mask, trimap, raw.trimap is not None, text)


class StoredPromptSource(MattingSource):
    """A dataset whose samples carry their stored prompts (every kind's ``raw_fields``), so that
    the shared pipeline (with ``use_source_prompts``) hands every model the same clicks, box,
    coarse mask, trimap (the dataset's own where it has one, as the classical rows get) and
    text, moved to its own input size."""

    def __init__(self, source: MattingSource, store: PromptStore) -> None:
        super().__init__(source.name)
        self.source = source
        self.store = store

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int, rng: np.random.Generator) -> RawSample:
        raw = self.source.load(index, rng)
        prompt = self.store.read(index, raw)
        stored = {
            name: getattr(prompt, name) for kind in KINDS.values() for name in kind.raw_fields
        }
        return dataclasses.replace(raw, **stored)
