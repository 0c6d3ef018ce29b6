"""A trained mattekit family as a benchmark method: its checkpoint (weights-only, registered
classes only), at its own input convention, prompted with the stored prompts."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from mattekit.checkpoint_config import checkpoint_entry, run_folder_of
from mattekit.data.dataset import MattingDataset
from mattekit.data.prompts import PromptConfig, PromptSampler
from mattekit.data.sample import collate_samples
from mattekit.data.transforms import MattingTransform
from mattekit.errors import UsageError
from mattekit.models.base import MattingModule
from mattekit.models.evaluation import alpha_at_original_size
from mattekit.pipelines.benchmark.measure import PeakMemory, WarmTimer
from mattekit.pipelines.benchmark.methods import BenchmarkMethod, Prediction
from mattekit.pipelines.benchmark.prompt_store import StoredPromptSource
from mattekit.pipelines.benchmark.spec import MethodSpec


def run_data_settings(spec: MethodSpec) -> tuple[int | None, str | None]:
    """``(side, resize)`` the checkpoint's run evaluated with: ``data.eval_image_size``, else
    ``data.image_size``, and ``data.resize``, from its ``config.yaml`` (``spec.config``, else
    ``<run>/config.yaml`` beside ``<run>/checkpoints/``); ``(None, None)`` without one."""
    checkpoint = Path(spec.checkpoint)
    path = Path(spec.config) if spec.config else run_folder_of(checkpoint) / "config.yaml"
    if not path.is_file():
        if spec.config:
            raise FileNotFoundError(f"method {spec.name!r}: config not found: {path}")
        return None, None
    data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {}
    size = data.get("eval_image_size") or data.get("image_size")
    if isinstance(size, list):
        if size[0] != size[1]:
            raise ValueError(f"{path}: the benchmark runs models on square inputs, got {size}")
        size = size[0]
    return size, data.get("resize")


class ModelMethod(BenchmarkMethod):
    """The input: the method's ``image_size`` / ``resize``, else the family's own convention
    (:attr:`~mattekit.models.base.MattingModule.input_convention`: ZIM letterboxes at its
    encoder's side, as SAM), else the run's data settings (:func:`run_data_settings`)."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        path = Path(spec.checkpoint)
        entry = checkpoint_entry(path)
        self.model: MattingModule = entry.cls.load_from_checkpoint(path, map_location="cpu")
        self.model.eval().to(spec.device)
        own_side, own_resize = self.model.input_convention
        run_side, run_resize = run_data_settings(spec)
        self.side = spec.image_size or own_side or run_side
        if self.side is None:
            raise UsageError(
                f"method {spec.name!r}: no input size: give image_size, or the run's config"
            )
        self.resize = spec.resize or own_resize or run_resize or "stretch"

    def refusal(self, kind: str) -> str | None:
        try:
            self.model.evaluate_with(kind)
        except ValueError as error:
            return str(error)
        return None

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def input_description(self) -> str:
        return f"{self.side} px {self.resize}"

    def predictions(self, source, store, kind, indices):
        self.model.evaluate_with(kind)
        dataset = MattingDataset(
            StoredPromptSource(source, store),
            MattingTransform((self.side, self.side), train=False, resize=self.resize),
            PromptSampler(PromptConfig()),  # keeps the source's (stored) prompts
            train=False,
            seed=store.protocol.seed,
        )
        device = torch.device(self.spec.device)

        def predict(batch):
            batch = self.model.transform_batch(batch, "test")
            return alpha_at_original_size(self.model(batch), batch)[0][0]

        memory = PeakMemory(device).start()
        timer = WarmTimer(device)
        try:
            with torch.inference_mode():
                for index in indices:
                    batch = collate_samples([dataset[index]]).to(device)
                    alpha, seconds = timer(lambda: predict(batch))  # noqa: B023
                    alpha = alpha.float().cpu().numpy()
                    peak = memory.peak_bytes
                    yield Prediction(index, batch.sample_id[0], alpha, seconds, peak)
        finally:
            memory.stop()
