"""The demo's callbacks on a tiny ZIM, and photo files to upload."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit.demo.app import DemoActions
from mattekit.demo.sessions import SessionStore
from mattekit.inference.checkpoint_model import CheckpointModel


@pytest.fixture
def zim_actions(tiny_checkpoint, tmp_path) -> DemoActions:
    runner = CheckpointModel(tiny_checkpoint("zim"))
    return DemoActions(SessionStore(runner, tmp_path / "downloads"))


@pytest.fixture
def photo_file(tmp_path):
    """``photo_file(rgb, name)``: an H x W x 3 RGB array written as a PNG; its path."""

    def write(rgb: np.ndarray, name: str) -> str:
        path = Path(tmp_path) / name
        cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
        return str(path)

    return write
