"""Use this exported model without imgclf: decode, resize and calibrate exactly as imgclf does.

Copied by ``imgclf export`` into every export folder, beside the model, ``labels.txt`` and
``parity.json`` (which gives the image size and the calibration temperature). Needs only numpy and
Pillow::

    import sys
    sys.path.insert(0, "RUN/exports/onnx")   # the export folder
    import preprocess

    x = preprocess.load_images(["photo.jpg", "scan.png"])   # float32 (n, size, size, 3)
    outputs = ...                                             # the exported model run on x
    probs = preprocess.probabilities(outputs)                # (n, classes), as imgclf predict
    names = preprocess.labels()                              # names[probs.argmax(1)]

Decoding: Pillow, EXIF orientation applied, every colour mode to 8-bit RGB (transparency over white,
16-bit scaled), a JPEG decoded at the smallest DCT scale that is still at least the input size, then
a bilinear resize to a square (aspect ratio not kept). Outputs: a two-class model's one sigmoid
column becomes two columns; the run's temperature T rescales them as ``softmax(log(p) / T)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["image_size", "labels", "load_image", "load_images", "probabilities"]

HERE = Path(__file__).resolve().parent
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def _info(folder: Path) -> dict:
    return json.loads((Path(folder) / "parity.json").read_text(encoding="utf-8"))


def image_size(folder: str | Path = HERE) -> int:
    """The model's square input size (from the export folder's ``parity.json``)."""
    return int(_info(Path(folder))["image_size"])


def labels(folder: str | Path = HERE) -> list[str]:
    """Class names in the model's output order (the export folder's ``labels.txt``)."""
    return (Path(folder) / "labels.txt").read_text(encoding="utf-8").splitlines()


def _to_rgb(im: Image.Image) -> Image.Image:
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
    if "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


def load_image(path: str | Path, size: int) -> np.ndarray:
    """One image file as ``(size, size, 3)`` uint8 RGB pixels, decoded as imgclf decodes it."""
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))
        im = _to_rgb(ImageOps.exif_transpose(im))
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def load_images(paths: Sequence[str | Path], folder: str | Path = HERE) -> np.ndarray:
    """The model's input for ``paths``: float32 ``(n, size, size, 3)`` RGB pixels in [0, 255]."""
    size = image_size(folder)
    return np.stack([load_image(p, size) for p in paths]).astype(np.float32)


def probabilities(outputs: np.ndarray, folder: str | Path = HERE) -> np.ndarray:
    """The model's outputs as imgclf's calibrated class probabilities, one column per class."""
    p = np.asarray(outputs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = np.concatenate([1.0 - p, p], axis=1)
    temperature = float(_info(Path(folder)).get("temperature", 1.0))
    if temperature == 1.0:
        return p
    logits = np.log(np.clip(p, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)
