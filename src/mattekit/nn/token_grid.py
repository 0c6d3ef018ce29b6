"""Which token grid an attention layer of a UNet works on.

Attention processors see B x L x C tokens, not the grid they came from. The grid follows from the
UNet's input size: level ``k`` of an ``(h, w)`` latent has ``ceil(h / 2^k)`` x ``ceil(w / 2^k)``
tokens, as the UNet's stride-2 convolutions give.
"""

from __future__ import annotations


def level_grid(latent_size: tuple[int, int], num_tokens: int) -> tuple[int, int]:
    """``(h, w)`` of the level of an ``latent_size`` latent that has ``num_tokens`` tokens.

    Raises:
        ValueError when no level has that many tokens (the processor was not given the UNet's
        input size).
    """
    height, width = latent_size
    while height * width > num_tokens:
        height, width = -(-height // 2), -(-width // 2)
    if height * width != num_tokens:
        raise ValueError(
            f"no level of a {tuple(latent_size)} latent has {num_tokens} tokens; the attention "
            "processor needs the UNet's input size"
        )
    return height, width
