"""Where an image file becomes pixels: the one decoder used by training, evaluation and prediction.

Pillow handles every format we accept (JPEG, PNG, BMP, GIF's first frame, WebP, TIFF), applies EXIF
orientation, and decodes large JPEGs directly at 1/2, 1/4 or 1/8 scale (``Image.draft``) when the
target size allows. Every colour mode ends as 8-bit RGB. Pillow releases the GIL while it decodes,
so the tf.data pipeline runs this in parallel.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image, ImageOps

__all__ = ["load_image", "to_rgb", "DecodeLog"]

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


def load_image(path: str, size: int) -> np.ndarray:
    """Decode ``path`` to a ``(size, size, 3)`` uint8 array. Raises OSError/ValueError if it cannot.

    Args:
        path: the image file.
        size: side of the square output in pixels (bilinear resize, aspect ratio not kept).
    """
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # DCT-domain downscale, never below the requested size
        im = ImageOps.exif_transpose(im)  # loads the (first frame of the) image
        im = to_rgb(im)
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


class DecodeLog:
    """Thread-safe record of the files that failed to decode in a pipeline, with their reasons."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: dict[str, str] = {}

    def record(self, path: str, exc: BaseException) -> None:
        reason = f"cannot decode: {exc}".splitlines()[0]
        with self._lock:
            self.failures[path] = reason
