"""Reading the image files of matting data sets (writing outputs: :mod:`mattekit.atomic_files`).

Data sets store the same thing in many ways: an alpha matte as 8-bit grey, 16-bit grey, RGB with
R = G = B, a palette PNG or the alpha channel of an RGBA cutout; a trimap with unknown = 127 or 128.
The readers here turn each into one canonical array and fail loudly, naming the file, on anything
they cannot interpret unambiguously. Every conversion is logged at DEBUG, once per kind per file;
pass a :class:`ConversionLog` as ``on_conversion`` to also get one INFO line per kind per source.

Data set readers ignore EXIF orientation (pixels are read in stored order), so an image and its
matte always line up the way they were stored. Photos a user points at (``mattekit matte``, the
demo, ``predict`` on a photo folder) are read with :func:`read_photo`, which turns them the way
a viewer displays them, so prompts and outputs are in the pixels the user sees.

A file larger than ``MATTEKIT_MAX_IMAGE_PIXELS`` pixels (environment variable, default 100
million: 10000 x 10000) is an error before it is decoded: a valid 20000 x 20000 PNG would
otherwise take gigabytes of memory (PIL's decompression-bomb idea). The variable reaches data
loader workers too.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TRIMAP_VALUES = (0, 128, 255)

# Lossy codecs (JPEG, WebP) do not keep R = G = B exactly for a grey picture saved as colour.
LOSSY_CHANNEL_TOLERANCE = 4

ConversionCallback = Callable[[str, Path], None]

MAX_PIXELS_VARIABLE = "MATTEKIT_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000

_warned_keys: set[str] = set()


class ImageReadError(ValueError):
    """A file exists but cannot be decoded or interpreted; the message names the file."""


class ConversionLog:
    """Logs each kind of conversion once, at INFO, for one source (per process).

    Pass an instance as ``on_conversion`` to the readers; every file still gets its DEBUG line.

    Args:
        source_name: name shown in the INFO line.
    """

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.seen: set[str] = set()

    def __call__(self, kind: str, path: Path) -> None:
        if kind in self.seen:
            return
        self.seen.add(kind)
        logger.info(
            "%s: %s (first file: %s; further files logged at DEBUG)", self.source_name, kind, path
        )


def warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen in this process (not again every epoch)."""
    if key in _warned_keys:
        return
    _warned_keys.add(key)
    logger.warning(message, *args)


def _note(kind: str, path: Path, on_conversion: ConversionCallback | None) -> None:
    logger.debug("%s: %s", path, kind)
    if on_conversion is not None:
        on_conversion(kind, path)


def _decode(path: str | Path) -> tuple[np.ndarray, bytes]:
    """Decode a file as stored (any depth, any channels) and return it with its first bytes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    # np.fromfile + imdecode instead of imread: works with non-ASCII paths on every platform and
    # lets an empty file be told apart from a corrupt one.
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{path}: file is empty")
    _check_pixel_count(path, data)
    try:
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageReadError(f"{path}: cannot decode image ({error})") from error
    if array is None or array.size == 0:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    return array, data[:32].tobytes()


def max_pixels() -> int:
    """The pixel limit: ``MATTEKIT_MAX_IMAGE_PIXELS``, else 100 million."""
    value = os.environ.get(MAX_PIXELS_VARIABLE, "")
    try:
        return int(value) if value else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_VARIABLE}={value!r}: expected a whole number") from None


def _check_pixel_count(path: Path, data: np.ndarray) -> None:
    """Raise :class:`ImageReadError` when the header announces more pixels than the limit.

    Only the header is read (PIL opens files lazily); a format PIL does not know is left to
    OpenCV unchecked.
    """
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data.tobytes())) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        width = height = None
    except Exception:  # not a format PIL reads: OpenCV decides
        return
    if width is None or width * height > limit:
        size = "beyond PIL's own limit" if width is None else f"{width} x {height}"
        raise ImageReadError(
            f"{path}: {size} pixels, more than the {limit} allowed; set "
            f"{MAX_PIXELS_VARIABLE} to read larger files"
        )


def _is_palette_png(header: bytes) -> bool:
    # IHDR colour type (byte 25) 3 = indexed colour.
    return header.startswith(b"\x89PNG\r\n\x1a\n") and len(header) > 25 and header[25] == 3


def _is_lossy(header: bytes) -> bool:
    return header.startswith(b"\xff\xd8\xff") or (header[:4] == b"RIFF" and header[8:12] == b"WEBP")


def _grey_from_colour(
    colour: np.ndarray, path: Path, header: bytes, on_conversion: ConversionCallback | None
) -> np.ndarray:
    """H x W x 3 colour channels that should all hold the same value -> H x W."""
    first = colour[..., 0]
    if np.array_equal(first, colour[..., 1]) and np.array_equal(first, colour[..., 2]):
        _note("3-channel file with R = G = B read as one channel", path, on_conversion)
        return first
    wide = colour.astype(np.int32)
    difference = int(
        max(np.abs(wide[..., 0] - wide[..., 1]).max(), np.abs(wide[..., 0] - wide[..., 2]).max())
    )
    if _is_lossy(header) and difference <= LOSSY_CHANNEL_TOLERANCE:
        _note("lossy 3-channel file with near-equal channels averaged", path, on_conversion)
        return np.round(wide.mean(axis=2)).astype(colour.dtype)
    raise ImageReadError(
        f"{path}: the colour channels differ (up to {difference} levels); a matte, trimap or mask "
        "stored in colour must have R = G = B"
    )


def _single_channel(
    array: np.ndarray, path: Path, header: bytes, on_conversion: ConversionCallback | None
) -> np.ndarray:
    """Decoded array (cv2 channel order) of a one-value-per-pixel file -> H x W, dtype kept.

    Rules for files with an alpha channel (RGBA, grey + alpha) that are not palette PNGs:
    a constant alpha channel is ignored (opaque export); otherwise the alpha channel is the value
    (cutout or matte-in-alpha export) unless the colour channels are a varying grey that disagrees
    with it, which is ambiguous and an error.
    """
    if array.ndim == 2:
        return array
    channels = array.shape[2]
    if channels == 1:
        return array[..., 0]
    if _is_palette_png(header):
        # cv2 expands the palette to colours (BGRA when the palette has transparency): the values
        # are the palette's colours; palette transparency is display metadata, not the matte.
        _note("palette PNG decoded to its palette colours", path, on_conversion)
        return _grey_from_colour(array[..., :3], path, header, None)
    if channels == 3:
        return _grey_from_colour(array, path, header, on_conversion)
    if channels not in (2, 4):
        raise ImageReadError(f"{path}: unsupported number of channels {channels}")
    colour = array[..., :-1] if channels == 4 else array[..., :1]
    alpha_channel = array[..., -1]
    if alpha_channel.min() == alpha_channel.max():
        _note("constant alpha channel ignored, value read from the colour", path, on_conversion)
        if channels == 2:
            return colour[..., 0]
        return _grey_from_colour(colour, path, header, on_conversion)
    grey = colour[..., 0]
    colour_is_grey = channels == 2 or (
        np.array_equal(grey, colour[..., 1]) and np.array_equal(grey, colour[..., 2])
    )
    if colour_is_grey and grey.min() != grey.max() and not np.array_equal(grey, alpha_channel):
        raise ImageReadError(
            f"{path}: ambiguous file: both its grey colour and its alpha channel vary and differ; "
            "store the matte as a single-channel PNG"
        )
    _note("value taken from the file's alpha channel", path, on_conversion)
    return alpha_channel


def _float_in_unit_range(array: np.ndarray, path: Path) -> np.ndarray:
    values = array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        raise ImageReadError(
            f"{path}: {int((~finite).sum())} of {values.size} values are NaN or infinite; "
            "expected [0, 1]"
        )
    if values.size and (values.min() < -1e-3 or values.max() > 1 + 1e-3):
        raise ImageReadError(
            f"{path}: floating-point file with values in [{values.min()}, {values.max()}]; "
            "expected [0, 1]"
        )
    return np.clip(values, 0.0, 1.0)


def _to_uint8(
    array: np.ndarray, path: Path, on_conversion: ConversionCallback | None
) -> np.ndarray:
    """Any supported depth -> uint8 (same shape)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        _note("16-bit values scaled to 8 bits", path, on_conversion)
        # Rounded division by 257 maps 0..65535 onto 0..255 exactly at both ends.
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        _note("floating-point values in [0, 1] scaled to 8 bits", path, on_conversion)
        return np.round(_float_in_unit_range(array, path) * 255).astype(np.uint8)
    raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")


def read_image(path: str | Path, on_conversion: ConversionCallback | None = None) -> np.ndarray:
    """Read a photo as H x W x 3 uint8 RGB.

    Grey becomes RGB, an alpha channel is dropped, 16-bit and float [0, 1] become 8-bit.
    Raises ``FileNotFoundError`` / :class:`ImageReadError` naming the file.
    """
    path = Path(path)
    array, _ = _decode(path)
    array = _to_uint8(array, path, on_conversion)
    if array.ndim == 3 and array.shape[2] in (2, 4):
        _note("alpha channel of the image dropped", path, on_conversion)
        array = array[..., :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        _note("grey image expanded to RGB", path, on_conversion)
        return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=2))
    if array.shape[2] != 3:
        raise ImageReadError(f"{path}: unsupported number of channels {array.shape[2]}")
    return np.ascontiguousarray(array[..., ::-1])  # cv2 decodes BGR


# EXIF orientation tag (0x0112) -> the array operation that shows the stored pixels upright.
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_ORIENTATION_TAG = 0x0112


def exif_orientation(path: str | Path) -> int:
    """The file's EXIF orientation (1-8; 1, upright, when it has none or is not an EXIF format).

    Only the header is read.
    """
    try:
        with Image.open(path) as image:
            value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a format PIL does not read carries no EXIF mattekit can honour
        return 1
    return value if value in _UPRIGHT else 1


def photo_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of a photo as displayed (:func:`read_photo`), from its header only.

    Raises:
        FileNotFoundError / :class:`ImageReadError` naming the file when it cannot be opened.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # a format only OpenCV reads: decode it (EXIF-free formats)
        return read_image(path).shape[:2]
    return (width, height) if exif_orientation(path) in (5, 6, 7, 8) else (height, width)


def read_photo(path: str | Path, on_conversion: ConversionCallback | None = None) -> np.ndarray:
    """Read a photo as H x W x 3 uint8 RGB *as displayed*: :func:`read_image`, then turned by
    its EXIF orientation: a phone's portrait JPEG stored 4032 wide and 3024 high with
    orientation 6 comes back 4032 high and 3024 wide, as a viewer shows it.

    For photos users point at (prompts are given in displayed pixels, and outputs must lie on
    the photo they see); data set readers keep the stored order (see the module docstring).
    The turn is logged as a conversion.
    """
    path = Path(path)
    image = read_image(path, on_conversion)
    orientation = exif_orientation(path)
    if orientation == 1:
        return image
    _note(f"EXIF orientation {orientation} applied (as displayed)", path, on_conversion)
    return np.ascontiguousarray(_UPRIGHT[orientation](image))


def read_alpha(path: str | Path, on_conversion: ConversionCallback | None = None) -> np.ndarray:
    """Read an alpha matte as H x W float32 in [0, 1].

    Accepts 8-bit (/255) or 16-bit (/65535) grey, colour with R = G = B, palette PNGs (decoded to
    their palette's grey levels), float [0, 1] TIFFs, and files with an alpha channel (see
    :func:`_single_channel` for which channel is used). Unequal colour channels are an error.
    """
    path = Path(path)
    array, header = _decode(path)
    grey = _single_channel(array, path, header, on_conversion)
    if grey.dtype == np.uint8:
        return grey.astype(np.float32) / np.float32(255)
    if grey.dtype == np.uint16:
        _note("16-bit alpha divided by 65535", path, on_conversion)
        return grey.astype(np.float32) / np.float32(65535)
    if np.issubdtype(grey.dtype, np.floating):
        return _float_in_unit_range(grey, path)
    raise ImageReadError(f"{path}: unsupported pixel type {grey.dtype}")


def read_trimap(path: str | Path, on_conversion: ConversionCallback | None = None) -> np.ndarray:
    """Read a trimap as H x W uint8 in {0, 128, 255} (background, unknown, foreground).

    Accepts the same encodings as :func:`read_alpha` (at 8 bits). Values outside {0, 128, 255}
    are snapped to the nearest label (< 64 -> 0, 64..191 -> 128, >= 192 -> 255): unknown stored as
    127 is a common convention and only logged at DEBUG; any other stray value (JPEG noise,
    resampled trimaps) is snapped with a WARNING, once per file.
    """
    path = Path(path)
    array, header = _decode(path)
    trimap = _to_uint8(_single_channel(array, path, header, on_conversion), path, on_conversion)
    is_label = (trimap == 0) | (trimap == 128) | (trimap == 255)
    if is_label.all():
        return np.ascontiguousarray(trimap)
    stray_values = np.unique(trimap[~is_label])
    snapped = np.where(trimap < 64, 0, np.where(trimap < 192, 128, 255)).astype(np.uint8)
    if stray_values.tolist() == [127]:
        _note("trimap unknown label 127 mapped to 128", path, on_conversion)
    else:
        warn_once(
            f"trimap:{path}",
            "%s: %d trimap pixels hold values outside {0, 128, 255} (%s); snapped to the nearest",
            path,
            int((~is_label).sum()),
            ", ".join(str(v) for v in stray_values[:8]) + (" ..." if stray_values.size > 8 else ""),
        )
        _note("trimap values snapped to {0, 128, 255}", path, on_conversion)
    return snapped


def read_mask(path: str | Path, on_conversion: ConversionCallback | None = None) -> np.ndarray:
    """Read a binary mask as H x W bool: value > 127 (8-bit), > 32767 (16-bit), > 0.5 (float).

    Accepts the same encodings as :func:`read_alpha`.
    """
    path = Path(path)
    array, header = _decode(path)
    grey = _single_channel(array, path, header, on_conversion)
    if grey.dtype == np.uint8:
        return grey > 127
    if grey.dtype == np.uint16:
        return grey > 32767
    if np.issubdtype(grey.dtype, np.floating):
        return _float_in_unit_range(grey, path) > 0.5
    raise ImageReadError(f"{path}: unsupported pixel type {grey.dtype}")


def read_json(path: Path, description: str) -> object:
    """Parse a json file; a missing or malformed file is an error naming it and what it is for.

    NaN and Infinity (which Python's json accepts) are errors too: they would reach the model
    as prompt coordinates.
    """

    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: {constant} in {description}; expected finite numbers")

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)
    except FileNotFoundError:
        raise FileNotFoundError(f"{description} not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid json ({error})") from error
