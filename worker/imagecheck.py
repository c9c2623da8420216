"""Image size from the file header, read before any decoding (no decompression bombs).

`image_size(data)` understands PNG, JPEG, WebP, BMP and TIFF headers;
`check_image(data, max_pixels, max_side)` refuses what is too large or unknown.
"""

from __future__ import annotations

import struct

FORMATS = "PNG, JPEG, WebP, BMP or TIFF"


class ImageTooLarge(ValueError):
    """The header declares more pixels (or a longer side) than allowed."""


class UnreadableImage(ValueError):
    """Not an image in a supported format, or a damaged header."""


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by the header; `UnreadableImage` when there is none."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"BM") and len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except (struct.error, IndexError):
        pass
    raise UnreadableImage(f"not a readable image ({FORMATS})")


def check_image(data: bytes, *, max_pixels: int, max_side: int, name: str = "image") -> None:
    """Raise `ImageTooLarge` / `UnreadableImage` (both `ValueError`s) naming `name`."""
    try:
        width, height = image_size(data)
    except UnreadableImage as error:
        raise UnreadableImage(f"`{name}`: {error}") from None
    if width <= 0 or height <= 0:
        raise UnreadableImage(f"`{name}`: the header declares an empty image")
    if max(width, height) > max_side:
        raise ImageTooLarge(
            f"`{name}`: {width}x{height} has a side over the limit of {max_side} pixels"
        )
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"`{name}`: {width}x{height} = {width * height} pixels is over the limit of "
            f"{max_pixels}"
        )


def _jpeg_size(data: bytes) -> tuple[int, int]:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise UnreadableImage("damaged JPEG header")
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        if marker == 0xD9 or length < 2:
            break
        offset += 2 + length
    raise UnreadableImage("JPEG without a frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise UnreadableImage("unknown WebP chunk")


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for n in range(count):
        entry = data[ifd + 2 + 12 * n : ifd + 14 + 12 * n]
        tag, kind, _ = struct.unpack(order + "HHI", entry[:8])
        if tag in (256, 257):
            value = struct.unpack(
                order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12]
            )
            found[tag] = value[0]
    if 256 not in found or 257 not in found:
        raise UnreadableImage("TIFF without width and height")
    return found[256], found[257]
