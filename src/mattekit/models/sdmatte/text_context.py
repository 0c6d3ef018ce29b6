"""The empty caption's text embedding: the context of SDMatte's blocks without visual prompts.

The release runs its CLIP text encoder (transformers ``CLIPTextModel``) on ``""`` padded to 77
tokens at every call; the result never changes, so mattekit computes it once, from the text
encoder's weights (a diffusers folder's ``text_encoder/`` or the ``text_encoder.`` entries of an
official checkpoint), and keeps it as a buffer. The same loaders and tokenizer serve referring
expressions (:mod:`~mattekit.models.sdmatte.referring_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mattekit.nn.clip_tokens import PromptTokenizer

if TYPE_CHECKING:
    from transformers import CLIPTextConfig, CLIPTextModel

# Stable Diffusion 2's tokenizer (OpenCLIP's vocabulary): start and end of text, then "!" (id 0)
# as padding; :class:`~mattekit.nn.clip_tokens.PromptTokenizer` gives the same ids.
START_TOKEN, END_TOKEN, SD2_PAD_TOKEN = 49406, 49407, 0
#: The text encoder's sequence length (CLIP's 77 positions).
TEXT_TOKENS = 77


def placeholder_context(width: int, length: int = TEXT_TOKENS) -> Tensor:
    """1 x ``length`` x ``width``: a fixed random context (seed 0) standing in for the empty
    caption when no text encoder is given (random or tiny networks). Zeros would leave the
    cross-attention keys and values of the text blocks without any gradient."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, length, width, generator=generator)


class FolderTokenizer:
    """B texts -> B x ``model_max_length`` ids with a diffusers folder's ``tokenizer/``, called as
    the release calls it (``modeling/SDMatte/meta_arch.py:181-187``: padded to the maximum
    length, truncated)."""

    def __init__(self, folder: Path) -> None:
        from transformers import CLIPTokenizer

        self.tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)

    def __call__(self, texts: list[str]) -> Tensor:
        return self.tokenizer(
            list(texts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids


def caption_tokenizer(folder: Path | None = None) -> FolderTokenizer | PromptTokenizer:
    """A diffusers folder's ``tokenizer/`` when it has one, else OpenCLIP's tokenizer (SD 2's
    vocabulary, 77 ids): an official ``.pth`` ships no tokenizer."""
    if folder is not None and (Path(folder) / "tokenizer").is_dir():
        return FolderTokenizer(Path(folder) / "tokenizer")
    return PromptTokenizer(TEXT_TOKENS)


def empty_caption_ids(length: int) -> Tensor:
    """1 x ``length`` token ids of ``""`` padded to the maximum length."""
    return PromptTokenizer(length)([""])


_TEXT_MODEL = "text_model."


def without_text_model_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys without transformers 4's ``text_model.`` level (transformers 5 dropped it)."""
    return {k.removeprefix(_TEXT_MODEL): v for k, v in state.items()}


def clip_text_config(state: Mapping[str, Tensor]) -> CLIPTextConfig:
    """transformers ``CLIPTextConfig`` matching a CLIP text encoder state dict's shapes (SD 2:
    width 1024, 23 layers, 16 heads of 64); keys with or without ``text_model.``."""
    state = without_text_model_prefix(state)

    vocab, width = state["embeddings.token_embedding.weight"].shape
    layer_ids = {
        int(m.group(1)) for key in state if (m := re.match(r"encoder\.layers\.(\d+)\.", key))
    }
    return sd_text_config(
        width,
        len(layer_ids),
        state["encoder.layers.0.mlp.fc1.weight"].shape[0],
        vocab_size=vocab,
        positions=state["embeddings.position_embedding.weight"].shape[0],
    )


def sd_text_config(
    width: int,
    layers: int,
    intermediate: int,
    vocab_size: int = 49408,
    positions: int = TEXT_TOKENS,
) -> CLIPTextConfig:
    """transformers ``CLIPTextConfig`` of a Stable Diffusion 2 style text encoder (GELU, heads of
    64)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        # Heads of 64 (SD 2's); shapes cannot tell the count, and a narrow test encoder has one.
        num_attention_heads=max(1, width // 64),
        max_position_embeddings=positions,
        hidden_act="gelu",
        projection_dim=width,
    )


def clip_text_model(
    text_encoder_state: Mapping[str, Tensor], config: CLIPTextConfig | None = None
) -> CLIPTextModel:
    """A transformers ``CLIPTextModel`` (eval mode) holding ``text_encoder_state``.

    Args:
        text_encoder_state: ``CLIPTextModel`` weights, keys with or without ``text_model.``
            (transformers 4 and 5 name them differently).
        config: the structure; None: read from the weights' shapes (:func:`clip_text_config`).

    Raises:
        ValueError naming the missing weights or the shapes that differ from ``config``.
    """
    from transformers import CLIPTextModel

    encoder = CLIPTextModel(config or clip_text_config(text_encoder_state)).eval()
    state = without_text_model_prefix(text_encoder_state)
    if next(iter(encoder.state_dict())).startswith(_TEXT_MODEL):
        state = {_TEXT_MODEL + k: v for k, v in state.items()}
    own = encoder.state_dict()
    wrong = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"text encoder weights of another size: shapes differ for {wrong[:3]}")
    # position_ids is a buffer some transformers versions save and others do not.
    missing, _ = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ValueError(f"text encoder weights incomplete, missing {missing[:5]}")
    return encoder


@torch.no_grad()
def empty_caption_context(text_encoder_state: Mapping[str, Tensor]) -> Tensor:
    """1 x 77 x D: the last hidden state of a CLIP text encoder on the empty caption.

    Args:
        text_encoder_state: transformers ``CLIPTextModel`` weights (:func:`clip_text_model`).

    Raises:
        ValueError naming the missing weights when the state is not a CLIP text encoder's.
    """
    encoder = clip_text_model(text_encoder_state)
    ids = empty_caption_ids(encoder.config.max_position_embeddings)
    return encoder(input_ids=ids).last_hidden_state.float()


def folder_text_encoder(folder: Path) -> CLIPTextModel:
    """A diffusers folder's ``text_encoder/`` (eval mode; nothing downloaded)."""
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True).eval()


@torch.no_grad()
def folder_caption_context(folder: Path) -> Tensor:
    """1 x 77 x D from a diffusers folder's ``text_encoder/`` and ``tokenizer/``."""
    encoder = folder_text_encoder(folder)
    ids = caption_tokenizer(folder)([""])
    return encoder(input_ids=ids).last_hidden_state.float()
