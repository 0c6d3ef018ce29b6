"""segment-anything's own SAM, the reference of the SAM-based families' speed benchmarks: the
model, one 1024 x 1024 input and one box, in SAM's format and as mattekit's prompt tokens."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from segment_anything import sam_model_registry
from torch import Tensor


@dataclass
class SamReference:
    """SAM (random init, eval mode) and the input every model of the benchmark gets.

    Attributes:
        corners, labels: the box as mattekit's tokens (corners labelled 2 and 3).
    """

    sam: torch.nn.Module
    images: Tensor
    box: Tensor
    corners: Tensor
    labels: Tensor

    def decode(self, embedding: Tensor) -> tuple[Tensor, Tensor]:
        """SAM's prompt encoder and decoder on a cached image embedding (a click)."""
        sam = self.sam
        sparse, dense = sam.prompt_encoder(points=None, boxes=self.box, masks=None)
        pe = sam.prompt_encoder.get_dense_pe()
        return sam.mask_decoder(embedding, pe, sparse, dense, multimask_output=False)

    def forward(self) -> tuple[Tensor, Tensor]:
        """SAM's whole forward on the input."""
        return self.decode(self.sam.image_encoder(self.images))


def sam_reference(variant: str, device: str) -> SamReference:
    """SAM of ``variant`` seeded with 0, a random 1024 x 1024 image and a box on it."""
    torch.manual_seed(0)
    sam = sam_model_registry[variant]().to(device).eval()
    images = torch.randn(1, 3, 1024, 1024, device=device)
    box = torch.tensor([[200.0, 300.0, 700.0, 900.0]], device=device)
    labels = torch.tensor([[2, 3]], device=device)
    return SamReference(sam, images, box, box.view(1, 2, 2), labels)


def sam_benchmark_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every SAM-family speed benchmark takes: variant, runs, device."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--variant", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    return parser
