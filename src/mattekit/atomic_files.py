"""Writing output files so that a reader never sees a half-written one.

Every file mattekit writes for users (mattes, cut-outs, records, reports, figures, manifests)
goes through :func:`write_bytes_atomic`: a temporary file in the destination folder, flushed,
then renamed over the destination. :func:`write_png_atomic` encodes an array as PNG first;
:func:`write_alpha_png` quantises a float matte with :func:`unit_to_uint8`, which every matte and
cut-out colour mattekit writes goes through, so all round alike.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import cv2
import numpy as np


def write_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as a PNG so that readers never see a half-written file.

    Args:
        path: destination ending in ``.png``; parent folders are created.
        array: uint8 or uint16; H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA).

    Written by :func:`write_bytes_atomic`.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: write_png_atomic writes PNG files only (suffix .png)")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG needs uint8 or uint16 values, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    elif array.ndim != 2:
        raise ValueError(f"{path}: expected H x W, H x W x 3 or H x W x 4, got {array.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())


def unit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8, the nearest of 0 ... 255 (halves to even).

    Every matte (and cut-out colour) mattekit writes is quantised here, so all round alike.
    """
    return np.round(np.clip(np.asarray(values, np.float32), 0, 1) * 255).astype(np.uint8)


def write_alpha_png(path: str | Path, alpha: np.ndarray) -> None:
    """Write an H x W float alpha in [0, 1] as an 8-bit PNG (:func:`unit_to_uint8`),
    atomically."""
    write_png_atomic(path, unit_to_uint8(alpha))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file.

    The bytes go to a temporary file in the destination folder (same file system; parent
    folders are created), are flushed to disk, then renamed over ``path`` with ``os.replace``
    (atomic on POSIX and Windows). Every file mattekit writes for users goes through here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "xb" (not mkstemp) so the final file gets the usual umask mode.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
