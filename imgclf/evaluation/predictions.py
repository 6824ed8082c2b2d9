"""``predictions.csv``: one row per evaluated image — path, true label, predicted label and the
probability of every class — so a user can do their own analysis (pandas, a spreadsheet)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.evaluation.inference import Scores

__all__ = ["write_predictions", "read_predictions", "PredictionTable", "PROB_PREFIX"]

PROB_PREFIX = "prob_"  # column of each class's probability: prob_<class name>


@dataclass
class PredictionTable:
    """The rows of a predictions.csv, as arrays."""

    paths: list[str]
    labels: np.ndarray  # true class index per row
    probs: np.ndarray  # (n, num_classes)
    classes: list[str]

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)


def write_predictions(path: Path, scores: Scores, classes: list[str]) -> Path:
    """Write ``scores`` (labelled images) as predictions.csv.

    Args:
        path: the file to write.
        scores: the prediction core's result, with true labels.
        classes: class names in label order.
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["path", "true_label", "predicted_label", *(PROB_PREFIX + c for c in classes)]
        )
        for p, y, probs in zip(scores.paths, scores.labels, scores.probs, strict=True):
            writer.writerow(
                [p, classes[y], classes[int(np.argmax(probs))], *(f"{v:.6g}" for v in probs)]
            )
    return path


def read_predictions(path: Path, classes: list[str]) -> PredictionTable:
    """Read a predictions.csv written by :func:`write_predictions`.

    Args:
        path: the file.
        classes: the run's class names in label order.
    """
    index = {c: i for i, c in enumerate(classes)}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    body = rows[1:]
    probs = np.array([[float(v) for v in r[3:]] for r in body], np.float64).reshape(
        len(body), len(classes)
    )
    return PredictionTable(
        [r[0] for r in body], np.array([index[r[1]] for r in body], np.int64), probs, list(classes)
    )
