"""Checks on an uploaded image before and while it is decoded, each failure a 4xx with a clear
message.

Order: too many bytes (the server's limit) → the one verdict every command gives on a file
(:func:`imgclf.data.file_facts.image_verdict`: empty, not an image imgclf reads, a decompression
bomb, too small; read from the header, before any pixel is decoded) → too many pixels (the
server's limit) → decode (a truncated or corrupt file), through THE decode path
(:func:`imgclf.data.decode.decode_image`) — the same pixels as training, ``predict`` and
``evaluate``, and the same words for a refused file.
"""

from __future__ import annotations

import numpy as np

from imgclf.data.decode import decode_failure, decode_image
from imgclf.data.file_facts import image_verdict

__all__ = ["UploadError", "check_and_decode", "status_of", "size_text"]

_STATUS = {  # the verdict's first words -> the HTTP status of the refusal
    "empty file": 400,
    "decompression bomb": 413,
    "too small": 422,
    "cannot read": 422,
}
UNSUPPORTED = 415  # every other verdict: not an image, or a format imgclf cannot read


class UploadError(Exception):
    """An upload refused: the HTTP status to answer, the file's name and the reason.

    Args:
        status: 400, 413, 415 or 422.
        name: the upload's file name.
        reason: why it is refused, without the name (the words ``imgclf predict`` uses).
    """

    def __init__(self, status: int, name: str, reason: str):
        self.status, self.name, self.reason = status, name, reason
        self.message = f"{name!r}: {reason}"
        super().__init__(self.message)


def status_of(reason: str) -> int:
    """The HTTP status refusing a file for ``reason`` (a verdict of ``image_verdict``).

    Args:
        reason: the verdict.
    """
    return next((code for start, code in _STATUS.items() if reason.startswith(start)), UNSUPPORTED)


def size_text(n_bytes: int) -> str:
    """``n_bytes`` in MB, one decimal (``"50.0 MB"``).

    Args:
        n_bytes: a size in bytes.
    """
    return f"{n_bytes / 2**20:.1f} MB"


def check_and_decode(
    name: str,
    data: bytes,
    image_size: int,
    max_bytes: int,
    max_pixels: int,
    size: int | None = None,
) -> np.ndarray:
    """Pixels ``(image_size, image_size, 3)`` of an upload, or :class:`UploadError`.

    Args:
        name: the upload's file name (for messages).
        data: its bytes (at most ``max_bytes + 1`` of them: a longer upload is not read whole).
        image_size: the run's input size. max_bytes: the largest upload accepted. max_pixels: the
        largest width × height accepted. size: the upload's real size in bytes, when known
        (``len(data)`` may be cut at the limit).
    """
    if len(data) > max_bytes:
        real = size_text(size) if size and size > max_bytes else f"over {size_text(max_bytes)}"
        raise UploadError(413, name, f"file is {real}; the limit is {size_text(max_bytes)}")
    reason, width, height = image_verdict(data)
    if reason is not None:
        raise UploadError(status_of(reason), name, reason)
    if width * height > max_pixels:
        raise UploadError(
            413,
            name,
            f"{width}x{height} = {width * height / 1e6:.0f} megapixels; the server's limit is "
            f"{max_pixels / 1e6:g} megapixels",
        )
    try:
        return decode_image(data, image_size)
    except Exception as exc:  # noqa: BLE001  (truncated, corrupt: any decoder failure)
        raise UploadError(422, name, decode_failure(exc)) from None
