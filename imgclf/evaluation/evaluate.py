"""Run a model over a list of images and score it: the one path used for test, val and new folders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.evaluation.metrics import Metrics, compute_metrics
from imgclf.models.classifier import class_probabilities

__all__ = ["evaluate_items"]


def evaluate_items(model, items: Sequence[ImageItem], classes: list[str], image_size: int, batch_size: int, split: str) -> Metrics:
    """Metrics of ``model`` on ``items``; undecodable images are listed in ``Metrics.skipped``."""
    log = DecodeLog()
    ds = decoded_dataset(items, image_size, log, cache=False)
    y_true, outputs = [], []
    for x, y in batched(ds, batch_size):
        outputs.append(model.predict_on_batch(x))
        y_true.append(y.numpy())
    if outputs:
        y_pred = class_probabilities(np.concatenate(outputs)).argmax(axis=1)
        y = np.concatenate(y_true)
    else:
        y_pred = y = np.zeros(0, np.int64)
    metrics = compute_metrics(y, y_pred, classes, split)
    metrics.skipped = [{"path": p, "reason": r} for p, r in sorted(log.failures.items())]
    return metrics
