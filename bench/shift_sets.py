"""The held-out sets of bench_shift.py: shifted copies of the later-session photos.

Each shift maps one photo (float RGB array, 0-255) to its changed copy, with a seeded generator
for the random ones; :func:`write_shifted` writes a whole folder of them
(``<name>/<class>/<photo>.jpg``).

- ``darker``: pixel values x 0.6 (an indoor photo without flash);
- ``warm``: red x 1.15, blue x 0.75 (tungsten light);
- ``crop``: an off-centre crop of 75 % of the side, resized back (a closer, less centred framing);
- ``background``: the bright, low-saturation background (the grey-white wall) replaced by a green
  tone;
- ``camera``: the photo re-photographed by a worse camera: a perspective-like warp (each corner of
  the source quadrilateral moved inwards by 0-8 % of the side, Pillow's QUAD transform), a Gaussian
  blur (radius 1 px on the 100 px photos), sensor noise (Gaussian, sigma 8 grey levels) and a
  JPEG at quality 30 (instead of the other sets' 92).
- ``phone``: a second worse camera, built from other faults than ``camera`` so that training with
  ``blur``/``noise`` augmentation is not measured on its own corruptions: a sensor of 40 % of the
  resolution (box-filtered down, bilinear back up), hand shake (a 5-px motion blur along one of four
  directions) and a JPEG at quality 15; no warp, no Gaussian blur, no noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SHIFTS", "JPEG_QUALITY", "write_shifted"]


def _darker(x: np.ndarray, rng) -> np.ndarray:
    return x * 0.6


def _warm(x: np.ndarray, rng) -> np.ndarray:
    return x * np.array([1.15, 1.0, 0.75])


def _image(x: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def _crop(x: np.ndarray, rng) -> np.ndarray:
    from PIL import Image

    h, w = x.shape[:2]
    ch, cw = int(h * 0.75), int(w * 0.75)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    part = _image(x[y0 : y0 + ch, x0 : x0 + cw])
    return np.asarray(part.resize((w, h), Image.Resampling.BILINEAR), np.float64)


def _background(x: np.ndarray, rng) -> np.ndarray:
    bright = x.mean(axis=2) > 150
    flat = (
        x.max(axis=2) - x.min(axis=2)
    ) < 30  # grey-white wall: bright and unsaturated (skin is not)
    out = x.copy()
    out[bright & flat] = (
        np.array([90, 150, 90]) + (x[bright & flat] - x[bright & flat].mean()) * 0.5
    )
    return out


def _camera(x: np.ndarray, rng) -> np.ndarray:
    from PIL import Image, ImageFilter

    h, w = x.shape[:2]
    inward = rng.uniform(0, 0.08, size=(4, 2)) * np.array([w, h])
    # source quadrilateral: upper-left, lower-left, lower-right, upper-right, each moved inwards
    corners = np.array([[0, 0], [0, h], [w, h], [w, 0]], np.float64)
    quad = corners + inward * np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]])
    warped = _image(x).transform(
        (w, h), Image.Transform.QUAD, tuple(quad.ravel()), Image.Resampling.BILINEAR
    )
    blurred = np.asarray(warped.filter(ImageFilter.GaussianBlur(1.0)), np.float64)
    return blurred + rng.normal(0, 8, blurred.shape)


def _phone(x: np.ndarray, rng) -> np.ndarray:
    from PIL import Image, ImageFilter

    h, w = x.shape[:2]
    small = _image(x).resize((max(1, int(w * 0.4)), max(1, int(h * 0.4))), Image.Resampling.BOX)
    coarse = small.resize((w, h), Image.Resampling.BILINEAR)
    line = [np.eye(5), np.eye(5)[::-1], np.zeros((5, 5)), np.zeros((5, 5))]
    line[2][2, :], line[3][:, 2] = 1, 1  # horizontal, vertical; the two diagonals above
    shake = line[int(rng.integers(0, 4))]
    kernel = ImageFilter.Kernel((5, 5), shake.ravel().tolist(), scale=5)
    return np.asarray(coarse.filter(kernel), np.float64)


SHIFTS = {
    "darker": _darker,
    "warm": _warm,
    "crop": _crop,
    "background": _background,
    "camera": _camera,
    "phone": _phone,
}
JPEG_QUALITY = {"camera": 30, "phone": 15}  # the others: 92


def write_shifted(later: Path, out: Path, name: str, seed: int) -> Path:
    """``out/name/<class>/<photo>.jpg``: every photo of ``later`` through the shift ``name``."""
    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    for link in sorted(later.glob("*/*")):
        with Image.open(link) as im:
            x = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float64)
        target = out / name / link.parent.name / (link.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        _image(SHIFTS[name](x, rng)).save(target, quality=JPEG_QUALITY.get(name, 92))
    return out / name
