"""The ViTMatte family: :class:`ViTMatteNet` on image + trimap, with the release's losses."""

from __future__ import annotations

from typing import Literal

import torch
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn

from mattekit.data.convention import InputConvention
from mattekit.data.sample import MattingBatch
from mattekit.losses import GradientLoss, L1Loss, LaplacianLoss
from mattekit.losses.region import unknown_region
from mattekit.metrics.presets import PresetName
from mattekit.models.base import MattingModule
from mattekit.models.loss_terms import LossTerm
from mattekit.models.vitmatte.torch_model import VARIANTS, ViTMatteNet, ViTMatteVariant
from mattekit.models.vitmatte.weights import load_vitmatte_weights

# The release's gradient loss adds 0.01 x |grad pred| in the unknown region to the gradient L1.
GRADIENT_PENALTY = 0.01
# Where the network's ViT parameters live in the family module.
BACKBONE_PREFIX = "model.vitmatte.backbone."


def layer_decay_multipliers(variant: ViTMatteVariant, decay: float) -> dict[str, float]:
    """The release's layer-wise learning-rate decay as ``lr_multipliers`` prefixes.

    hustvl/ViTMatte's ``get_vit_lr_decay_rate``: block ``i`` learns at ``decay ** (depth - i)``
    x lr, the patch and position embeddings at ``decay ** (depth + 1)``, the global blocks'
    residual conv blocks and the decoder at lr. Prefixes match first-first, so each residual
    block is listed before its own transformer block. ``decay == 1``: no prefixes.
    """
    if decay == 1:
        return {}
    depth, layer = variant.depth, f"{BACKBONE_PREFIX}encoder.layer."
    multipliers = {f"{layer}{i}.residual.": 1.0 for i in variant.global_blocks}
    multipliers |= {f"{layer}{i}.": decay ** (depth - i) for i in range(depth)}
    multipliers[f"{BACKBONE_PREFIX}embeddings."] = decay ** (depth + 1)
    return multipliers


class ViTMatte(MattingModule):
    """ViTMatte (Yao et al., Information Fusion 2024): a plain ViT on image + trimap, with a
    conv detail-capture decoder; the trimap-based reference of the seed papers' comparisons.

    Loss terms (``--model.loss_weights``), the release's four (``MattingCriterion``):
    ``l1`` (1.0: the mean L1 over the trimap's unknown band plus the mean over the known
    region, its ``unknown_l1_loss + known_l1_loss``), ``laplacian`` (1.0: the release's
    ``laplacian_loss``, 1/5 of the 2^i-weighted L1 over 5 band-pass levels, no low-pass level,
    over the whole image: ``LaplacianLoss(pyramid="band_pass")``) and ``grad`` (1.0: the
    release's gradient penalty, the un-normalised Sobel gradient L1 in the unknown band plus
    0.01 x the mean gradient magnitude of the prediction there). With ``loss_regions=False``
    the ``l1`` and ``grad`` terms run over the whole image.

    The reference row of its tables is the trimap read as an alpha (the base's trimap floor).

    Args:
        variant: ``"vit_b"`` (ViTMatte-B), ``"vit_s"`` (ViTMatte-S) or ``"tiny"`` (tests, CPU).
        pretrained: local ViTMatte weights to start from: a transformers ``save_pretrained``
            folder, a state dict file, or the release's ``.pth``
            (:func:`~mattekit.models.vitmatte.weights.load_vitmatte_weights`); None: random
            initialisation.
        layer_decay: layer-wise learning-rate decay of the ViT blocks (the release's 0.65;
            1.0: none); it fills ``lr_multipliers`` when those are not given.
        lr: AdamW peak learning rate (the release's 5e-4).
        weight_decay: AdamW weight decay (the release's 0.1).
        metric_preset: the DIM metric definitions (Composition-1K, as in the paper).
        lr_multipliers: given, they replace the layer decay's prefixes.
        **kwargs: :class:`MattingModule` arguments (schedule, metrics, ...).
    """

    accepted_prompts = ("trimap",)
    run_settings = MattingModule.run_settings | {"pretrained", "layer_decay"}

    def __init__(
        self,
        variant: Literal["vit_b", "vit_s", "tiny"] = "vit_b",
        pretrained: str | None = None,
        layer_decay: float = 0.65,
        lr: float = 5e-4,
        weight_decay: float = 0.1,
        metric_preset: PresetName = "dim",
        lr_multipliers: dict[str, float] | None = None,
        **kwargs,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
        if not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must lie in (0, 1], got {layer_decay}")
        if lr_multipliers is None:
            lr_multipliers = layer_decay_multipliers(VARIANTS[variant], layer_decay)
        # Saved as used, so a checkpoint's hyperparameters show the learning rate per block.
        self.derived_hparams = {"lr_multipliers": lr_multipliers}
        super().__init__(
            lr=lr,
            weight_decay=weight_decay,
            metric_preset=metric_preset,
            lr_multipliers=lr_multipliers,
            **kwargs,
        )

    def configure_models(self) -> None:
        self.model = ViTMatteNet(self.hparams.variant)
        weights = self.initial_weights(self.hparams.pretrained)
        if weights is not None:
            load_vitmatte_weights(self.model, weights)

    def checkpointed_blocks(self) -> list[nn.Module]:
        """The ViT's layers (``activation_checkpointing``); the detail capture module has
        BatchNorm."""
        return list(self.model.vitmatte.backbone.encoder.layer)

    def configure_losses(self) -> dict[str, LossTerm]:
        return {
            "l1": LossTerm(L1Loss()),
            "laplacian": LossTerm(LaplacianLoss(levels=5, pyramid="band_pass")),
            # the release's Sobel: raw, through a zero-padded convolution
            "grad": LossTerm(GradientLoss(normalized=False, padding="zeros")),
        }

    @property
    def input_convention(self) -> InputConvention:
        """No side of its own, letterboxed (aspect ratio kept), ImageNet-normalised.

        The release evaluates every image at its own size (padded to 32 inside the network,
        which :class:`ViTMatteNet` does at any size); a ``(side, resize)`` pair can only name a
        square input, so the run's side is used and the image letterboxed into it (the trimap
        padded as background), the nearest this contract has to no resize at all.
        """
        return InputConvention(None, "letterbox", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)

    def forward(self, batch: MattingBatch) -> dict[str, Tensor]:
        """``{"alpha": B x 1 x H x W}`` from ``batch.image`` and ``batch.trimap`` only."""
        return {"alpha": self.model(batch.image, batch.trimap)}

    def loss_terms(self, outputs: dict[str, Tensor], batch: MattingBatch) -> dict[str, Tensor]:
        """The release's terms over its regions (class docstring); raw values by name."""
        alpha, target = outputs["alpha"], batch.alpha
        trimap = batch.trimap if self.hparams.loss_regions else None
        unknown = unknown_region(trimap) if trimap is not None else None
        terms = {}
        for name, loss in self.active_losses():
            if name == "l1":
                terms[name] = loss(alpha, target, trimap)
            elif name == "laplacian":
                terms[name] = loss(alpha, target)
            else:
                # The penalty is the same gradient L1 against a flat target (gradient 0).
                flat = torch.zeros_like(target)
                terms[name] = loss.in_region(alpha, target, unknown) + GRADIENT_PENALTY * (
                    loss.in_region(alpha, flat, unknown)
                )
        return terms
