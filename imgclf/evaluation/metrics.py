"""Classification metrics from scikit-learn, as one typed result that prints as a table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from imgclf.evaluation.metrics_text import format_metrics

__all__ = ["Metrics", "compute_metrics", "format_metrics"]


@dataclass
class Metrics:
    accuracy: float
    macro_f1: float
    n: int
    split: str
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    classes: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    absent_classes: list[str] = field(default_factory=list)  # no image of theirs was evaluated
    statistics: dict[str, dict] = field(
        default_factory=dict
    )  # value and 95 % interval (see evaluation.stats)
    confused_pairs: list[dict] = field(default_factory=list)
    honesty: dict = field(
        default_factory=dict
    )  # vs a separate folder (evaluation.honesty), when there is one
    overlap: dict = field(default_factory=dict)  # a folder's images seen in training (.overlap)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def compute_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], split: str
) -> Metrics:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Macro-F1 averages over the classes that have images in ``y_true``; the others are listed in
    ``absent_classes`` (counting them as F1 = 0 would report a perfect model as "macro F1 0.5").

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        classes: class names in label order.
        split: what was evaluated (shown in reports).
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = list(range(len(classes)))
    if len(y_true) == 0:
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        empty = [[0] * len(classes) for _ in classes]
        return Metrics(0.0, 0.0, 0, split, {c: dict(zero) for c in classes}, empty, list(classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        c: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }
    present = [i for i in labels if support[i] > 0]
    return Metrics(
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        n=int(len(y_true)),
        split=split,
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        classes=list(classes),
        absent_classes=[classes[i] for i in labels if support[i] == 0],
    )
