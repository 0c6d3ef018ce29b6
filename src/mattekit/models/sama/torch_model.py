"""SAMA (Segment And Matte Anything, AAAI 2026): a frozen SAM with a Multi-View Localization
Encoder, a Local-Adapter after each decoder layer and two task tokens with their heads.

Pure PyTorch, parts injected as in segment-anything's ``Sam``. The SAM inside is ZIM's build with
SAM's own decoder and no masked attention, which is SAM exactly (same parameter names, official
checkpoints load into it, ZIM's prompt tokens and filler slots work unchanged); everything SAMA
adds lives beside it, so freezing ``sam`` freezes all of SAM.

Data flow (ViT-B at 1024 px; C = 256, grid h = w = 64):

    images B x 3 x S x S ─┬─ global view ───────────┐ the frozen encoder, one batch of 5B
                          └─ 4 quadrant views x2 ───┘ (``encode``)
    F^I B x C x h x w,  F^L B x 4 x C x h x w,  early features B x 4 x C x h x w
    MVLE(F^I, F^L) -> local B x 4 x C x h x w
    per task, one pass (the passes batched, 2B):
    tokens [iou, mask x 4, task, prompts] ── SAM layer 1 ─ adapter 1 ─ layer 2 ─ adapter 2
                                          ── SAM's final token-to-image attention
    task token + that pass's image stream + local mosaic -> head -> B x 1 x S/4 x S/4 logits
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.common import LayerNorm2d
from torch import Tensor, nn

from mattekit.models.sam.build import VARIANTS
from mattekit.models.sam.inputs import FILLER_LABEL
from mattekit.models.sam.weights import load_sam_weights
from mattekit.models.sama.heads import PredictionHead
from mattekit.models.sama.local_adapter import LocalAdapter
from mattekit.models.sama.mvle import (
    REGIONS,
    MultiViewLocalizationEncoder,
    local_positional_encoding,
    local_views,
    regions_to_tokens,
    tile_regions,
    tokens_to_regions,
)

# SAMA's SAM is ZIM's module (see the module docstring): its state-dict names and prompt tokens.
from mattekit.models.zim.torch_model import Zim, build_zim
from mattekit.nn.fast_paths import may_branch_on_values
from mattekit.nn.masked_attention import key_bias_from_mask
from mattekit.weights.report import LoadReport

TASKS = ("segmentation", "matting")
PAPER_POOL_KERNELS = (4, 8, 16)  # on SAM's 64 x 64 grid
EARLY_FUSIONS = ("first", "every")


@dataclass
class SamaImageFeatures:
    """What depends on the image only (:meth:`Sama.encode`), reused across prompts.

    Attributes:
        embedding: B x C x h x w, SAM's embedding of the whole image (F^I).
        local: B x 4 x C x h x w local features (the MVLE's output, or the views' own
            embeddings without the MVLE); None when neither the MVLE nor the adapters are on.
        early: B x 4 x C x h x w early encoder features of each view, projected to C; None
            without the adapters.
    """

    embedding: Tensor
    local: Tensor | None = None
    early: Tensor | None = None


def encode_with_early(
    encoder: ImageEncoderViT, images: Tensor, early_block: int | None, images_per_pass: int = 1
) -> tuple[Tensor, Tensor | None]:
    """SAM's image encoder, also returning one block's output (HQ-SAM's early features).

    Args:
        images: N x 3 x S x S SAM-normalised.
        early_block: index of the block whose output to return (None: none).
        images_per_pass: how many of the N go through the ViT together. The ViT treats each
            image alone, so this changes no value, only the peak: at 1024 px a global block's
            attention holds about 0.8 GB per image in float32, and SAMA encodes five views.

    Returns:
        N x C x h x w embedding (the neck's output) and N x D x h x w (D the ViT width) or None.
    """
    if images.shape[0] > images_per_pass:
        passes = [encode_with_early(encoder, part, early_block, images_per_pass)
                  for part in images.split(images_per_pass)]  # fmt: skip
        embeddings, earlies = zip(*passes, strict=True)
        early = None if early_block is None else torch.cat(earlies)
        return torch.cat(embeddings), early
    x = encoder.patch_embed(images)
    if encoder.pos_embed is not None:
        x = x + resized_position_embedding(encoder.pos_embed, tuple(x.shape[1:3]))
    early = None
    for index, block in enumerate(encoder.blocks):
        x = block(x)
        if index == early_block:
            early = x.permute(0, 3, 1, 2)
    return encoder.neck(x.permute(0, 3, 1, 2)), early


def resized_position_embedding(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """SAM's absolute position embedding (1 x h x w x D) at another token grid, bicubic (the
    usual way to run a ViT at another resolution); unchanged at its own grid. The windowed and
    global blocks need nothing: segment-anything pads windows and interpolates relative
    positions itself."""
    if tuple(pos_embed.shape[1:3]) == grid:
        return pos_embed
    resized = F.interpolate(pos_embed.permute(0, 3, 1, 2), size=grid, mode="bicubic")
    return resized.permute(0, 2, 3, 1)


class Sama(nn.Module):
    """Frozen SAM + SAMA's modules.

    Args:
        sam: SAM (ZIM's build with SAM's decoder, no masked attention).
        heads: one :class:`PredictionHead` per task, keyed ``segmentation`` / ``matting``.
        task_tokens: 2 x C, the segmentation and matting output tokens (in :data:`TASKS` order).
        mvle: the Multi-View Localization Encoder, or None (Table 3 "MVLE" off).
        adapters: one :class:`LocalAdapter` per SAM decoder layer, or None ("L-A" off).
        early_projection: early ViT features (D channels) -> C, with the adapters.
        early_block: the encoder block giving the early features.
        local_view_size: side of each quadrant view given to the encoder: the input size (the
            paper: each quadrant zoomed 2x, four full encodings) or smaller (cheaper; S / 2 keeps
            the quadrant's own resolution); None for the input size.
        separate_task_tokens: one decoder pass per task, carrying only that task's token (the
            paper: "two SAMA tokens are used separately"); False: one pass carrying both tokens,
            which then attend to each other (the form before issue 25).
        early_fusion: where the early features join the local tokens (eq. 5-6): ``first``, the
            first adapter only (its local output carries them on to the next through its
            residual); ``every``, each adapter adds them to its local input (the form before
            issue 25, which counts them twice from the second adapter on).
    """

    def __init__(
        self,
        sam: Zim,
        heads: nn.ModuleDict,
        task_tokens: nn.Embedding,
        mvle: MultiViewLocalizationEncoder | None = None,
        adapters: nn.ModuleList | None = None,
        early_projection: nn.Module | None = None,
        early_block: int | None = None,
        local_view_size: int | None = None,
        separate_task_tokens: bool = True,
        early_fusion: str = "first",
    ) -> None:
        super().__init__()
        if early_fusion not in EARLY_FUSIONS:
            raise ValueError(f"early_fusion must be one of {EARLY_FUSIONS}, got {early_fusion!r}")
        if adapters is not None and (early_projection is None or early_block is None):
            raise ValueError("the Local-Adapters need early_projection and early_block")
        layers = len(sam.mask_decoder.transformer.layers)
        if adapters is not None and len(adapters) != layers:
            raise ValueError(f"one adapter per decoder layer: {layers}, got {len(adapters)}")
        self.sam = sam
        self.heads = heads
        self.task_tokens = task_tokens
        self.mvle = mvle
        self.adapters = adapters
        self.early_projection = early_projection
        self.early_block = early_block
        self.local_view_size = local_view_size or sam.image_size
        self.separate_task_tokens = separate_task_tokens
        self.early_fusion = early_fusion
        patch = sam.image_size // sam.grid[0]
        if self.local_view_size % (2 * patch):
            raise ValueError(
                f"local_view_size must be a multiple of twice the patch size ({2 * patch}), "
                f"got {local_view_size}"
            )

    @property
    def image_size(self) -> int:
        return self.sam.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.sam.grid

    @property
    def local_grid(self) -> tuple[int, int]:
        """Token grid of each local view."""
        side = self.local_view_size * self.grid[0] // self.image_size
        return side, side

    @property
    def uses_local_views(self) -> bool:
        return self.mvle is not None or self.adapters is not None

    def positional_encoding(self, coords: Tensor) -> Tensor:
        """SAM's frozen random-Fourier PE at ``coords`` (1 x N x 2, in [0, 1]): 1 x N x C."""
        return self.sam.prompt_encoder.pe_layer.forward_with_coords(coords, (1, 1))

    def encode(self, images: Tensor) -> SamaImageFeatures:
        """Encode the whole image and, when a module needs them, its four quadrant views.

        The views are cut from the normalised, padded input and resized to ``local_view_size``
        (the paper: back to S, a 2x zoom). Each image and view goes through the ViT alone
        (:func:`encode_with_early`): the same values as one batch, a fifth of its peak.

        Args:
            images: B x 3 x S x S SAM-normalised (:func:`mattekit.models.sam.inputs.sam_image`).
        """
        size = self.image_size
        if images.shape[-2:] != (size, size):
            raise ValueError(f"images must be {size} x {size}, got {tuple(images.shape[-2:])}")
        encoder = self.sam.image_encoder
        if not self.uses_local_views:
            return SamaImageFeatures(encode_with_early(encoder, images, None)[0])
        b = images.shape[0]
        views = local_views(images, self.local_view_size).flatten(0, 1)  # (4B) x 3 x V x V
        early_block = self.early_block if self.adapters is not None else None
        if self.local_view_size == size:
            embeddings, early = encode_with_early(encoder, torch.cat([images, views]), early_block)
            embedding, local = embeddings[:b], embeddings[b:]
            early = None if early is None else early[b:]
        else:
            embedding, _ = encode_with_early(encoder, images, None)
            local, early = encode_with_early(encoder, views, early_block)
        local = local.unflatten(0, (b, REGIONS))
        if early is not None:
            early = self.early_projection(early).unflatten(0, (b, REGIONS))
        if self.mvle is not None:
            global_pe, local_pe = self.mvle.positional_encodings(
                self.positional_encoding, self.grid, self.local_grid, images.device
            )
            local = self.mvle(embedding, local, global_pe, local_pe)
        return SamaImageFeatures(embedding, local, early)

    def decode(
        self,
        features: SamaImageFeatures,
        coords: Tensor,
        labels: Tensor,
        tasks: Sequence[str] = TASKS,
    ) -> dict[str, Tensor]:
        """Mask logits of the requested tasks.

        With ``separate_task_tokens`` (the default) each task has its own decoder pass whose
        output tokens are SAM's and that task's token only, so a task's logits do not depend on
        the other task's token at all; the passes of several tasks run as one batch of
        (tasks x B). Otherwise one pass carries both tokens; the token of a task not in
        ``tasks`` is then detached. Either way a task not in ``tasks`` has no head run, so its
        parameters get no gradient and its BatchNorm statistics do not move (the paper freezes
        the other head).

        Args:
            features: from :meth:`encode` (B samples).
            coords: B x K x 2 prompt coordinates in input pixels; labels: B x K in ZIM's
                convention (:mod:`mattekit.models.sam.inputs`; fillers -2).
            tasks: which heads to run (at least one).

        Returns:
            ``{task: B x 1 x S/4 x S/4 logits}`` for each task in ``tasks``.
        """
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f"tasks must be among {TASKS}, got {sorted(tasks)}")
        sam, decoder = self.sam, self.sam.mask_decoder
        transformer = decoder.transformer
        b = coords.shape[0]
        output_tokens, slots = self.output_tokens(tasks, b)
        passes = output_tokens.shape[0] // b
        sparse, dense = sam.embed_prompts(coords, labels)
        tokens = torch.cat([output_tokens, repeat_batch(sparse, passes)], dim=1)
        fillers = repeat_batch(labels == FILLER_LABEL, passes)
        token_keys = None
        if not may_branch_on_values(fillers) or bool(fillers.any()):
            real = torch.cat([fillers.new_ones(output_tokens.shape[:2]), ~fillers], dim=1)
            token_keys = key_bias_from_mask(real)

        grid = self.grid
        keys = repeat_batch(features.embedding + dense, passes).flatten(2).transpose(1, 2)
        key_pe = sam.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2)
        local = None
        if features.local is not None:
            local = repeat_batch(regions_to_tokens(features.local), passes)
        if self.adapters is not None:
            early = repeat_batch(regions_to_tokens(features.early), passes)
            local_pe = local_positional_encoding(
                self.positional_encoding, self.local_grid, keys.device
            )
        queries = tokens
        for index, layer in enumerate(transformer.layers):
            queries, keys = layer(queries, keys, tokens, key_pe, token_keys=token_keys)
            if self.adapters is not None:
                fuse = index == 0 or self.early_fusion == "every"
                keys, local = self.adapters[index](
                    keys, local, early if fuse else None, key_pe, local_pe, grid
                )
        q, k = queries + tokens, keys + key_pe
        queries = transformer.norm_final_attn(
            queries + transformer.final_attn_token_to_image(q, k, keys)
        )

        image = keys.transpose(1, 2).reshape(passes * b, -1, *grid)
        sam_features = decoder.pixel_decoder(image)
        mosaic = None if local is None else tile_regions(tokens_to_regions(local, self.local_grid))
        logits = {}
        for task, (index, slot) in slots.items():
            rows = slice(index * b, (index + 1) * b)
            task_mosaic = None if mosaic is None else mosaic[rows]
            logits[task] = self.heads[task](
                queries[rows, slot], image[rows], sam_features[rows], task_mosaic
            )
        return logits

    def output_tokens(
        self, tasks: Sequence[str], b: int
    ) -> tuple[Tensor, dict[str, tuple[int, int]]]:
        """The decoder's output tokens for ``tasks`` on B samples: SAM's IoU and mask tokens (as
        HQ-SAM keeps them) followed by the task token(s).

        Returns:
            (P B) x T x C tokens, P the number of passes (pass p holds rows p B .. (p + 1) B - 1),
            and per task its pass p and its token's index in T.
        """
        decoder = self.sam.mask_decoder
        sam_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight])
        first = sam_tokens.shape[0]
        if self.separate_task_tokens:
            own = self.task_tokens.weight[[TASKS.index(task) for task in tasks]]  # P x C
            per_pass = torch.cat([sam_tokens.expand(len(tasks), -1, -1), own[:, None]], dim=1)
            slots = {task: (index, first) for index, task in enumerate(tasks)}
            return per_pass.repeat_interleave(b, dim=0), slots
        task_tokens = torch.stack(
            [
                token if task in tasks else token.detach()
                for task, token in zip(TASKS, self.task_tokens.weight, strict=True)
            ]
        )
        slots = {task: (0, first + TASKS.index(task)) for task in tasks}
        return torch.cat([sam_tokens, task_tokens]).expand(b, -1, -1), slots

    def forward(
        self, images: Tensor, coords: Tensor, labels: Tensor, tasks: Sequence[str] = TASKS
    ) -> dict[str, Tensor]:
        """:meth:`encode` then :meth:`decode`."""
        return self.decode(self.encode(images), coords, labels, tasks)


def repeat_batch(x: Tensor, times: int) -> Tensor:
    """``x`` (B x ...) stacked ``times`` times along the batch: (times B) x ..."""
    return x if times == 1 else torch.cat([x] * times)


def scaled_pool_kernels(grid: int) -> tuple[int, ...]:
    """The paper's receptive fields (4, 8, 16 on a 64 grid) scaled to ``grid`` (tiny 16: 1, 2, 4),
    so that they cover the same fractions of the image."""
    if grid % 16:
        raise ValueError(f"no default pooling for a {grid} x {grid} grid: give pool_kernels")
    return tuple(k * grid // 64 for k in PAPER_POOL_KERNELS)


def build_sama(
    variant: str = "vit_b",
    mvle: bool = True,
    local_adapter: bool = True,
    pool_kernels: Sequence[int] | None = None,
    pool_mode: str = "paper",
    channel_gate: bool = False,
    head_norm: str = "batch",
    early_block: int | None = None,
    local_view_size: int | None = None,
    separate_task_tokens: bool = True,
    early_fusion: str = "first",
) -> Sama:
    """A randomly initialised SAMA (load SAM with :func:`load_sam_into_sama`).

    Args:
        variant: SAM's size: ``vit_b`` (default), ``vit_l``, ``vit_h`` or ``tiny``.
        mvle, local_adapter: the two modules of paper Tables 3 and 4.
        pool_kernels: MVLE pooling windows on the global grid (default: the paper's 4, 8, 16
            scaled to the grid, :func:`scaled_pool_kernels`).
        pool_mode: ``paper`` or ``mvanet`` (:func:`~mattekit.models.sama.mvle.pooled_regions`).
        channel_gate: the adapters' confidence map per channel (C maps) instead of one per
            position (the default, as MVANet's ``sal_conv``).
        head_norm: ``batch`` (paper) or ``group``.
        early_block: the encoder block of the early features (default: the first global-attention
            block, HQ-SAM's choice).
        local_view_size: side of the encoded quadrant views (default: the input size, the
            paper's 2x zoom; half of it encodes the quadrants at their own resolution, a quarter of
            the tokens each: ``benchmarks/sama.py`` measures what that saves).
        separate_task_tokens, early_fusion: see :class:`Sama`.
    """
    sam = build_zim(variant, masked_directions=(), decoder="sam")
    v = VARIANTS[variant]
    dim, heads, grid = v.prompt_dim, v.decoder_heads, sam.grid[0]
    mask_dim = dim // 8
    modules = {}
    if mvle:
        kernels = tuple(pool_kernels) if pool_kernels else scaled_pool_kernels(grid)
        modules["mvle"] = MultiViewLocalizationEncoder(dim, heads, kernels, 2, pool_mode)
    if local_adapter:
        layers = len(sam.mask_decoder.transformer.layers)
        modules["adapters"] = nn.ModuleList(
            LocalAdapter(dim, heads, 2, gate_channels=dim if channel_gate else 1)
            for _ in range(layers)
        )
        modules["early_projection"] = nn.Sequential(
            nn.Conv2d(v.encoder_dim, dim, kernel_size=1, bias=False), LayerNorm2d(dim)
        )
        modules["early_block"] = v.global_attention[0] if early_block is None else early_block
        if not 0 <= modules["early_block"] < v.encoder_depth:
            raise ValueError(f"early_block must be in [0, {v.encoder_depth}), got {early_block}")
    task_heads = nn.ModuleDict({task: PredictionHead(dim, mask_dim, head_norm) for task in TASKS})
    return Sama(
        sam, task_heads, nn.Embedding(len(TASKS), dim), **modules,
        local_view_size=local_view_size, separate_task_tokens=separate_task_tokens,
        early_fusion=early_fusion,
    )  # fmt: skip


def init_task_outputs_from_sam(model: Sama) -> None:
    """Start both task tokens from SAM's mask token 0 and both heads' hypernetworks from its MLP:
    with the heads' zero-initialised residual, each head then predicts SAM's single-mask output
    (random task outputs made the tiny ZIM collapse to background at CPU scale)."""
    decoder = model.sam.mask_decoder
    with torch.no_grad():
        for index, task in enumerate(TASKS):
            model.task_tokens.weight[index].copy_(decoder.mask_tokens.weight[0])
            hypernetwork = model.heads[task].hypernetwork
            hypernetwork.load_state_dict(decoder.output_hypernetworks_mlps[0].state_dict())


def load_sam_into_sama(model: Sama, path: str, init_from_sam: bool = True) -> LoadReport:
    """Load a SAM checkpoint (official, or a mattekit SAM / ZIM run) into ``model.sam``; then,
    with ``init_from_sam``, start the task outputs from SAM's (:func:`init_task_outputs_from_sam`).
    """
    report = load_sam_weights(model.sam, path)
    if init_from_sam:
        init_task_outputs_from_sam(model)
    return report


__all__ = [
    "TASKS",
    "Sama",
    "SamaImageFeatures",
    "build_sama",
    "encode_with_early",
    "init_task_outputs_from_sam",
    "load_sam_into_sama",
    "repeat_batch",
    "scaled_pool_kernels",
]
