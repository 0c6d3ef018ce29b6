"""The baseline family: :class:`PromptUNet` trained with L1 + Laplacian losses."""

from __future__ import annotations

from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import L1Loss, LaplacianLoss
from mattekit.models.base import MattingModule
from mattekit.models.baseline.torch_model import PromptUNet
from mattekit.models.prompting import check_prompt_kinds, choose_prompt_kinds, prompt_maps


class Baseline(MattingModule):
    """A small prompt-conditioned U-Net (points, box or coarse mask; text is ignored).

    Args:
        base_channels: U-Net width at full resolution.
        depth: U-Net downsamplings.
        prompt_kinds: prompt kinds drawn per sample in training.
        eval_prompt: the prompt kind used in validation, test and predict.
        laplacian_weight: weight of the Laplacian loss beside L1.
        **kwargs: :class:`MattingModule` arguments (optimiser, schedule, metrics, ...).
    """

    def __init__(
        self,
        base_channels: int = 32,
        depth: int = 4,
        prompt_kinds: list[str] | None = None,
        eval_prompt: str = "box",
        laplacian_weight: float = 1.0,
        lr: float = 1e-3,
        **kwargs,
    ) -> None:
        self.prompt_kinds = prompt_kinds or ["points", "box", "mask"]
        check_prompt_kinds(self.prompt_kinds, eval_prompt)
        super().__init__(lr=lr, **kwargs)

    def configure_models(self) -> None:
        self.model = PromptUNet(3, self.hparams.base_channels, self.hparams.depth)

    def configure_losses(self) -> None:
        self.losses["l1"] = L1Loss()
        self.losses["laplacian"] = LaplacianLoss()
        self.loss_weights = {"l1": 1.0, "laplacian": self.hparams.laplacian_weight}

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        kinds = choose_prompt_kinds(
            len(batch), self.prompt_kinds, self.training, self.hparams.eval_prompt
        )
        logits = self.model(batch.image, prompt_maps(batch, kinds))
        return {"alpha": logits.sigmoid(), "logits": logits}
