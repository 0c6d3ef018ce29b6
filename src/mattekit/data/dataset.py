"""The one dataset wrapper every source goes through: load, augment, sample prompts, tensorise."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mattekit.data.draws import Draw
from mattekit.data.prompts import EmptyAlphaError, PromptConfig, Prompts, PromptSampler
from mattekit.data.source import MattingSource
from mattekit.data.transforms import MattingTransform
from mattekit.nn.prompt_maps import box_mask, gaussian_point_map
from mattekit.prompts.release_maps import exclusive_box_map, filtered_click_map


def _chw(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


def evaluation_rng(seed: int, index: int) -> np.random.Generator:
    """The generator evaluation sample ``index`` is loaded, resized and prompted with (in that
    order): the same in every epoch and every run."""
    return np.random.default_rng([seed, index])


class MattingDataset(Dataset):
    """A source seen through the shared pipeline; items are dicts for ``collate_samples``.

    Randomness: in training, items are asked for by :class:`~mattekit.data.draws.Draw` (the
    samplers of :mod:`mattekit.data.mixing` yield them), whose key seeds the sample's generator:
    the same draw is the same sample, augmentation and prompts in any process, worker or resumed
    run. In evaluation the generator is seeded by ``(seed, index)``, so a validation sample has
    the same prompts in every epoch and every run. A plain index in training (a dataset used
    outside the samplers) gets a generator seeded from torch's RNG.

    Args:
        source: where raw samples come from.
        transform: augmentation / resize to the network size.
        prompts: prompt sampler.
        train: training randomness (see above).
        seed: evaluation seed.
        keep_original: add the GT alpha and trimap at the stored size (for evaluation).
    """

    def __init__(
        self,
        source: MattingSource,
        transform: MattingTransform,
        prompts: PromptSampler,
        train: bool,
        seed: int = 0,
        keep_original: bool = False,
    ) -> None:
        self.source = source
        self.transform = transform
        self.prompts = prompts
        self.train = train
        self.seed = seed
        self.keep_original = keep_original

    def __len__(self) -> int:
        return len(self.source)

    def _rng(self, item: int | Draw) -> np.random.Generator:
        if isinstance(item, Draw):
            return item.rng()
        if self.train:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return evaluation_rng(self.seed, item)

    def _why_empty(self, stored_alpha: np.ndarray) -> str:
        """What to tell a user whose sample has no foreground at the network input."""
        if not (stored_alpha > 0).any():
            return "the stored matte is all zero: check the file"
        if self.train:
            return "after augmentation: crop less aggressively (augment.crop_scale)"
        return "after resizing to the evaluation size: the object is too small for it"

    def __getitem__(self, item: int | Draw) -> dict:
        rng = self._rng(item)
        index = item.index if isinstance(item, Draw) else item
        try:
            raw = self.source.load(index, rng)
            sample = self.transform(raw, rng)
            prompts = self.prompts(
                sample.alpha,
                rng,
                raw.sample_id,
                trimap=sample.trimap,
                points=sample.points,
                box=sample.box,
                coarse_mask=sample.coarse_mask,
            )
        except EmptyAlphaError as error:
            raise EmptyAlphaError(
                f"{error} ({self._why_empty(raw.alpha)}; sample {index} of source "
                f"'{self.source.name}')"
            ) from None
        except Exception as error:
            error.add_note(f"while loading sample {index} of source '{self.source.name}'")
            raise
        height, width = sample.alpha.shape
        points = torch.from_numpy(prompts.points)
        labels = torch.from_numpy(prompts.labels)
        point_map, box_map = prompt_rasters(prompts, self.prompts.config, (height, width))
        alpha = torch.from_numpy(sample.alpha)[None]
        seg_mask = (
            torch.from_numpy(sample.seg_mask > 0)[None]
            if sample.seg_mask is not None
            else alpha > 0.5
        )
        item = {
            "image": _chw(sample.image),
            "alpha": alpha,
            "trimap": torch.from_numpy(prompts.trimap)[None].float().div_(255).round_(decimals=1),
            "points": points,
            "point_labels": labels,
            "point_map": point_map,
            "box": torch.from_numpy(prompts.box),
            "box_map": box_map,
            "coarse_mask": torch.from_numpy(prompts.coarse_mask)[None].float(),
            "seg_mask": seg_mask.float(),
            "is_transparent": torch.tensor(raw.is_transparent),
            "original_size": torch.tensor(raw.size),
            "content_size": torch.tensor(sample.content_size),
            "text": raw.text,
            "sample_id": raw.sample_id,
            "source": raw.source or self.source.name,
            "prompt_kind": raw.prompt_kind,
        }
        item["fg"] = _chw(sample.fg) if sample.fg is not None else None
        item["bg"] = _chw(sample.bg) if sample.bg is not None else None
        if self.keep_original:
            item["original_alpha"] = torch.from_numpy(raw.alpha)[None]
            item["original_trimap"] = _original_trimap(raw.trimap, item["trimap"], raw.size)
        return item


def prompt_rasters(
    prompts: Prompts, config: PromptConfig, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The point map and the box map (each 1 x H x W) by the config's conventions
    (``point_map``, ``box_map``: mattekit's or SDMatte's release's)."""
    points, labels = torch.from_numpy(prompts.points), torch.from_numpy(prompts.labels)
    sigma = config.point_sigma * max(size)
    if config.point_map == "filtered":
        clicks = prompts.points[prompts.labels == 1]
        point_map = torch.from_numpy(filtered_click_map(clicks, size, sigma))[None]
    else:
        point_map = gaussian_point_map(points[None], labels[None], size, sigma)[0]
    if config.box_map == "exclusive":
        box_map = torch.from_numpy(exclusive_box_map(prompts.box, size))[None]
    else:
        box_map = box_mask(torch.from_numpy(prompts.box)[None], size)[0]
    return point_map, box_map


def _original_trimap(stored: np.ndarray | None, sampled: torch.Tensor, size) -> torch.Tensor:
    """1 x H x W trimap in {0, 0.5, 1} at the stored size: the source's, else the sampled one."""
    if stored is not None:
        return torch.from_numpy(stored)[None].float().div_(255).round_(decimals=1)
    return F.interpolate(sampled[None], size=tuple(size), mode="nearest")[0]
