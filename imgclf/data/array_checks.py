"""What NumPy arrays given as DATA must be, checked with one clear error each: images ``(N, H, W)``,
``(N, H, W, 1)`` or ``(N, H, W, 3)``, uint8 or floats in [0, 1] or [0, 255]; labels ``(N,)``
integers from 0 (or one-hot ``(N, K)``); class names that can name a folder."""

from __future__ import annotations

import numpy as np

from imgclf.errors import DataError

__all__ = ["as_labels", "as_uint8_images", "class_names"]


def as_uint8_images(x: np.ndarray, where: str) -> np.ndarray:
    allowed = "images shaped (N, H, W), (N, H, W, 1) or (N, H, W, 3)"
    if x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
        raise DataError(
            f"images in {where} have shape {x.shape} (channels first?); expected {allowed}"
        )
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise DataError(f"images in {where} have shape {x.shape}; expected {allowed}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.bool_) or not np.issubdtype(x.dtype, np.number):
        raise DataError(
            f"images in {where} have dtype {x.dtype}; expected uint8, or floats in [0, 1] "
            "or [0, 255]"
        )
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if not np.isfinite([lo, hi]).all() or lo < 0 or hi > 255:
        raise DataError(
            f"images in {where} have values from {lo:g} to {hi:g}; expected 0–255 (or 0–1 "
            "for floats)"
        )
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        x = x * 255.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def as_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or len(y) != n:
        raise DataError(
            f"labels in {where} have shape {y.shape}; expected ({n},): one integer label per image"
        )
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_):
        raise DataError(
            f"labels in {where} have dtype {y.dtype}; expected integers 0, 1, … (class indices)"
        )
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.mod(y, 1) == 0):
        raise DataError(
            f"labels in {where} are not whole numbers; expected integers 0, 1, … (class indices)"
        )
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DataError(
            f"labels in {where} include {int(y.min())}; expected integers from 0 (class indices)"
        )
    return y


def class_names(names: np.ndarray | None, n_classes: int, where: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(n_classes)]
    out = [str(v) for v in np.asarray(names).ravel()]
    if len(out) < n_classes:
        raise DataError(
            f"{where} names {len(out)} classes but its labels go up to {n_classes - 1}; "
            "expected one name per label"
        )
    bad = [
        c
        for c in out
        if not c
        or "/" in c
        or "\\" in c
        or c.startswith((".", "__"))
        or c.lower() in ("train", "val", "validation", "test")
    ]
    if bad or len(set(out)) != len(out):
        raise DataError(
            f"class name {(bad or [c for c in out if out.count(c) > 1])[0]!r} in {where} "
            "cannot name a folder; "
            "expected distinct names without '/', not starting with '.', and not "
            "train/val/validation/test"
        )
    return out
