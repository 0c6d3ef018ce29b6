"""Inputs and checks shared by the SDMatte tests."""

import torch
from torch import nn

from mattekit.models.sdmatte.embeddings import CoordinateEmbedding
from mattekit.models.sdmatte.torch_model import SDMattePrompt


def net_inputs(
    height: int = 64, width: int = 64, seed: int = 0
) -> tuple[torch.Tensor, SDMattePrompt]:
    """``(image, prompt)`` for two samples: clicks for the first, a box for the second, the
    second transparent."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, height, width, generator=generator)
    x0, y0, x1, y1 = width // 8, height // 4, width // 2, 3 * height // 4
    prompt_map = torch.zeros(2, 1, height, width)
    prompt_map[..., y0:y1, x0:x1] = 1
    prompt = SDMattePrompt(
        prompt_map=prompt_map,
        boxes=torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32).expand(2, 4),
        points=torch.rand(2, 3, 2, generator=generator) * torch.tensor([width, height]),
        point_labels=torch.tensor([[1, 0, -1], [1, 1, 0]]),
        use_points=torch.tensor([True, False]),
        transparent=torch.tensor([0.0, 1.0]),
    )
    return image, prompt


def randomise_coordinate_embedding(embedding: CoordinateEmbedding) -> None:
    """Move the zero-initialised output layers, so that the embeddings reach the UNet."""
    with torch.no_grad():
        for layer in (embedding.points.linear_2, embedding.box.linear_2):
            nn.init.normal_(layer.weight, std=0.5)
            nn.init.normal_(layer.bias, std=0.5)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    state_a, state_b = a.state_dict(), b.state_dict()
    return state_a.keys() == state_b.keys() and all(
        torch.equal(value, state_b[key]) for key, value in state_a.items()
    )
