"""The baseline family: :class:`PromptUNet` trained with L1 + Laplacian losses."""

from __future__ import annotations

from torch import Tensor

from mattekit.data.sample import MattingBatch
from mattekit.losses import L1Loss, LaplacianLoss
from mattekit.models.base import MattingModule
from mattekit.models.baseline.torch_model import PromptUNet
from mattekit.models.loss_terms import LossTerm
from mattekit.prompts import prompt_maps


class Baseline(MattingModule):
    """A small prompt-conditioned U-Net (points, box or coarse mask; text is ignored). With
    ``none`` its prompt channels are zero: automatic matting, the prompt-free reference.

    Loss terms (``--model.loss_weights``): ``l1`` (1.0) and ``laplacian`` (1.0).

    Args:
        base_channels: U-Net width at full resolution.
        depth: U-Net downsamplings.
        **kwargs: :class:`MattingModule` arguments (optimiser, schedule, metrics, ...).
    """

    accepted_prompts = ("points", "box", "mask", "none")
    default_eval_prompt = "box"

    def __init__(
        self,
        base_channels: int = 32,
        depth: int = 4,
        lr: float = 1e-3,
        **kwargs,
    ) -> None:
        super().__init__(lr=lr, **kwargs)

    def configure_models(self) -> None:
        self.model = PromptUNet(3, self.hparams.base_channels, self.hparams.depth)

    def configure_losses(self) -> dict[str, LossTerm]:
        return {"l1": LossTerm(L1Loss()), "laplacian": LossTerm(LaplacianLoss())}

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """Each sample prompted by its ``batch.prompt_kind`` (:meth:`kinds_of`)."""
        logits = self.model(batch.image, prompt_maps(batch, self.kinds_of(batch)))
        return {"alpha": logits.sigmoid(), "alpha_logits": logits}
