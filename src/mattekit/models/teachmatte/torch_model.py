"""TeachDiffusionMatting's networks: the soft-grounding UNets (teacher and student) and the full
matting network (student + detail decoder + optional sparse refiner).

Parts are injected (segment-anything's style): a diffusers UNet whose latent output conv is
replaced by a :class:`~mattekit.models.teachmatte.heads.SoftGroundingHead`, an AutoencoderKL
(its encoder only), an open_clip text encoder and the text adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import Tensor, nn

from mattekit.models.teachmatte.attention import AttentionRecorder, check_kernels, set_attention
from mattekit.models.teachmatte.configs import (
    autoencoder_config,
    text_config,
    unet_config,
)
from mattekit.models.teachmatte.decoder import DetailDecoder
from mattekit.models.teachmatte.heads import SoftGroundingHead
from mattekit.models.teachmatte.refiner import SparseRefiner
from mattekit.models.teachmatte.text_encoder import OpenCLIPTextEncoder, TextAdapter
from mattekit.nn.narrow_conv import guard_narrow_strided_convs
from mattekit.nn.token_grid import level_grid
from mattekit.nn.unet_features import captured_outputs, captured_stage_features, unet_stages
from mattekit.nn.unet_pruning import prune_unet, pruned_config

#: Teacher outputs: background, foreground, transparent logits. Student: alpha, R logits.
TEACHER_OUTPUTS, STUDENT_OUTPUTS = 3, 2
#: The paper's student: self-attention removed at 64 x 64, sparse (k = 2) at 32 and 16.
DEFAULT_KERNELS = (-1, 2, 2)


@dataclass
class GroundingOutput:
    """What one soft-grounding forward gives.

    Attributes:
        logits: B x K x H/8 x W/8 (teacher: 3 region classes; student: alpha and R logits).
        stages: B x C x h x w outputs of each UNet stage (down, mid, up), for the decoder.
        taps: B x C x h x w output of each module named in ``forward``'s ``taps`` (L_SG's).
    """

    logits: Tensor
    stages: list[Tensor]
    taps: dict[str, Tensor] = field(default_factory=dict)


class SoftGroundingNet(nn.Module):
    """Image + text -> per-cell logits at H/8 in one UNet step.

    Args:
        unet: a diffusers UNet with 4 latent channels; its ``conv_out`` is replaced by ``head``.
        vae: AutoencoderKL; the image latent is its posterior mean (the release's "VAE mode").
        text_encoder: frozen token features (B x T x D).
        adapter: trainable text adapter (B x T x D -> same).
        head: the new output head (320 -> K at SD size).
        timestep: the fixed timestep of the single step.
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: OpenCLIPTextEncoder,
        adapter: TextAdapter,
        head: nn.Module,
        timestep: int = 0,
    ) -> None:
        super().__init__()
        unet.conv_out = head
        self.unet, self.vae = unet, vae
        self.text_encoder, self.adapter = text_encoder, adapter
        self.timestep = timestep

    def encode_image(self, image: Tensor) -> Tensor:
        """B x 3 x H x W in [0, 1] -> B x 4 x H/8 x W/8 scaled latent (posterior mean)."""
        latent = self.vae.encode(image * 2 - 1).latent_dist.mean
        return latent * self.vae.config.scaling_factor

    def encode_text(self, token_ids: Tensor) -> Tensor:
        """B x T ids -> B x T x D adapted text context."""
        return self.adapter(self.text_encoder(token_ids))

    def forward(
        self,
        image: Tensor,
        token_ids: Tensor,
        recorder: AttentionRecorder | None = None,
        taps: Sequence[str] = (),
    ) -> GroundingOutput:
        """Args: image B x 3 x H x W in [0, 1] (sides divisible by 8); token_ids B x T;
        recorder: collects the attention quantities of the transparency-mining losses; taps:
        names of UNet modules (each run once per forward) whose outputs to return."""
        if image.shape[-2] % 8 or image.shape[-1] % 8:
            raise ValueError(f"sides must be divisible by 8, got {tuple(image.shape[-2:])}")
        latent = self.encode_image(image)
        context = self.encode_text(token_ids)
        timestep = torch.full((len(image),), self.timestep, device=image.device)
        kwargs = {"latent_size": tuple(latent.shape[-2:]), "recorder": recorder}
        tapped = [self.unet.get_submodule(name) for name in taps]
        with captured_stage_features(self.unet) as stages, captured_outputs(tapped) as outputs:
            logits = self.unet(latent, timestep, context, cross_attention_kwargs=kwargs).sample
        grids = [on_grid(out, kwargs["latent_size"]) for out in outputs]
        return GroundingOutput(logits, list(stages), dict(zip(taps, grids, strict=True)))


def on_grid(features: Tensor, latent_size: tuple[int, int]) -> Tensor:
    """B x C x h x w as is; B x L x C tokens (a linear ``proj_out``'s) on their level's grid, as
    diffusers' Transformer2DModel reshapes them."""
    if features.ndim == 4:
        return features
    height, width = level_grid(latent_size, features.shape[1])
    return features.unflatten(1, (height, width)).permute(0, 3, 1, 2)


class TeachMatteNet(nn.Module):
    """The full model: student soft grounding, then the detail decoder (and refiner).

    Args:
        student: a :class:`SoftGroundingNet` with the student's 2-output head.
        decoder: the detail encoder-decoder.
        refiner: the sparse upsampling module, or None.
    """

    def __init__(
        self,
        student: SoftGroundingNet,
        decoder: DetailDecoder | None,
        refiner: SparseRefiner | None = None,
    ) -> None:
        super().__init__()
        self.student, self.decoder, self.refiner = student, decoder, refiner

    def coarse(self, image: Tensor, token_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(alpha_lr, R logits, student features)`` at H/8."""
        out = self.student(image, token_ids)
        return torch.sigmoid(out.logits[:, :1]), out.logits[:, 1:2], out.stages[-1]

    def forward(self, image: Tensor, token_ids: Tensor) -> dict[str, Tensor]:
        """Args: image B x 3 x H x W in [0, 1]; token_ids B x T.

        Without a refiner, student and decoder see the image itself. With one, they see it
        downsampled by ``2^groups`` (the paper's 512 px for a 2048 px input) and the refiner
        brings their alpha back to H x W, using the image at each size.

        Returns:
            ``alpha`` B x 1 x H x W; ``alpha_lr`` and ``transparency_logits`` at the student's
            H/8 grid (of the downsampled image with a refiner).
        """
        base = image
        if self.refiner is not None:
            factor = 2 ** len(self.refiner.groups)
            size = (image.shape[-2] // factor, image.shape[-1] // factor)
            base = F.interpolate(image, size=size, mode="bilinear", antialias=True)
        alpha_lr, r_logits, features = self.coarse(base, token_ids)
        out = {"alpha_lr": alpha_lr, "transparency_logits": r_logits}
        size = base.shape[-2:]
        up_alpha = F.interpolate(alpha_lr, size=size, mode="bilinear", align_corners=False)
        if self.decoder is None:
            return {**out, "alpha": up_alpha}
        up_r = F.interpolate(r_logits, size=size, mode="bilinear", align_corners=False)
        alpha, context = self.decoder(base, up_alpha, torch.sigmoid(up_r), features)
        if self.refiner is not None:
            alpha = self.refiner(image, alpha, context)
        return {**out, "alpha": alpha}


def build_unet(variant: str) -> UNet2DConditionModel:
    """A randomly initialised Stable Diffusion UNet of the variant."""
    return UNet2DConditionModel.from_config(unet_config(variant))


def build_grounding(
    unet: UNet2DConditionModel,
    outputs: int,
    variant: str,
    vae: AutoencoderKL | None = None,
    text_encoder: OpenCLIPTextEncoder | None = None,
    adapter: TextAdapter | None = None,
    kernels: tuple[int, ...] = (),
) -> SoftGroundingNet:
    """A :class:`SoftGroundingNet` on ``unet`` with a new ``outputs``-way head; missing parts are
    built randomly at the variant's size; ``kernels`` (:func:`set_attention`) shape its
    self-attention (dense everywhere when empty)."""
    check_kernels(kernels)
    set_attention(unet, kernels)
    guard_narrow_strided_convs(unet)  # exact bf16 weight gradients on 1-wide latents (tests)
    text_encoder = text_encoder or OpenCLIPTextEncoder(text_config(variant))
    return SoftGroundingNet(
        unet,
        vae or AutoencoderKL(**autoencoder_config(variant)),
        text_encoder,
        adapter or TextAdapter(text_encoder.width),
        SoftGroundingHead(unet.config.block_out_channels[0], outputs),
    )


def student_unet(
    teacher_unet: UNet2DConditionModel | None, variant: str, prune: bool
) -> UNet2DConditionModel:
    """The student's UNet: BK-SDM-Tiny pruned from ``teacher_unet`` (kept blocks copied) with
    ``prune``, else a copy of it; random at the student's size without a teacher. The teacher's
    output head is not part of it (the student gets its own)."""
    if teacher_unet is None:
        config = (
            pruned_config(unet_config(variant), 1, tiny=True) if prune else unet_config(variant)
        )
        return UNet2DConditionModel.from_config(config)
    source = _plain_unet(teacher_unet)
    return prune_unet(source, layers_per_block=1, tiny=True) if prune else source


def _plain_unet(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """A standalone copy of a grounding UNet as a diffusers UNet: its blocks and weights with
    SD's ``conv_out`` back, default attention (processor weights, such as a sparse kernel's
    convolution, are not carried)."""
    copy = UNet2DConditionModel.from_config(unet.config)
    state = {k: v for k, v in unet.state_dict().items() if ".processor." not in k}
    state = {k: v for k, v in state.items() if not k.startswith("conv_out.")}
    own = copy.state_dict()
    state.update({k: v for k, v in own.items() if k.startswith("conv_out.")})
    copy.load_state_dict(state, strict=True)
    return copy


def matched_stages(teacher: nn.Module, student: nn.Module) -> list[tuple[int, int]]:
    """Pairs ``(student stage, teacher stage)`` of UNet stages whose outputs have the same
    resolution role, for L_SG: down stage i with down stage i while both downsample, and student
    up stage i with the teacher's up stage of the same index from the end."""
    s_down, t_down = len(student.down_blocks), len(teacher.down_blocks)
    s_mid = int(getattr(student, "mid_block", None) is not None)
    t_mid = int(getattr(teacher, "mid_block", None) is not None)
    pairs = []
    for i in range(s_down):
        has_down = student.down_blocks[i].downsamplers is not None
        if has_down and teacher.down_blocks[i].downsamplers is not None:
            pairs.append((i, i))
    if s_mid and t_mid:
        pairs.append((s_down, t_down))
    s_up, t_up = len(student.up_blocks), len(teacher.up_blocks)
    for i in range(s_up):
        pairs.append((s_down + s_mid + i, t_down + t_mid + t_up - s_up + i))
    return pairs


#: L_SG's forms: ``sum`` follows eq. 3 and BK-SDM; ``masked_mean`` is mattekit's earlier one.
SGForm = Literal["sum", "masked_mean"]


def sg_pairs(teacher: nn.Module, student: nn.Module, form: SGForm = "sum") -> list[tuple[str, str]]:
    """``(student module, teacher module)`` names whose outputs L_SG compares, in execution order.

    ``masked_mean``: the stage pairs of :func:`matched_stages`. ``sum`` adds BK-SDM-Tiny's
    encoder pair: where the teacher's down stage downsamples and the student's (its innermost)
    does not, the last attention's ``proj_out`` of each, before the teacher's downsampler
    (``down_blocks.2.attentions.{0 student, 1 teacher}`` at 16 x 16: 6 pairs).
    """
    s_names, t_names = _stage_names(student), _stage_names(teacher)
    pairs = [(s_names[s], t_names[t]) for s, t in matched_stages(teacher, student)]
    if form == "masked_mean":
        return pairs
    for i, (ours, theirs) in enumerate(zip(student.down_blocks, teacher.down_blocks, strict=False)):
        inner = ours.downsamplers is None and theirs.downsamplers is not None
        if inner and getattr(ours, "attentions", None) and getattr(theirs, "attentions", None):
            tap = (
                f"down_blocks.{i}.attentions.{len(ours.attentions) - 1}.proj_out",
                f"down_blocks.{i}.attentions.{len(theirs.attentions) - 1}.proj_out",
            )
            pairs.insert(sum(1 for s, _ in pairs if s.startswith("down_blocks.")), tap)
    return pairs


def _stage_names(unet: nn.Module) -> list[str]:
    """Module names of :func:`unet_stages`, in its order."""
    mid = ["mid_block"] if getattr(unet, "mid_block", None) is not None else []
    downs = [f"down_blocks.{i}" for i in range(len(unet.down_blocks))]
    return [*downs, *mid, *(f"up_blocks.{i}" for i in range(len(unet.up_blocks)))]


def tap_width(unet: nn.Module, name: str) -> int:
    """Output channels of the module ``name`` of ``unet``: a stage or an attention's
    ``proj_out`` (linear or 1 x 1 convolution)."""
    module = unet.get_submodule(name)
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    return module.resnets[-1].out_channels


def stage_widths(unet: nn.Module) -> list[int]:
    """Output channels of each UNet stage, in :func:`unet_stages` order."""
    widths = []
    for stage in unet_stages(unet):
        last = (getattr(stage, "resnets", None) or [None])[-1]
        widths.append(last.out_channels)
    return widths
