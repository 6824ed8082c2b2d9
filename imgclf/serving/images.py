"""Pictures already in memory — Pillow images and NumPy arrays — made into the model's input by the
same Pillow steps as a decoded file (:func:`imgclf.data.decode.load_image`): EXIF orientation,
:func:`~imgclf.data.decode.to_rgb` (any mode to 8-bit RGB, transparency over white), a bilinear
resize to the run's square size. So ``run.predict(Image.open(path))`` and ``run.predict(path)`` see
the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from imgclf.data.decode import to_rgb
from imgclf.errors import ConfigError, invalid_value

__all__ = ["is_in_memory", "in_memory_images", "in_memory_batches", "fit_image"]

_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
_ALLOWED = (
    "a Pillow image, a list of them, or a NumPy array of pixels: one (H, W, C) image or an "
    "(N, H, W, C) batch with C = 1, 3 or 4, uint8 or float in [0, 255]"
)


def is_in_memory(x: Any) -> bool:
    """Whether ``x`` is pictures in memory (a Pillow image, an array, or a list of them) rather
    than paths.

    >>> is_in_memory(np.zeros((8, 8, 3), np.uint8)), is_in_memory(["a.jpg"])
    (True, False)
    """
    if isinstance(x, np.ndarray | Image.Image):
        return True
    return isinstance(x, list | tuple) and any(isinstance(i, np.ndarray | Image.Image) for i in x)


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _bad(x: Any, why: str = "") -> ConfigError:
    return ConfigError(f"invalid value for `x`: received {_describe(x)}{why}; expected {_ALLOWED}")


def _as_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "iuf":
        raise _bad(a)
    if a.size and (not np.isfinite(a).all() or a.min() < 0 or a.max() > 255):
        raise _bad(a, " with values outside [0, 255]")
    if a.dtype.kind == "f" and a.size and 0 < a.max() <= 1.0:
        raise _bad(a, " with values in [0, 1] (multiply by 255)")
    return np.rint(a).astype(np.uint8)


def _array_images(a: np.ndarray) -> list[Image.Image]:
    batch = a[None] if a.ndim == 3 else a
    if batch.ndim != 4 or batch.shape[-1] not in _CHANNELS or 0 in batch.shape[1:3]:
        raise _bad(a)
    pixels = _as_uint8(batch)
    mode = _CHANNELS[pixels.shape[-1]]
    return [Image.fromarray(p[..., 0] if mode == "L" else p, mode) for p in pixels]


def in_memory_images(x: Any) -> tuple[list[Image.Image], list[str]]:
    """The Pillow images in ``x`` and a name for each (the file it was opened from, or
    ``image[i]``).

    Args:
        x: a Pillow image, an array (one ``(H, W, C)`` image or an ``(N, H, W, C)`` batch), or a
            list of images and arrays.

    Returns:
        The images and their names, in input order.

    Raises:
        ConfigError: ``x`` (or an item of it) is none of those.

    >>> images, names = in_memory_images(np.zeros((2, 5, 7, 3), np.uint8))
    >>> names, images[0].size
    (['image[0]', 'image[1]'], (7, 5))
    """
    items: Sequence[Any] = [x] if isinstance(x, np.ndarray | Image.Image) else x
    images: list[Image.Image] = []
    for item in items:
        if isinstance(item, Image.Image):
            images.append(item)
        elif isinstance(item, np.ndarray):
            images.extend(_array_images(item))
        else:
            raise _bad(item)
    names = [getattr(im, "filename", "") or f"image[{i}]" for i, im in enumerate(images)]
    return images, names


def fit_image(im: Image.Image, size: int) -> np.ndarray:
    """A Pillow image as the model's input: oriented by its EXIF, 8-bit RGB, resized (bilinear) to
    ``size`` x ``size``, as a file's decode does.

    Args:
        im: the image, in any mode.
        size: the run's image size.

    Returns:
        A ``(size, size, 3)`` uint8 array.

    >>> fit_image(Image.new("LA", (40, 30)), 16).shape
    (16, 16, 3)
    """
    im = to_rgb(ImageOps.exif_transpose(im))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def in_memory_batches(
    x: Any, size: int, batch_size: int = 32
) -> Iterator[tuple[list[str], np.ndarray]]:
    """The pictures of ``x`` as the model's input, ``batch_size`` at a time.

    Args:
        x: as for :func:`in_memory_images`.
        size: the run's image size.
        batch_size: images per batch (an integer >= 1).

    Returns:
        An iterator of (names, ``(n, size, size, 3)`` uint8 pixels).

    >>> [(names, pixels.shape) for names, pixels in in_memory_batches(Image.new("L", (9, 9)), 4)]
    [(['image[0]'], (1, 4, 4, 3))]
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise invalid_value("batch_size", batch_size, "an integer >= 1")
    images, names = in_memory_images(x)
    for start in range(0, len(images), batch_size):
        part = images[start : start + batch_size]
        yield names[start : start + batch_size], np.stack([fit_image(im, size) for im in part])
