"""The baseline family: :class:`PromptUNet` trained with L1 + Laplacian losses."""

from __future__ import annotations

from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import L1Loss, LaplacianLoss
from mattekit.models.base import MattingModule
from mattekit.models.baseline.torch_model import PromptUNet
from mattekit.models.loss_terms import LossTerm
from mattekit.models.prompting import prompt_maps, random_prompt_kinds


class Baseline(MattingModule):
    """A small prompt-conditioned U-Net (points, box or coarse mask; text is ignored).

    Loss terms (``--model.loss_weights``): ``l1`` (1.0) and ``laplacian`` (1.0).

    Args:
        base_channels: U-Net width at full resolution.
        depth: U-Net downsamplings.
        prompt_kinds: prompt kinds drawn per sample in training.
        eval_prompt: the prompt kind used in validation, test and predict.
        **kwargs: :class:`MattingModule` arguments (optimiser, schedule, metrics, ...).
    """

    accepted_prompts = ("points", "box", "mask")
    run_settings = MattingModule.run_settings | {"prompt_kinds", "eval_prompt"}

    def __init__(
        self,
        base_channels: int = 32,
        depth: int = 4,
        prompt_kinds: list[str] | None = None,
        eval_prompt: str = "box",
        lr: float = 1e-3,
        **kwargs,
    ) -> None:
        self.prompt_kinds = prompt_kinds or list(self.accepted_prompts)
        self.check_prompts(self.prompt_kinds, eval_prompt)
        super().__init__(lr=lr, **kwargs)

    def configure_models(self) -> None:
        self.model = PromptUNet(3, self.hparams.base_channels, self.hparams.depth)

    def configure_losses(self) -> dict[str, LossTerm]:
        return {"l1": LossTerm(L1Loss()), "laplacian": LossTerm(LaplacianLoss())}

    def predict_alpha(self, batch: MattingBatch, kinds: list[str]) -> dict[str, Tensor]:
        logits = self.model(batch.image, prompt_maps(batch, kinds))
        return {"alpha": logits.sigmoid(), "alpha_logits": logits}

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        return self.predict_alpha(batch, [self.hparams.eval_prompt] * len(batch))

    def training_outputs(self, batch: MattingBatch) -> dict[str, Tensor]:
        return self.predict_alpha(batch, random_prompt_kinds(len(batch), self.prompt_kinds))
