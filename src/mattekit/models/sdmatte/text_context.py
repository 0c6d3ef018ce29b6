"""The empty caption's text embedding: the context of SDMatte's blocks without visual prompts.

The release runs its CLIP text encoder (transformers ``CLIPTextModel``) on ``""`` padded to 77
tokens at every call; the result never changes, so mattekit computes it once, from the text
encoder's weights (a diffusers folder's ``text_encoder/`` or the ``text_encoder.`` entries of an
official checkpoint), and keeps it as a buffer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import CLIPTextConfig

# Stable Diffusion 2's tokenizer (OpenCLIP's vocabulary): start and end of text, then "!" (id 0)
# as padding. Used when no tokenizer folder is at hand (an official .pth has none).
START_TOKEN, END_TOKEN, SD2_PAD_TOKEN = 49406, 49407, 0
#: The text encoder's sequence length (CLIP's 77 positions).
TEXT_TOKENS = 77


def placeholder_context(width: int, length: int = TEXT_TOKENS) -> Tensor:
    """1 x ``length`` x ``width``: a fixed random context (seed 0) standing in for the empty
    caption when no text encoder is given (random or tiny networks). Zeros would leave the
    cross-attention keys and values of the text blocks without any gradient."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, length, width, generator=generator)


def empty_caption_ids(length: int, pad_token: int = SD2_PAD_TOKEN) -> Tensor:
    """1 x ``length`` token ids of ``""`` padded to the maximum length."""
    ids = torch.full((1, length), pad_token, dtype=torch.long)
    ids[0, :2] = torch.tensor([START_TOKEN, END_TOKEN])
    return ids


_TEXT_MODEL = "text_model."


def without_text_model_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys without transformers 4's ``text_model.`` level (transformers 5 dropped it)."""
    return {k.removeprefix(_TEXT_MODEL): v for k, v in state.items()}


def clip_text_config(state: Mapping[str, Tensor]) -> CLIPTextConfig:
    """transformers ``CLIPTextConfig`` matching a CLIP text encoder state dict's shapes (SD 2:
    width 1024, 23 layers, 16 heads of 64); keys with or without ``text_model.``."""
    from transformers import CLIPTextConfig

    state = without_text_model_prefix(state)

    width = state["embeddings.token_embedding.weight"].shape[1]
    layer_ids = {
        int(m.group(1)) for key in state if (m := re.match(r"encoder\.layers\.(\d+)\.", key))
    }
    return CLIPTextConfig(
        vocab_size=state["embeddings.token_embedding.weight"].shape[0],
        hidden_size=width,
        intermediate_size=state["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=len(layer_ids),
        # Heads of 64 (SD 2's); shapes cannot tell the count, and a narrow test encoder has one.
        num_attention_heads=max(1, width // 64),
        max_position_embeddings=state["embeddings.position_embedding.weight"].shape[0],
        hidden_act="gelu",
        projection_dim=width,
    )


@torch.no_grad()
def empty_caption_context(text_encoder_state: Mapping[str, Tensor]) -> Tensor:
    """1 x 77 x D: the last hidden state of a CLIP text encoder on the empty caption.

    Args:
        text_encoder_state: transformers ``CLIPTextModel`` weights, keys with or without
            ``text_model.`` (transformers 4 and 5 name them differently).

    Raises:
        ValueError naming the missing weights when the state is not a CLIP text encoder's.
    """
    from transformers import CLIPTextModel

    config = clip_text_config(text_encoder_state)
    encoder = CLIPTextModel(config).eval()
    state = without_text_model_prefix(text_encoder_state)
    if next(iter(encoder.state_dict())).startswith(_TEXT_MODEL):
        state = {_TEXT_MODEL + k: v for k, v in state.items()}
    # position_ids is a buffer some transformers versions save and others do not.
    missing, _ = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ValueError(f"text encoder weights incomplete, missing {missing[:5]}")
    ids = empty_caption_ids(config.max_position_embeddings)
    return encoder(input_ids=ids).last_hidden_state.float()


@torch.no_grad()
def folder_caption_context(folder: Path) -> Tensor:
    """1 x 77 x D from a diffusers folder's ``text_encoder/`` and ``tokenizer/``."""
    from transformers import CLIPTextModel, CLIPTokenizer

    encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True).eval()
    if (folder / "tokenizer").is_dir():
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        ids = tokenizer(
            "", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
        ).input_ids
    else:
        ids = empty_caption_ids(encoder.config.max_position_embeddings)
    return encoder(input_ids=ids).last_hidden_state.float()
