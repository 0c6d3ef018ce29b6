"""SDMatte's network: a Stable Diffusion 2 UNet grafted for prompted matting in one step.

``SDMatteNet(unet, vae, text_context, ...)`` receives its parts (a diffusers UNet already widened
to 8 input channels, an ``AutoencoderKL`` or ``AutoencoderTiny``, the empty caption's text
embedding) and adds SDMatte's modules; :func:`graft` turns a Stable Diffusion UNet into one,
:func:`build_sdmatte` builds a randomly initialised network of a registered size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from torch import Tensor, nn

from mattekit.models.sdmatte.attention import PromptKeyBias, SDMatteAttnProcessor
from mattekit.models.sdmatte.configs import (
    LATENT_CHANNELS,
    POINT_DIMS,
    sd_unet_config,
    vae_config,
)
from mattekit.models.sdmatte.embeddings import CoordinateEmbedding
from mattekit.models.sdmatte.text_context import TEXT_TOKENS, placeholder_context
from mattekit.nn.unet_pruning import prune_unet

BLOCK_GROUPS = ("down", "mid", "up")
#: The paper's best: visual-prompt tokens in the mid block's cross-attention only.
DEFAULT_VISUAL_PROMPT_BLOCKS = ("mid",)


def _check_blocks(name: str, blocks: Sequence[str]) -> tuple[str, ...]:
    unknown = [b for b in blocks if b not in BLOCK_GROUPS]
    if unknown:
        raise ValueError(f"{name}: blocks must be among {BLOCK_GROUPS}, got {list(blocks)}")
    return tuple(blocks)


def block_group(processor_name: str) -> str:
    """``down`` / ``mid`` / ``up`` of a UNet attention processor's name."""
    return processor_name.split("_", 1)[0].split(".", 1)[0]


@dataclass
class SDMattePrompt:
    """Each sample's prompt, as :class:`SDMatteNet` reads it (B samples, H x W input).

    Attributes:
        prompt_map: B x 1 x H x W in [0, 1]: the Gaussian click map, the filled box or the mask.
        boxes: B x 4 ``(x0, y0, x1, y1)`` pixels: the box, or the mask's bounding box.
        points: B x N x 2 pixel clicks; ``point_labels`` B x N (1 positive, others unused).
        use_points: B bool: the coordinate embedding reads the clicks, not the box.
        transparent: B: 1 for a transparent object (the opacity flag), else 0.
        text_context: B x T x D context of the blocks without visual prompts (each sample's
            referring expression, :mod:`~mattekit.models.sdmatte.referring_text`); None: the
            network's empty caption for every sample.
    """

    prompt_map: Tensor
    boxes: Tensor
    points: Tensor
    point_labels: Tensor
    use_points: Tensor
    transparent: Tensor
    text_context: Tensor | None = None


class SDMatteNet(nn.Module):
    """Stable Diffusion 2 UNet + SDMatte's prompt modules; one deterministic step.

    Args:
        unet: a UNet with 8 input channels (image latent + prompt-map latent).
        vae: ``AutoencoderKL`` (SDMatte) or ``AutoencoderTiny`` (LiteSDMatte).
        text_context: 1 x T x D embedding of the empty caption, the context of blocks without
            visual prompts (a fixed placeholder when no text encoder was given).
        visual_prompt_blocks: blocks whose cross-attention attends to the prompt latent's tokens
            (paper default: ``["mid"]``); empty: no visual-prompt projection.
        masked_blocks: blocks whose self-attention is masked by the prompt map (default all).
        coordinate_embedding: point / box embeddings added to the time embedding, or None.
        opacity_embedding: the time embedding receives ``1 - is_transparent``; False gives
            every sample the opaque value (no opacity input).
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL | AutoencoderTiny,
        text_context: Tensor,
        visual_prompt_blocks: Sequence[str] = DEFAULT_VISUAL_PROMPT_BLOCKS,
        masked_blocks: Sequence[str] = BLOCK_GROUPS,
        coordinate_embedding: CoordinateEmbedding | None = None,
        opacity_embedding: bool = True,
    ) -> None:
        super().__init__()
        if unet.config.in_channels != 2 * LATENT_CHANNELS:
            raise ValueError(
                f"SDMatte's UNet takes {2 * LATENT_CHANNELS} channels (image + prompt latents), "
                f"got {unet.config.in_channels}: widen it with graft()"
            )
        self.unet, self.vae = unet, vae
        self.visual_prompt_blocks = _check_blocks("visual_prompt_blocks", visual_prompt_blocks)
        self.masked_blocks = _check_blocks("masked_blocks", masked_blocks)
        self.opacity_embedding = opacity_embedding
        self.register_buffer("text_context", text_context.detach().clone())
        self.visual_prompt_projection = None
        if self.visual_prompt_blocks:
            width = unet.config.cross_attention_dim
            self.visual_prompt_projection = nn.Conv2d(LATENT_CHANNELS, width, 3, padding=1)
        self.coordinate_embedding = coordinate_embedding
        if coordinate_embedding is not None:
            # diffusers adds ``class_embedding(class_labels)`` to the time embedding: with the
            # identity, the coordinate embedding computed here is added as it is.
            unet.class_embedding = nn.Identity()
        self.set_processors(explicit=False)

    def set_processors(self, explicit: bool) -> None:
        """Install SDMatte's processors (``explicit``: build L x L scores, the classic path)."""
        processors = {}
        for name in self.unet.attn_processors:
            group, is_self = block_group(name), name.endswith("attn1.processor")
            processors[name] = SDMatteAttnProcessor(
                masked=is_self and group in self.masked_blocks,
                visual_prompt=not is_self and group in self.visual_prompt_blocks,
                explicit=explicit,
            )
        self.unet.set_attn_processor(processors)

    @property
    def tiny_autoencoder(self) -> bool:
        return isinstance(self.vae, AutoencoderTiny)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def encode(self, x: Tensor) -> Tensor:
        """B x 3 x H x W in [-1, 1] -> B x 4 x H/8 x W/8 scaled latent (the posterior's mean)."""
        if self.tiny_autoencoder:
            # LiteSDMatte's release hands [0, 1] images to a TAESD encoder that maps its input
            # from [-1, 1] to [0, 1] itself; its weights were trained on that, so keep it.
            return self.vae.encode((x + 1) / 2).latents * self.scaling_factor
        return self.vae.encode(x).latent_dist.mean * self.scaling_factor

    def decode(self, latent: Tensor) -> Tensor:
        """B x 4 x h x w latent -> B x 1 x 8h x 8w alpha in [0, 1] (mean over the colours).

        The release's clip to [-1, 1], with a straight-through gradient. A hard clip passes no
        gradient to a pixel outside the range: once every pixel is below -1 the network can
        never recover. That happened to every tiny SDMatte trained from random weights at lr
        1e-3 (within 100 steps all decoded values lay in [-4.2, -1.02], and the runs stayed
        there). The values are the release's exactly; only the gradient differs.
        """
        decoded = self.vae.decode(latent / self.scaling_factor).sample.mean(1, keepdim=True)
        clipped = decoded + (decoded.clamp(-1, 1) - decoded).detach()
        return (clipped + 1) / 2

    def coordinates(self, prompt: SDMattePrompt, size: tuple[int, int]) -> Tensor:
        """B x time-embedding-width: the point embedding where ``use_points``, else the box's."""
        embedding = self.coordinate_embedding
        by_box = embedding.embed_boxes(prompt.boxes, size)
        if not bool(prompt.use_points.any()):
            return by_box
        by_points = embedding.embed_points(prompt.points, prompt.point_labels, size)
        return torch.where(prompt.use_points[:, None], by_points, by_box)

    def forward(self, image: Tensor, prompt: SDMattePrompt) -> Tensor:
        """One step from image and prompt to alpha: :meth:`decode` of :meth:`denoise`.

        Returns:
            B x 1 x H x W alpha in [0, 1].
        """
        return self.decode(self.denoise(image, prompt))

    def denoise(self, image: Tensor, prompt: SDMattePrompt) -> Tensor:
        """The UNet's one step, from image and prompt to the alpha's latent.

        Args:
            image: B x 3 x H x W in [0, 1] (H, W divisible by 8).
            prompt: each sample's prompt (:class:`SDMattePrompt`).

        Returns:
            B x 4 x H/8 x W/8 latent.
        """
        size = tuple(image.shape[-2:])
        if size[0] % 8 or size[1] % 8:
            raise ValueError(f"SDMatte needs sides divisible by 8, got {size}")
        prompt_map = prompt.prompt_map
        latents = self.encode(torch.cat([image, prompt_map.expand(-1, 3, -1, -1)]) * 2 - 1)
        image_latent, prompt_latent = latents.chunk(2)
        kwargs = {}
        if self.masked_blocks:
            grid = tuple(image_latent.shape[-2:])
            on_grid = F.interpolate(prompt_map.float(), size=grid, mode="nearest")
            kwargs["prompt_bias"] = PromptKeyBias(on_grid, grid)
        if self.visual_prompt_projection is not None:
            kwargs["visual_prompt"] = self.visual_prompt_projection(prompt_latent).flatten(2).mT
        transparent = prompt.transparent.float()
        opaque = 1 - transparent if self.opacity_embedding else torch.ones_like(transparent)
        class_labels = None
        if self.coordinate_embedding is not None:
            class_labels = self.coordinates(prompt, size)
        context = prompt.text_context
        if context is None:
            context = self.text_context.expand(len(image), -1, -1)
        context = context.to(image_latent.dtype)
        return self.unet(
            torch.cat([image_latent, prompt_latent], 1),
            opaque,
            encoder_hidden_states=context,
            class_labels=class_labels,
            cross_attention_kwargs=kwargs or None,
        ).sample


def widen_conv_in(unet: UNet2DConditionModel) -> nn.Conv2d:
    """Give ``unet`` an 8-channel conv_in (weights tiled twice and halved, bias kept) and return
    the original 4-channel one (the visual-prompt projection starts from it)."""
    original = unet.conv_in
    widened = nn.Conv2d(
        2 * original.in_channels, original.out_channels, original.kernel_size,
        padding=original.padding,
    )  # fmt: skip
    with torch.no_grad():
        widened.weight.copy_(torch.cat([original.weight, original.weight], 1) / 2)
        widened.bias.copy_(original.bias)
    unet.conv_in = widened
    unet.register_to_config(in_channels=widened.in_channels)
    return original


def init_visual_prompt_projection(projection: nn.Conv2d, conv_in: nn.Conv2d) -> None:
    """The release's start: the first conv_in-width output channels copy the original conv_in,
    the others are zero."""
    width = conv_in.out_channels
    with torch.no_grad():
        projection.weight.zero_()
        projection.bias.zero_()
        projection.weight[:width].copy_(conv_in.weight)
        projection.bias[:width].copy_(conv_in.bias)


def graft(
    sd_unet: UNet2DConditionModel,
    vae: AutoencoderKL | AutoencoderTiny,
    text_context: Tensor,
    point_dim: int,
    visual_prompt_blocks: Sequence[str] = DEFAULT_VISUAL_PROMPT_BLOCKS,
    masked_blocks: Sequence[str] = BLOCK_GROUPS,
    coordinate_embedding: bool = True,
    opacity_embedding: bool = True,
    layers_per_block: int | None = None,
) -> SDMatteNet:
    """SDMatte from a Stable Diffusion UNet (4 input channels), initialised as the release does.

    Args:
        layers_per_block: prune the UNet to this many pairs per down stage (LiteSDMatte: 1),
            after widening, copying the kept pairs.
    """
    original_conv_in = widen_conv_in(sd_unet)
    unet = sd_unet
    if layers_per_block is not None and layers_per_block != unet.config.layers_per_block:
        unet = prune_unet(sd_unet, layers_per_block)
    embedding = None
    if coordinate_embedding:
        embed_dim = unet.time_embedding.linear_2.out_features
        box_dim = unet.config.block_out_channels[0]
        embedding = CoordinateEmbedding(embed_dim, point_dim, box_dim)
    net = SDMatteNet(
        unet, vae, text_context, visual_prompt_blocks, masked_blocks, embedding, opacity_embedding
    )
    if net.visual_prompt_projection is not None:
        init_visual_prompt_projection(net.visual_prompt_projection, original_conv_in)
    return net


def build_sdmatte(variant: str = "sd2", lite: bool = False, **switches) -> SDMatteNet:
    """A randomly initialised SDMatte (``lite``: LiteSDMatte's pruned UNet and TAESD) of size
    ``variant`` (``sd2`` or ``tiny``); ``switches`` are :func:`graft`'s block / embedding args."""
    sd_unet = UNet2DConditionModel(**sd_unet_config(variant))
    vae_cls = AutoencoderTiny if lite else AutoencoderKL
    vae = vae_cls(**vae_config(variant, tiny_autoencoder=lite))
    context = placeholder_context(sd_unet.config.cross_attention_dim, TEXT_TOKENS)
    layers = 1 if lite else None
    return graft(sd_unet, vae, context, POINT_DIMS[variant], layers_per_block=layers, **switches)


def lite_from_teacher(teacher: SDMatteNet, tiny_vae: AutoencoderTiny) -> SDMatteNet:
    """LiteSDMatte initialised from a trained SDMatte: the UNet pruned to one pair per down stage
    (kept pairs copied, :mod:`~mattekit.nn.unet_pruning`), SDMatte's prompt modules and
    text context copied, with ``tiny_vae`` as its autoencoder."""
    student = SDMatteNet(
        prune_unet(teacher.unet, layers_per_block=1),
        tiny_vae,
        teacher.text_context,
        teacher.visual_prompt_blocks,
        teacher.masked_blocks,
        copy.deepcopy(teacher.coordinate_embedding),
        teacher.opacity_embedding,
    )
    if teacher.visual_prompt_projection is not None:
        student.visual_prompt_projection.load_state_dict(
            teacher.visual_prompt_projection.state_dict()
        )
    return student
