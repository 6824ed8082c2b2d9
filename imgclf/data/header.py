"""One image file's verdict from its header alone (no full decode): usable, with its size, or the
reason it is not — empty, not an image, a format imgclf does not read, a decompression bomb, too
small."""

from __future__ import annotations

import os

from imgclf.data.formats import UNREADABLE, format_from_magic, unreadable_reason

__all__ = ["MAX_PIXELS", "MIN_SIDE", "SUPPORTED_FORMATS", "check_header"]

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
MIN_SIDE = 8
MAX_PIXELS = (
    178_956_970  # Pillow's own decompression-bomb limit (2 × Image.MAX_IMAGE_PIXELS default)
)


def check_header(path: str) -> tuple[str | None, int, int]:
    """Open ``path``'s header (no full decode). Returns (reason it is unusable or None, width,
    height).

    Args:
        path: the image file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)", 0, 0
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as exc:
        return f"decompression bomb: {exc}".split(" could be")[0].rstrip(", "), 0, 0
    except UnidentifiedImageError:
        return _unidentified(path), 0, 0
    except OSError as exc:
        return f"cannot read: {exc}", 0, 0
    if fmt not in SUPPORTED_FORMATS:
        return (
            (unreadable_reason(fmt) if fmt in UNREADABLE else f"unsupported image format {fmt}"),
            w,
            h,
        )
    if w * h > MAX_PIXELS:
        return f"decompression bomb: {w}x{h} pixels", w, h
    if min(w, h) < MIN_SIDE:
        return f"too small: {w}x{h} pixels (minimum side {MIN_SIDE})", w, h
    return None, w, h


def _unidentified(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fmt = format_from_magic(fh.read(16))
    except OSError as exc:
        return f"cannot read: {exc}"
    return unreadable_reason(fmt) if fmt else "not an image (unrecognised content)"
