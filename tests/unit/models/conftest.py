"""Fixtures of the model tests."""

import pytest
import torch
from sam_cases import tiny_sam


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    """A tiny SAM in the official format (segment-anything's ``Sam`` state dict) and its file."""
    torch.manual_seed(0)
    sam = tiny_sam()
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return sam, path
