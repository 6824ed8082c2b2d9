"""Checks on an uploaded image before and while it is decoded, each failure a 4xx with a clear
message.

Order: empty → too many bytes → not an image format we accept (magic bytes) → too many pixels (read
from the header, before any pixel is decoded: a decompression bomb never gets allocated) → decode
(a truncated or corrupt file). The pixels come from the same decoder as training and ``predict``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imgclf.data.decode import load_image

__all__ = ["UploadError", "check_and_decode", "MAGIC"]

MAGIC = {  # leading bytes of the formats imgclf accepts
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


class UploadError(Exception):
    """An upload refused, with the HTTP status to answer and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _format_of(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in MAGIC.items() if data.startswith(magic)), None)


def check_and_decode(
    name: str, data: bytes, image_size: int, max_bytes: int, max_pixels: int
) -> np.ndarray:
    """Pixels ``(image_size, image_size, 3)`` of an upload, or :class:`UploadError`.

    Args:
        name: the upload's file name (for messages).
        data: its bytes.
        image_size: the run's input size.
        max_bytes: the largest upload accepted.
        max_pixels: the largest width × height accepted.
    """
    if not data:
        raise UploadError(400, f"{name!r} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise UploadError(
            413, f"{name!r} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.1f} MB"
        )
    fmt = _format_of(data)
    if fmt is None:
        raise UploadError(
            415, f"{name!r} is not an image imgclf reads (JPEG, PNG, GIF, BMP, WebP, TIFF)"
        )
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError as exc:  # Pillow's own limit, above ours
        raise UploadError(
            413,
            f"{name!r} is a decompression bomb ({exc}); the limit is {max_pixels / 1e6:.0f} "
            "megapixels",
        ) from None
    except Exception as exc:  # noqa: BLE001  (any header failure means "not readable")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadError(422, f"{name!r} cannot be read as {fmt}: {first}") from None
    if width * height > max_pixels:
        raise UploadError(
            413,
            f"{name!r} is {width}x{height} = {width * height / 1e6:.0f} megapixels; the "
            f"limit is {max_pixels / 1e6:.0f}",
        )
    try:
        return load_image(io.BytesIO(data), image_size)
    except Exception as exc:  # noqa: BLE001  (truncated, corrupt: any decoder failure)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UploadError(422, f"{name!r} cannot be decoded ({fmt}): {first}") from None
