"""A trained mattekit family as a benchmark method: its checkpoint (weights-only, registered
classes only), at its own input convention, prompted with the stored prompts."""

from __future__ import annotations

import torch

from mattekit.data.sample import collate_samples
from mattekit.errors import UsageError
from mattekit.inference.checkpoint_model import CheckpointModel
from mattekit.pipelines.benchmark.measure import PeakMemory, WarmTimer
from mattekit.pipelines.benchmark.methods import BenchmarkMethod, Prediction
from mattekit.pipelines.benchmark.prompt_store import StoredPromptSource
from mattekit.pipelines.benchmark.spec import MethodSpec
from mattekit.prompts import with_kind


class ModelMethod(BenchmarkMethod):
    """The input follows :class:`~mattekit.inference.checkpoint_model.CheckpointModel`: the
    method's ``image_size`` / ``resize``, else the family's convention, else the run's."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        try:
            self.runner = CheckpointModel(
                spec.checkpoint, spec.device, spec.image_size, spec.resize, spec.config
            )
        except (UsageError, FileNotFoundError) as error:
            raise type(error)(f"method {spec.name!r}: {error}") from error
        self.model = self.runner.model

    def refusal(self, kind: str) -> str | None:
        try:
            self.model.check_kind(kind)
        except ValueError as error:
            return str(error)
        return None

    @property
    def parameters(self) -> int:
        return self.runner.parameters

    @property
    def input_description(self) -> str:
        return f"{self.runner.side} px {self.runner.resize}"

    def predictions(self, source, store, kind, indices):
        dataset = self.runner.dataset(StoredPromptSource(source, store), store.protocol.seed)
        device = torch.device(self.spec.device)
        memory = PeakMemory(device).start()
        timer = WarmTimer(device)
        try:
            with torch.inference_mode():
                for index in indices:
                    batch = with_kind(collate_samples([dataset[index]]).to(device), kind)
                    alpha, seconds = timer(lambda: self.runner.alpha(batch))  # noqa: B023
                    peak = memory.peak_bytes
                    yield Prediction(index, batch.sample_id[0], alpha, seconds, peak)
        finally:
            memory.stop()
