"""ViTMatte's network: transformers' ``VitMatteForImageMatting`` behind image + trimap tensors.

ViTMatte (Yao et al., Information Fusion 2024) feeds the normalised RGB image and the trimap as
one B x 4 x H x W input to a plain ViT (ViTDet: window attention with relative positions in most
blocks, global attention plus a convolutional residual block in every third), and fuses the
ViT's stride-16 features with a conv stream of the input at strides 2, 4 and 8 in a light
"detail capture" decoder that ends in a sigmoid. transformers builds that network from a
:class:`~transformers.VitMatteConfig`; :data:`VARIANTS` gives the release's two sizes and a tiny
one, and :class:`ViTMatteNet` adds the release's input handling (normalise, concatenate the
trimap, pad to a multiple of 32, crop the alpha back).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn
from transformers import VitDetConfig, VitMatteConfig, VitMatteForImageMatting

# The release pads the normalised input (with zeros) to a multiple of 32 at the bottom and
# right, and crops the alpha back (hustvl/ViTMatte ``modeling/meta_arch/vitmatte.py``; the
# transformers processor's ``size_divisor`` is also 32).
SIZE_DIVISOR = 32


@dataclass(frozen=True)
class ViTMatteVariant:
    """One size of ViTMatte (the release's ``configs/common/model.py``).

    Attributes:
        hidden_size: ViT width (384 ViT-S, 768 ViT-B).
        num_heads: attention heads.
        depth: transformer blocks.
        global_blocks: blocks with global attention and a residual conv block after them; the
            others attend within ``window_size`` x ``window_size`` token windows.
        window_size: window side in tokens.
        image_size: training crop side; sets the global blocks' relative position tables
            (``2 * image_size / 16 - 1`` entries, interpolated at other sizes).
        pretrain_image_size: the absolute position embedding's grid (the ViT's pre-training
            size; interpolated to every input's grid).
        convstream: detail conv-stream widths at strides 2, 4 and 8.
        fusion: fusion-block widths at strides 8, 4, 2 and 1.
    """

    hidden_size: int
    num_heads: int
    depth: int = 12
    global_blocks: tuple[int, ...] = (2, 5, 8, 11)
    window_size: int = 14
    image_size: int = 512
    pretrain_image_size: int = 224
    convstream: tuple[int, ...] = (48, 96, 192)
    fusion: tuple[int, ...] = (256, 128, 64, 32)

    def config(self) -> VitMatteConfig:
        """The transformers configuration of this size (4 input channels, patch 16)."""
        backbone = VitDetConfig(
            num_channels=4,
            image_size=self.image_size,
            pretrain_image_size=self.pretrain_image_size,
            patch_size=16,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.depth,
            num_attention_heads=self.num_heads,
            use_absolute_position_embeddings=True,
            use_relative_position_embeddings=True,
            window_size=self.window_size,
            window_block_indices=[i for i in range(self.depth) if i not in self.global_blocks],
            residual_block_indices=list(self.global_blocks),
            out_features=[f"stage{self.depth}"],
        )
        # Lists, not tuples: transformers 5.x's default tuple fails in ``[hidden] + fusion``.
        return VitMatteConfig(
            backbone_config=backbone,
            hidden_size=self.hidden_size,
            convstream_hidden_sizes=list(self.convstream),
            fusion_hidden_sizes=list(self.fusion),
        )


VARIANTS: dict[str, ViTMatteVariant] = {
    # hustvl/vitmatte-small-composition-1k (DINO ViT-S/16 backbone), 25.8 M parameters.
    "vit_s": ViTMatteVariant(hidden_size=384, num_heads=6),
    # hustvl/vitmatte-base-composition-1k (MAE ViT-B/16 backbone), 96.7 M parameters.
    "vit_b": ViTMatteVariant(hidden_size=768, num_heads=12),
    # Tests and CPU runs: two blocks (one windowed, one global), 32 px inputs work.
    "tiny": ViTMatteVariant(
        hidden_size=64,
        num_heads=2,
        depth=2,
        global_blocks=(1,),
        window_size=2,
        image_size=64,
        pretrain_image_size=64,
        convstream=(8, 16, 16),
        fusion=(32, 16, 16, 8),
    ),
}


class ViTMatteNet(nn.Module):
    """ViTMatte on mattekit's tensors: image and trimap in, alpha out, at any size.

    The image is normalised with ImageNet's mean and std, as the release trains and evaluates
    (its ``pixel_mean`` / ``pixel_std``; transformers' ``VitMatteImageProcessor`` uses 0.5 /
    0.5 instead), the trimap joins as the 4th channel, the input is zero-padded at the bottom
    and right to a multiple of :data:`SIZE_DIVISOR` and the alpha cropped back.

    Args:
        variant: a key of :data:`VARIANTS`.

    Attributes:
        vitmatte: the transformers network; its state dict has transformers' key names
            (``backbone.*``, ``decoder.*``), so a ``save_pretrained`` folder loads into it.
    """

    def __init__(self, variant: str = "vit_b") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.vitmatte = VitMatteForImageMatting(VARIANTS[variant].config())
        # transformers draws every decoder weight from N(0, 0.02), batch-norm scales included,
        # which starts the decoder's output near 0 everywhere; the release builds it with
        # PyTorch's default initialisation (batch-norm scale 1), restored here.
        for module in self.vitmatte.decoder.modules():
            if module is not self.vitmatte.decoder and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
        # Constants, not weights: left out of the state dict (as in the release).
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def no_weight_decay(self) -> set[str]:
        """Names AdamW must not decay beyond mattekit's rule (timm's hook, read by
        :func:`~mattekit.models.optimization.no_weight_decay_names`): the absolute position
        embedding, which the release exempts as ``pos_embed`` and transformers renames."""
        return {"vitmatte.backbone.embeddings.position_embeddings"}

    def forward(self, image: Tensor, trimap: Tensor) -> Tensor:
        """Predict the alpha.

        Args:
            image: B x 3 x H x W RGB in [0, 1].
            trimap: B x 1 x H x W in {0, 0.5, 1} (background, unknown, foreground).

        Returns:
            B x 1 x H x W alpha in [0, 1].
        """
        height, width = image.shape[-2:]
        x = torch.cat([(image - self.mean) / self.std, trimap.to(image.dtype)], dim=1)
        x = F.pad(x, (0, -width % SIZE_DIVISOR, 0, -height % SIZE_DIVISOR))
        alpha = self.vitmatte(pixel_values=x, return_dict=True).alphas
        return alpha[..., :height, :width]


def build_vitmatte(variant: str = "vit_b") -> ViTMatteNet:
    """A randomly initialised :class:`ViTMatteNet` of ``variant`` (see :data:`VARIANTS`)."""
    return ViTMatteNet(variant)
