"""The class-weight rule, in one place: inverse class frequency, normalised to mean 1 (what
``--class-weight auto`` trains with, and what the doctor suggests)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from imgclf.data.scan import ImageItem

__all__ = ["class_weights", "train_class_weights"]


def class_weights(labels: Iterable[int], num_classes: int) -> dict[int, float]:
    """Inverse class frequency, normalised to mean 1 over the classes present (Keras
    ``class_weight``).

    Args:
        labels: one class index per image.
        num_classes: the number of classes; a class without images gets no weight.
    """
    counts = np.bincount(np.asarray(list(labels), dtype=np.int64), minlength=num_classes).astype(
        np.float64
    )
    present = counts > 0
    inv = np.zeros(num_classes)
    inv[present] = 1.0 / counts[present]
    inv[present] /= inv[present].mean()
    return {c: round(float(inv[c]), 4) for c in range(num_classes) if present[c]}


def train_class_weights(
    items: Iterable[ImageItem], num_classes: int, mode: str
) -> dict[int, float] | None:
    """The loss weights a run trains with: :func:`class_weights` of the train split when ``mode`` is
    ``"auto"`` (``--class-weight auto``), else None.

    Args:
        items: the images with their splits assigned.
        num_classes: the number of classes.
        mode: ``TrainConfig.class_weight``, ``"auto"`` or ``"none"``.
    """
    if mode != "auto":
        return None
    return class_weights((i.label for i in items if i.split == "train"), num_classes)
