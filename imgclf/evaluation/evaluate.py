"""Run a model over a list of images and score it: the one path used for test, val and new folders."""

from __future__ import annotations

from collections.abc import Sequence

from imgclf.data.scan import ImageItem
from imgclf.evaluation.inference import score_items
from imgclf.evaluation.metrics import Metrics, compute_metrics

__all__ = ["evaluate_items"]


def evaluate_items(
    model, items: Sequence[ImageItem], classes: list[str], image_size: int, batch_size: int, split: str, temperature: float = 1.0
) -> Metrics:
    """Metrics of ``model`` on ``items``; undecodable images are listed in ``Metrics.skipped``."""
    scores = score_items(model, items, image_size, batch_size, temperature)
    metrics = compute_metrics(scores.labels, scores.predicted, classes, split)
    metrics.skipped = [{"path": p, "reason": r} for p, r in scores.failures.items()]
    return metrics
