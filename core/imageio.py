"""Image files in and out: the only module of the engine that touches files.

Images inside the engine are float32 arrays of shape (H, W, 3), RGB, in [0, 1].
Grayscale inputs are repeated into three channels; 16-bit inputs are scaled by
1/65535; an alpha channel is composited over white, so a transparent region
reads as white rather than as whatever colour the pixels hold under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

MAX_DIMENSION = 16384


def describe_size(shape: tuple[int, ...]) -> str:
    """An (H, W, ...) shape as image tools write sizes: width x height."""
    return f"{shape[1]}x{shape[0]}"


def decode_image(data: bytes, *, name: str = "image") -> np.ndarray:
    """Decode PNG/JPEG/WebP/... bytes to float32 RGB in [0, 1], shape (H, W, 3)."""
    raw = _decode(data, name)
    return _to_rgb_float(raw)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file; see `decode_image`."""
    return decode_image(_read_bytes(path), name=str(path))


def decode_mask(data: bytes, *, name: str = "mask") -> np.ndarray:
    """Decode a mask image to a boolean (H, W) array: True (white, > 0.5) = hole."""
    grey = decode_image(data, name=name).mean(axis=2)
    return grey > 0.5


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask file; see `decode_mask`."""
    return decode_mask(_read_bytes(path), name=str(path))


def encode_png(image: np.ndarray) -> bytes:
    """Encode a float RGB image in [0, 1] as 8-bit PNG bytes."""
    bgr = cv2.cvtColor(_to_uint8(image), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return buffer.tobytes()


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a float RGB image in [0, 1]; the format follows the file extension."""
    path = Path(path)
    bgr = cv2.cvtColor(_to_uint8(image), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise ValueError(f"cannot write an image with extension `{path.suffix}`")
    path.write_bytes(buffer.tobytes())


def as_image(image: Any, name: str = "image") -> np.ndarray:
    """Check an in-memory image and return it as C-contiguous float32 (H, W, 3).

    Accepts float arrays in [0, 1] and uint8 (scaled by 1/255); 2-D arrays are
    taken as grey and repeated into RGB. Raises `ValueError` naming `name`.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"`{name}` must be an (H, W, 3) RGB image, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise ValueError(f"`{name}` must hold finite floats in [0, 1] (or uint8)")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"`{name}` values must lie in [0, 1]")
    return np.ascontiguousarray(array, dtype=np.float32)


def check_same_size(
    image: np.ndarray,
    name: str,
    source: np.ndarray,
    why: str = "they must have the same size",
) -> None:
    """ValueError naming both sizes unless `image` has the height and width of `source`."""
    if image.shape[:2] != source.shape[:2]:
        raise ValueError(
            f"`{name}` is {describe_size(image.shape)} but `source` is "
            f"{describe_size(source.shape)}; {why}"
        )


JPEG_MAGIC = b"\xff\xd8"


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`{path}` is not a file")
    return path.read_bytes()


def _decode(data: bytes, name: str) -> np.ndarray:
    if not data:
        raise ValueError(f"`{name}` is empty")
    buffer = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_UNCHANGED keeps alpha and 16 bits but ignores the EXIF orientation of
    # a phone's JPEG; a JPEG has neither, so it is decoded upright instead.
    upright = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
    flags = upright if data[:2] == JPEG_MAGIC else cv2.IMREAD_UNCHANGED
    raw = cv2.imdecode(buffer, flags)
    if raw is None or raw.size == 0:
        raise ValueError(f"`{name}` is not a readable image (PNG, JPEG, WebP, BMP or TIFF)")
    if max(raw.shape[:2]) > MAX_DIMENSION:
        raise ValueError(f"`{name}` is larger than {MAX_DIMENSION} pixels on a side")
    return raw


def _to_rgb_float(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        scaled = raw.astype(np.float32) / 255.0
    elif raw.dtype == np.uint16:
        scaled = raw.astype(np.float32) / 65535.0
    else:
        scaled = np.clip(raw.astype(np.float32), 0.0, 1.0)
    if scaled.ndim == 2:
        scaled = scaled[:, :, None]
    channels = scaled.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(scaled, 3, axis=2))
    if channels == 4:
        alpha = scaled[:, :, 3:4]
        scaled = scaled[:, :, :3] * alpha + (1.0 - alpha)
    rgb = cv2.cvtColor(np.ascontiguousarray(scaled[:, :, :3]), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
