"""Inspecting one image file: one read gives its hash, format, size, colour mode, perceptual hash
and any problem (a full decode; JPEGs at reduced scale with ``Image.draft``, where the whole
entropy-coded stream is still read, so a truncated file is caught). Touches no file.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from imgclf.data.decode import to_rgb
from imgclf.data.duplicates import phash
from imgclf.progress import track

__all__ = ["EXTENSION_FORMATS", "FileFacts", "inspect_file", "inspect_files"]

EXTENSION_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".jpe": {"JPEG", "MPO"},
    ".png": {"PNG"},
    ".bmp": {"BMP"},
    ".gif": {"GIF"},
    ".webp": {"WEBP"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
}


@dataclass(frozen=True)
class FileFacts:
    """What one read of a file tells: its hash, format, size, mode, perceptual hash, and any
    problem."""

    path: str
    digest: str = ""
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0
    phash: int | None = None
    error: str | None = None  # the file cannot be used
    warning: str | None = None  # usable, but something is off


def inspect_file(path: str) -> FileFacts:
    """Read ``path`` once: hash its bytes, decode it fully (JPEG at reduced scale), hash its pixels.

    Args:
        path: the image file. A problem is returned in ``FileFacts.error``, never raised.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileFacts(path, error=f"cannot read: {exc}".splitlines()[0])
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, mode, (w, h) = im.format, im.mode, im.size
                if fmt in ("JPEG", "MPO"):
                    im.draft("RGB", (64, 64))  # DCT-domain downscale: every byte is still decoded
                im.load()
                small = to_rgb(ImageOps.exif_transpose(im))
                code = phash(small)
    except Exception as exc:  # any decoder failure means "cannot use this file"
        return FileFacts(path, digest, error=f"cannot decode: {exc}".splitlines()[0])
    ext = Path(path).suffix.lower()
    warning = None
    if ext in EXTENSION_FORMATS and fmt not in EXTENSION_FORMATS[ext]:
        warning = f"extension {ext} but content is {fmt} (still used; consider renaming)"
    return FileFacts(path, digest, fmt, mode, w, h, code, None, warning)


def inspect_files(paths: Sequence[str], progress: bool = False) -> list[FileFacts]:
    """:func:`inspect_file` for every path, in a thread pool (Pillow and hashlib release the GIL).

    Args:
        paths: the image files, in the order of the result.
        progress: show the progress (files checked, rate, time left; :mod:`imgclf.progress`).
    """
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        facts = pool.map(inspect_file, paths)
        return list(
            track(
                facts,
                "checking files (decode, hash)",
                total=len(paths),
                unit="files",
                enabled=progress,
            )
        )
