"""Where an image file becomes pixels: :func:`decode_image` is THE decode path of imgclf.

Training, evaluation, ``imgclf predict``, the Python API and ``imgclf serve`` all turn a file into
the model's input through :func:`decode_image` (the tf.data pipeline runs its two routes in the
graph, :func:`imgclf.data.native.native_pixels` and :func:`decode_with_pillow`, chosen by the
same :func:`imgclf.data.native.jpeg_ratio`), so one file gets one answer everywhere:

* a plain JPEG (baseline or progressive, no EXIF orientation) is decoded by TensorFlow's libjpeg
  kernel at 1/1, 1/2, 1/4 or 1/8 scale and resized bilinearly with antialiasing
  (:mod:`imgclf.data.native`);
* every other file is decoded by Pillow (:func:`decode_with_pillow`): any format we accept (JPEG,
  PNG, BMP, GIF's first frame, WebP, TIFF), EXIF orientation applied, every colour mode made 8-bit
  RGB (transparency over white), resized bilinearly. Pillow releases the GIL while it decodes, so
  the pipeline runs this in parallel.

Whether a file is usable at all (empty, not an image, too small, a decompression bomb) is decided
before decoding, by :func:`imgclf.data.file_facts.image_verdict`.
"""

from __future__ import annotations

import io
import os
import threading
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "decode_image",
    "decode_with_pillow",
    "image_to_pixels",
    "load_image",
    "to_rgb",
    "decode_failure",
    "DecodeLog",
]

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: 16-bit and float scaled, transparency over white.

    Args:
        im: a Pillow image in any mode; returned as is when already RGB without transparency.
    """
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode in _SIXTEEN_BIT:
            arr = arr / 257.0
        else:  # 32-bit int or float: stretch the used range
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if "transparency" in im.info:  # palette index or colour key (RGB, L) marked transparent
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def decode_image(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """THE decode path: an image file (its path or its bytes) → the model's input array.

    Every way a file reaches a model goes through this function or, inside the tf.data pipeline,
    through the very same two routes: a plain JPEG through TensorFlow's kernels
    (:func:`imgclf.data.native.native_pixels`), anything else, or a JPEG the kernel rejects,
    through :func:`decode_with_pillow`. Exports reproduce it; do not resize images another way.

    Args:
        source: a file path, or the file's bytes (an upload).
        size: side of the square output in pixels (the run's ``image_size``).

    Returns:
        A ``(size, size, 3)`` uint8 RGB array (aspect ratio not kept).

    Raises:
        OSError or ValueError: the file cannot be decoded (message: see :func:`decode_failure`).
    """
    from imgclf.data.native import HEAD_BYTES, RATIOS, jpeg_ratio

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    path = None if data is not None else os.fspath(source)
    if data is not None:
        head = data[:HEAD_BYTES]
    else:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    ratio = jpeg_ratio(head, size)
    if ratio:
        import tensorflow as tf

        from imgclf.data.native import native_pixels

        contents = tf.io.read_file(path) if data is None else tf.constant(data)
        try:
            return native_pixels(contents, tf.constant(RATIOS.index(ratio)), size).numpy()
        except tf.errors.OpError:  # as in the pipeline: Pillow decodes it or says why not
            pass
    return decode_with_pillow(io.BytesIO(data) if data is not None else path, size)


def decode_with_pillow(source: str | BinaryIO, size: int) -> np.ndarray:
    """The Pillow route of :func:`decode_image` (call that instead, unless you are the pipeline).

    Args:
        source: the image file, or a binary stream of its bytes.
        size: side of the square output in pixels (bilinear resize, aspect ratio not kept).
    """
    with Image.open(source) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # DCT-domain downscale, never below the requested size
        return image_to_pixels(im, size)


def image_to_pixels(im: Image.Image, size: int) -> np.ndarray:
    """A Pillow image already in memory → the model's input array, as :func:`decode_with_pillow`
    finishes a file: EXIF orientation applied, 8-bit RGB (transparency over white), bilinear resize.

    For pictures a caller already holds as ``PIL.Image`` objects; a file (path or bytes) goes
    through :func:`decode_image`, which also takes the JPEG route the pipeline takes.

    Args:
        im: the image (its first frame is used).
        size: side of the square output in pixels.
    """
    im = ImageOps.exif_transpose(im)  # loads the (first frame of the) image
    im = to_rgb(im)
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


# The Pillow route under the name it always had (the report's thumbnails and Grad-CAM pictures, the
# pixels an export's preprocess.py reproduces); a file on its way to a model goes through
# decode_image, which takes the pipeline's JPEG route too.
load_image = decode_with_pillow


def decode_failure(exc: BaseException) -> str:
    """The one-line reason every front end gives for a file that cannot be decoded.

    Args:
        exc: the decoder's exception.
    """
    first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot decode: {first}"


class DecodeLog:
    """Thread-safe record of the files that failed to decode in a pipeline, with their reasons."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: dict[str, str] = {}

    def record(self, path: str, exc: BaseException) -> None:
        """Record that ``path`` failed to decode with ``exc``."""
        self.reject(path, decode_failure(exc))

    def reject(self, path: str, reason: str) -> None:
        """Record that ``path`` is not used, for ``reason`` (e.g. the header check's verdict)."""
        with self._lock:
            self.failures[path] = reason
