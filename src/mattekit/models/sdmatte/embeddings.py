"""SDMatte's coordinate embeddings, added to the UNet's time (opacity) embedding.

Every coordinate is normalised to [0, 1] by the image's width or height and each scalar goes
through diffusers' sinusoidal ``get_timestep_embedding`` (sin / cos flipped to cos / sin, no
frequency shift, no x1000 scaling), as the release does; the concatenation goes through a
``TimestepEmbedding`` (linear, SiLU, linear) whose output layer starts at zero, so that a
pretrained UNet's output is unchanged until training moves it.

The release's ``process_weight.py`` zeroes *both* layers. Then no weight ever gets a gradient
(the hidden activation is SiLU(0) = 0 and the output weights are 0), and only the last bias,
a constant, can learn. mattekit zeroes only the output layer (ControlNet's zero-module start):
the output at step 0 is the same and the embedding can learn.

- Points: ``max_points`` (10) clicks, interleaved ``x1, y1, x2, y2, ...``, each scalar 84-d:
  1680 -> 1280. Fewer clicks are padded with zeros (the release's "no point" value); more
  are cut to the first ``max_points`` (logged once).
- Boxes: ``x0, y0, x1, y1``, each scalar 320-d (the UNet's ``time_proj`` width): 1280 -> 1280.
  A mask prompt uses its bounding box.
"""

from __future__ import annotations

import logging

import torch
from diffusers.models.embeddings import TimestepEmbedding, get_timestep_embedding
from torch import Tensor, nn

logger = logging.getLogger(__name__)


def sinusoidal(values: Tensor, dim: int) -> Tensor:
    """B x N scalars -> B x (N * dim): each scalar as ``[cos, sin]`` of ``dim / 2`` frequencies."""
    flat = get_timestep_embedding(
        values.flatten(), dim, flip_sin_to_cos=True, downscale_freq_shift=0
    )
    return flat.reshape(values.shape[0], -1)


def _through(embedding: TimestepEmbedding, features: Tensor) -> Tensor:
    """``embedding(features)`` in the embedding's own dtype: the sinusoids come in float32,
    which a model cast to bf16 / fp16 (not autocast) would refuse to multiply."""
    return embedding(features.to(embedding.linear_1.weight.dtype))


def _zero_output(embedding: TimestepEmbedding) -> TimestepEmbedding:
    nn.init.zeros_(embedding.linear_2.weight)
    nn.init.zeros_(embedding.linear_2.bias)
    return embedding


class CoordinateEmbedding(nn.Module):
    """Points or boxes -> B x ``embed_dim`` additions to the time embedding.

    Args:
        embed_dim: the UNet's time-embedding width (1280 at SD 2 size).
        point_dim: sinusoidal width per point scalar (84: 10 points x 2 x 84 = 1680).
        box_dim: sinusoidal width per box scalar (320, the UNet's ``time_proj`` width).
        max_points: clicks the point embedding reads.
    """

    def __init__(self, embed_dim: int, point_dim: int, box_dim: int, max_points: int = 10):
        super().__init__()
        self.point_dim, self.box_dim, self.max_points = point_dim, box_dim, max_points
        self.points = _zero_output(TimestepEmbedding(2 * max_points * point_dim, embed_dim))
        self.box = _zero_output(TimestepEmbedding(4 * box_dim, embed_dim))
        self._warned_cut = False

    def embed_points(self, points: Tensor, labels: Tensor, size: tuple[int, int]) -> Tensor:
        """B x N x 2 pixel clicks (labels B x N; only positives count) -> B x embed_dim.

        Positive clicks keep their order and come first; the rest is zero padding.
        """
        height, width = size
        scale = points.new_tensor([width, height])
        normalised = (points / scale) * (labels == 1)[..., None]
        # Positives first, each group in click order: keys made unique by the click's index,
        # so a plain sort (ONNX has no stable one) gives the stable order.
        slots = torch.arange(labels.shape[1], device=labels.device)
        order = torch.argsort((labels != 1).long() * labels.shape[1] + slots, dim=1)
        normalised = torch.gather(normalised, 1, order[..., None].expand(-1, -1, 2))
        # The warning needs the clicks' count on the host: a data-dependent value that a traced
        # or exported graph cannot hold (and need not: it only informs a Python caller).
        tracing = torch.jit.is_tracing() or torch.compiler.is_exporting()
        count = 0 if tracing or not labels.numel() else int((labels == 1).sum(1).max())
        if count > self.max_points and not self._warned_cut:
            logger.warning(
                "SDMatte's point embedding reads %d clicks; a sample has %d positive clicks, "
                "the first %d are used (the prompt map still shows all of them)",
                self.max_points, count, self.max_points,
            )  # fmt: skip
            self._warned_cut = True
        fixed = normalised.new_zeros(points.shape[0], self.max_points, 2)
        kept = min(self.max_points, normalised.shape[1])
        fixed[:, :kept] = normalised[:, :kept]
        return _through(self.points, sinusoidal(fixed.flatten(1), self.point_dim))

    def embed_boxes(self, boxes: Tensor, size: tuple[int, int]) -> Tensor:
        """B x 4 pixel boxes ``(x0, y0, x1, y1)`` -> B x embed_dim."""
        height, width = size
        normalised = boxes / boxes.new_tensor([width, height, width, height])
        return _through(self.box, sinusoidal(normalised, self.box_dim))
