"""Keras callbacks of imgclf: the per-epoch history file and a one-line-per-epoch progress log."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import keras

__all__ = ["HistoryCSV", "HISTORY_COLUMNS", "StopAtAccuracy", "Deadline", "SaveBest", "RunState"]

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


class StopAtAccuracy(keras.callbacks.Callback):
    """The notes' custom callback: stop as soon as validation accuracy reaches ``target``."""

    def __init__(self, target: float, monitor: str = "val_accuracy"):
        super().__init__()
        self.target, self.monitor = target, monitor
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value >= self.target:
            self.stopped_epoch = epoch
            self.model.stop_training = True


class Deadline(keras.callbacks.Callback):
    """Stop after the epoch that would make the next one overrun ``deadline`` (a perf_counter time)."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        if now + (now - self._start) > self.deadline:
            self.model.stop_training = True


class SaveBest(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that saves ``target`` (the full pixels→probabilities model) while ``fit``
    trains another model sharing its layers (the top of the backbone on cached activations)."""

    def __init__(self, target: keras.Model, filepath, **kwargs):
        super().__init__(filepath, save_best_only=True, **kwargs)
        self._target = target

    def set_model(self, model):
        super().set_model(self._target)


class RunState(keras.callbacks.Callback):
    """Write ``state.json`` after each epoch: the stage, epochs done in it, the head's val loss and the
    best val loss so far — what ``imgclf train --resume`` needs besides ``last.keras``."""

    def __init__(self, path: Path, stage: str, head_loss: float | None, best: keras.callbacks.ModelCheckpoint | None):
        super().__init__()
        self.path, self.stage, self.head_loss, self._best = Path(path), stage, head_loss, best

    def on_epoch_end(self, epoch, logs=None):
        best = None if self._best is None else float(self._best.best)
        state = {"stage": self.stage, "stage_epochs": epoch + 1, "head_loss": self.head_loss, "best": best}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)
