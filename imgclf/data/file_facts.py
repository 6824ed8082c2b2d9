"""Inspecting one image file: one read gives its hash, format, size, colour mode, perceptual hash
and any problem (a full decode; JPEGs at reduced scale with ``Image.draft``, where the whole
entropy-coded stream is still read, so a truncated file is caught). Touches no file.

:func:`image_verdict` is the one verdict on whether a file can be used at all (empty, not an
image, a format imgclf cannot read, a decompression bomb, too small): the header check the scan
applies in ``doctor`` and ``train``, given in the same words by ``predict``, ``evaluate``, the
Python API and ``serve``.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from imgclf.constants import POOL_MIN_FILES
from imgclf.data.decode import to_rgb
from imgclf.data.duplicates import phash, pixel_key
from imgclf.data.scan import check_header
from imgclf.progress import track

__all__ = [
    "EXTENSION_FORMATS",
    "FileFacts",
    "inspect_file",
    "inspect_files",
    "image_verdict",
    "image_verdicts",
]

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
    pixels: str | None = None  # pictures too small for pHash: a digest of their pixels


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
    buffer = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(buffer) as im:
                fmt, mode, (w, h) = im.format, im.mode, im.size
                if fmt in ("JPEG", "MPO"):
                    im.draft("RGB", (64, 64))  # DCT-domain downscale: every byte is still decoded
                im.load()
                small = to_rgb(ImageOps.exif_transpose(im))
                code, pixels = phash(small), pixel_key(small)
    except Exception as exc:  # any decoder failure means "cannot use this file"
        # Pillow names an in-memory file by its address: name the file instead (one answer per file)
        reason = str(exc).replace(repr(buffer), repr(Path(path).name))
        return FileFacts(path, digest, error=f"cannot decode: {reason}".splitlines()[0])
    ext = Path(path).suffix.lower()
    warning = None
    if ext in EXTENSION_FORMATS and fmt not in EXTENSION_FORMATS[ext]:
        warning = f"extension {ext} but content is {fmt} (still used; consider renaming)"
    return FileFacts(path, digest, fmt, mode, w, h, code, None, warning, pixels)


def inspect_files(
    paths: Sequence[str], progress: bool = False, workers: int | None = None
) -> list[FileFacts]:
    """:func:`inspect_file` for every path, on every core: a process pool of ``os.cpu_count()``
    workers fed in chunks, results in the order of ``paths`` (the same facts as one process). Fewer
    than :data:`~imgclf.constants.POOL_MIN_FILES` files are checked here, where starting a pool
    would cost more than it saves. A pool is used rather than threads because the work per small
    file is mostly Python (decoding setup, the perceptual hash), which holds the GIL
    (``bench/bench_doctor.py`` measures both).

    Args:
        paths: the image files, in the order of the result.
        progress: show the progress (files checked, rate, time left; :mod:`imgclf.progress`).
        workers: processes to use; ``None``: one per core; 1: none (this process only).
    """
    workers = workers or os.cpu_count() or 1
    what = "checking files (decode, hash)"
    if workers < 2 or len(paths) < POOL_MIN_FILES:
        facts = map(inspect_file, paths)
        return list(track(facts, what, total=len(paths), unit="files", enabled=progress))
    chunk = max(1, min(64, len(paths) // (workers * 8)))  # small chunks: a steady progress bar
    with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        facts = pool.map(inspect_file, paths, chunksize=chunk)
        return list(track(facts, what, total=len(paths), unit="files", enabled=progress))


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` (instant) unless TensorFlow is loaded here: its threads make a fork unsafe, so the
    workers then come from a fresh ``forkserver`` process."""
    return multiprocessing.get_context("forkserver" if "tensorflow" in sys.modules else "fork")


def image_verdict(source: str | bytes) -> tuple[str | None, int, int]:
    """Whether a file can be used: (the reason it cannot, or None; width; height), from its header.

    The check the scan runs on every file of a data folder (:func:`imgclf.data.scan.check_header`),
    so ``doctor``, ``train``, ``predict``, ``evaluate``, the Python API and ``serve`` refuse the
    same files with the same words.

    Args:
        source: the image file's path, or its bytes (an upload).
    """
    if not isinstance(source, (bytes, bytearray, memoryview)):
        return check_header(str(source))
    with tempfile.NamedTemporaryFile(prefix="imgclf-upload-") as f:  # the check reads a file
        f.write(source)
        f.flush()
        reason, width, height = check_header(f.name)
    return (None if reason is None else reason.replace(f.name, "the upload")), width, height


def image_verdicts(paths: Sequence[str]) -> list[tuple[str | None, int, int]]:
    """:func:`image_verdict` of every path, in a few threads (headers are small reads).

    Args:
        paths: the image files, in the order of the result.
    """
    if len(paths) < 8:
        return [image_verdict(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 4)) as pool:
        return list(pool.map(image_verdict, paths))
