"""SAM's split of a SAM-based family, as SAM's and ZIM's releases export it: an image encoder
run once per photo and a prompt decoder run per click.

The encoder takes the batch's image (in [0, 1], letterboxed at the network side) with its content
size and applies SAM's normalisation and padding itself; its outputs are the family's image
features, flattened (a tuple field becomes ``<name>_0``, ``<name>_1``, ...; absent fields are
left out). The decoder takes those features, then SAM's prompt tokens for one photo:
``coords`` 1 x K x 2 in network-input pixels and ``labels`` 1 x K (1 / 0 clicks, -1 the padding
point after clicks, 2 / 3 a box's corners; :func:`~mattekit.models.sam.inputs.sam_tokens`), K
free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import torch
from torch import Tensor, nn

from mattekit.data.sample import MattingBatch
from mattekit.export.graphs import ExportGraph
from mattekit.models.sam.inputs import PADDING_LABEL, sam_batch_tokens, sam_encode

#: The decoder's outputs from ``(features, coords, labels)``.
Decode = Callable[[object, Tensor, Tensor], tuple[Tensor, ...]]


def flatten_features(features: object) -> dict[str, Tensor]:
    """A features dataclass as named tensors (tuples expanded, None fields dropped)."""
    flat: dict[str, Tensor] = {}
    for item in fields(features):
        value = getattr(features, item.name)
        if isinstance(value, tuple):
            flat |= {f"{item.name}_{i}": tensor for i, tensor in enumerate(value)}
        elif value is not None:
            flat[item.name] = value
    return flat


def unflatten_features(example: object, tensors: tuple[Tensor, ...]) -> object:
    """The inverse of :func:`flatten_features`, shaped like ``example``."""
    values, position = {}, 0
    for item in fields(example):
        value = getattr(example, item.name)
        if isinstance(value, tuple):
            values[item.name] = tuple(tensors[position : position + len(value)])
            position += len(value)
        elif value is not None:
            values[item.name] = tensors[position]
            position += 1
        else:
            values[item.name] = None
    return type(example)(**values)


class SamEncoderGraph(nn.Module):
    """``(image, content_size)`` -> the flattened image features."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: Tensor, content_size: Tensor) -> tuple[Tensor, ...]:
        features = sam_encode(self.network, image, content_size)
        return tuple(flatten_features(features).values())


class SamDecoderGraph(nn.Module):
    """``(*features, coords, labels)`` -> the decoder's outputs."""

    def __init__(self, network: nn.Module, example: object, decode: Decode) -> None:
        super().__init__()
        self.network, self.example, self.decode = network, example, decode

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        features = unflatten_features(self.example, tensors[:-2])
        return self.decode(features, tensors[-2], tensors[-1])


def sam_split_graphs(
    network: nn.Module, batch: MattingBatch, decode: Decode, outputs: tuple[str, ...]
) -> list[ExportGraph]:
    """The encoder and decoder graphs of a SAM-based ``network`` (``encode`` / ``image_size``),
    traced on ``batch``'s first sample prompted by its clicks; the decoder is also checked with
    one more click."""
    image, content = batch.image[:1], batch.content_size[:1]
    coords, labels = sam_batch_tokens(batch.select([0]), ["points"], network.image_size)
    features = sam_encode(network, image, content)
    flat = flatten_features(features)
    encoder = ExportGraph(
        "encoder",
        SamEncoderGraph(network),
        {"image": image, "content_size": content},
        tuple(flat),
        note="image: 1 x 3 x S x S in [0, 1], letterboxed at the bottom-right; content_size: "
        "1 x 2 (h, w) of the photo inside it. Run once per photo.",
    )
    more_clicks = _with_one_more_click(coords, labels, network.image_size)
    decoder = ExportGraph(
        "decoder",
        SamDecoderGraph(network, features, decode),
        {**flat, "coords": coords, "labels": labels},
        outputs,
        dynamic={"coords": {1: "tokens"}, "labels": {1: "tokens"}},
        note="the encoder's outputs, then SAM's tokens of one photo in network-input pixels: "
        "coords 1 x K x 2, labels 1 x K (1 / 0 clicks then one -1 padding point, or a box's "
        "corners labelled 2, 3). Run per prompt; resize the logits to the photo.",
        checks=[{**flat, "coords": more_clicks[0], "labels": more_clicks[1]}],
    )
    return [encoder, decoder]


def _with_one_more_click(coords: Tensor, labels: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The tokens with a negative click added before the padding point (K + 1 tokens)."""
    click = torch.tensor([[[size * 0.8, size * 0.2]]], dtype=coords.dtype, device=coords.device)
    negative = torch.zeros((1, 1), dtype=labels.dtype, device=labels.device)
    padding = labels[:, -1:] == PADDING_LABEL
    if not bool(padding.all()):
        raise ValueError("expected clicks followed by SAM's padding point")
    return (
        torch.cat([coords[:, :-1], click, coords[:, -1:]], 1),
        torch.cat([labels[:, :-1], negative, labels[:, -1:]], 1),
    )
