"""Keras callbacks of imgclf: the per-epoch history file and a one-line-per-epoch progress log."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import keras

__all__ = ["HistoryCSV", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["stage", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"]


class HistoryCSV(keras.callbacks.Callback):
    """Append one row per epoch to ``history.csv`` (flushed at once, so an interrupted run keeps it).

    Unlike ``keras.callbacks.CSVLogger`` it records the training stage and numbers epochs across
    stages, so a two-stage run reads as one history.
    """

    def __init__(self, path: Path, stage: str, first_epoch: int = 0):
        super().__init__()
        self.path, self.stage, self.first_epoch = Path(path), stage, first_epoch
        self.epochs_done = 0
        self._start = 0.0

    def on_train_begin(self, logs=None):
        if not self.path.exists():
            with open(self.path, "w", newline="") as fh:
                csv.writer(fh).writerow(HISTORY_COLUMNS)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        lr = logs.get("learning_rate")
        if lr is None:
            try:
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            except Exception:  # optimizers without a readable rate: leave the cell empty
                lr = ""
        row = [self.stage, self.first_epoch + epoch + 1]
        row += [_fmt(logs.get(k)) for k in ("loss", "accuracy", "val_loss", "val_accuracy")]
        row += [_fmt(lr), f"{time.perf_counter() - self._start:.2f}"]
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow(row)
        self.epochs_done = epoch + 1


def _fmt(value) -> str:
    if value is None or value == "":
        return ""
    return f"{float(value):.6g}"
