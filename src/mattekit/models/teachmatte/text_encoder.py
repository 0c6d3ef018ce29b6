"""The text side: a frozen open_clip text transformer and the trainable 2-layer MLP adapter.

The tower is open_clip's own ``TextTransformer``, so an open_clip checkpoint
(``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors``, whole CLIP or text only)
loads by name. The transformers layout of the same weights (``model.safetensors`` of
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``, which the release reads) is converted on load
(:func:`open_clip_text_state`). The visual tower is never built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from open_clip.transformer import TextTransformer
from torch import Tensor, nn

from mattekit.models.teachmatte.configs import TextTowerConfig
from mattekit.weights.files import load_state_dict

logger = logging.getLogger(__name__)


class OpenCLIPTextEncoder(nn.Module):
    """Token ids B x T -> B x T x D token features (``ln_final`` applied), T <= 77.

    Args:
        config: the tower's shape and the layer read (:class:`TextTowerConfig`).
    """

    def __init__(self, config: TextTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.tower = TextTransformer(
            context_length=config.context_length,
            vocab_size=config.vocab_size,
            width=config.width,
            heads=config.heads,
            layers=config.layers,
            output_dim=config.embed_dim,
        )

    @property
    def width(self) -> int:
        return self.config.width

    def forward(self, token_ids: Tensor) -> Tensor:
        tower = self.tower
        length = token_ids.shape[1]
        x = tower.token_embedding(token_ids) + tower.positional_embedding[:length]
        causal = tower.attn_mask[:length, :length].to(x.dtype)
        blocks = tower.transformer.resblocks
        for block in blocks[: len(blocks) - self.config.skip_last_layers]:
            x = block(x, attn_mask=causal)
        return tower.ln_final(x)


class TextAdapter(nn.Module):
    """The paper's 2-layer MLP text adapter, after CLIP-Adapter (Gao et al.): B x T x D -> same.

    ``ratio x MLP(x) + (1 - ratio) x x`` with ``MLP = Linear(D, D/4) -> ReLU -> Linear(D/4, D)
    -> ReLU``; CLIP-Adapter's residual blend keeps the frozen encoder's features dominant at the
    start (the release's exact adapter was not readable here; see the README).
    """

    def __init__(self, width: int, reduction: int = 4, ratio: float = 0.2) -> None:
        super().__init__()
        hidden = max(1, width // reduction)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, width, bias=False),
            nn.ReLU(inplace=True),
        )
        self.ratio = ratio

    def forward(self, features: Tensor) -> Tensor:
        return self.ratio * self.mlp(features) + (1 - self.ratio) * features


# transformers CLIPTextModel -> open_clip names (one transformer layer's parts).
_HF_LAYER_PARTS = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def _from_transformers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """open_clip text-tower names for a transformers ``CLIPModel`` / ``CLIPTextModel`` state."""
    hf = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {
        "token_embedding.weight": hf["embeddings.token_embedding.weight"],
        "positional_embedding": hf["embeddings.position_embedding.weight"],
        "ln_final.weight": hf["final_layer_norm.weight"],
        "ln_final.bias": hf["final_layer_norm.bias"],
    }
    if "text_projection.weight" in hf:  # a Linear in transformers, a matrix in open_clip
        out["text_projection"] = hf["text_projection.weight"].t()
    layers = {int(k.split(".")[2]) for k in hf if k.startswith("encoder.layers.")}
    for i in layers:
        source, target = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            qkv = [hf[f"{source}self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"{target}attn.in_proj_{kind}"] = torch.cat(qkv)
            for hf_part, ours in _HF_LAYER_PARTS.items():
                out[f"{target}{ours}.{kind}"] = hf[f"{source}{hf_part}.{kind}"]
    return out


_TEXT_PREFIXES = ("text_encoder.", "cond_stage_model.model.", "model.")


def open_clip_text_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The text tower's weights, open_clip names, from a checkpoint in either layout.

    Accepts a whole open_clip CLIP (``visual.*`` and ``logit_scale`` dropped), a text tower alone,
    either under a ``text_encoder.`` / ``cond_stage_model.model.`` prefix, or a transformers
    ``CLIPModel`` / ``CLIPTextModel`` (converted: q, k and v joined into ``in_proj``).

    Raises:
        ValueError when the state holds neither layout's token embedding.
    """
    for prefix in _TEXT_PREFIXES:
        inner = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if "token_embedding.weight" in inner or "text_model.embeddings.token_embedding.weight" in (
            inner
        ):
            state = inner
            break
    if "text_model.embeddings.token_embedding.weight" in state or (
        "embeddings.token_embedding.weight" in state
    ):
        return _from_transformers(state)
    if "token_embedding.weight" not in state:
        raise ValueError(
            "not a CLIP text encoder: no token_embedding.weight (open_clip) or "
            "text_model.embeddings.token_embedding.weight (transformers); keys look like "
            f"{list(state)[:3]}"
        )
    return {k: v for k, v in state.items() if not k.startswith("visual.") and k != "logit_scale"}


def load_text_encoder(encoder: OpenCLIPTextEncoder, path: str | Path) -> None:
    """Fill ``encoder`` from an open_clip or transformers CLIP checkpoint (weights-only,
    memory-mapped ``.pt`` / ``.bin`` / ``.pth``, or ``.safetensors``).

    Raises:
        FileNotFoundError / ValueError naming the file, missing weights or wrong shapes.
    """
    state = open_clip_text_state(load_state_dict(path))
    own = encoder.tower.state_dict()
    # The pooled projection is never used here; a transformers CLIPTextModel has none.
    missing = sorted(set(own) - set(state) - {"attn_mask", "text_projection"})
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise ValueError(
            f"{path}: not a text encoder of this size (width {encoder.width}): missing "
            f"{missing[:4]}, shapes differ for {wrong[:4]}"
        )
    encoder.tower.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
    logger.info("text encoder loaded from %s", path)
