"""Keras callbacks of imgclf: the per-epoch history, checkpoints and the state ``--resume`` needs,
and the ways a fit stops early (a target accuracy, the ``--time`` deadline, a Ctrl-C that must not
be lost)."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import keras

from imgclf.atomic import save_model_atomic
from imgclf.errors import ModelError
from imgclf.runs import write_state

__all__ = [
    "HISTORY_COLUMNS",
    "Deadline",
    "HistoryCSV",
    "RunState",
    "SaveBest",
    "SaveLast",
    "StopAtAccuracy",
    "StopInEpoch",
    "RaiseInterrupt",
    "StopOnNaN",
]

HISTORY_COLUMNS = [
    "stage",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "seconds",
]


class HistoryCSV(keras.callbacks.Callback):
    """Append one row per epoch to ``history.csv`` (flushed at once, so an interrupted run keeps
    it).

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
    """Stop as soon as validation accuracy reaches ``target`` (``--stop-at-accuracy``)."""

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
    """Stop after the epoch that would make the next one overrun ``deadline`` (a perf_counter time),
    but
    not before ``min_epochs`` epochs of this fit (a stage the plan could not do without)."""

    def __init__(self, deadline: float, min_epochs: int = 0):
        super().__init__()
        self.deadline, self.min_epochs = deadline, min_epochs
        self._start = 0.0
        self._epochs = 0
        self.stopped = False  # whether the deadline ended the fit

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._epochs += 1
        last = epoch + 1 >= (self.params or {}).get("epochs", math.inf)  # nothing left to stop
        late = now + (now - self._start) > self.deadline
        if late and not last and self._epochs >= self.min_epochs:
            self.model.stop_training = self.stopped = True


class SaveBest(keras.callbacks.Callback):
    """Save ``target`` (the full pixels→probabilities model) whenever ``monitor`` (a loss: lower is
    better) beats its best, while ``fit`` may train another model sharing its layers (the top of the
    backbone on cached activations). Saved atomically: a crash mid-save keeps the previous best.

    Args:
        target: the model to save.
        filepath: the ``.keras`` file.
        monitor: the logged value to minimise.
        initial_value_threshold: save only once ``monitor`` beats this (e.g. the head stage's loss).
    """

    def __init__(
        self,
        target: keras.Model,
        filepath,
        monitor: str = "val_loss",
        initial_value_threshold: float | None = None,
    ):
        super().__init__()
        self._target, self.filepath, self.monitor = target, Path(filepath), monitor
        self.best = (
            float("inf") if initial_value_threshold is None else float(initial_value_threshold)
        )

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is not None and float(current) < self.best:
            self.best = float(current)
            save_model_atomic(self._target, self.filepath)


class SaveLast(keras.callbacks.Callback):
    """Save the model being trained, with its optimizer state, after every epoch (``last.keras``,
    what ``--resume`` continues from), atomically: SIGKILL mid-save leaves the previous epoch's file
    whole.

    Args:
        filepath: the ``.keras`` file.
    """

    def __init__(self, filepath):
        super().__init__()
        self.filepath = Path(filepath)

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.model, self.filepath)


class RunState(keras.callbacks.Callback):
    """Write ``state.json`` after each epoch: the stage, epochs done in it, the head's val loss and
    the best val loss so far — what ``imgclf train --resume`` needs besides ``last.keras``. Without
    ``best`` (the head stage, which keeps no ``last.keras``), only that something is trained: a
    resumed run redoes that stage."""

    def __init__(
        self, path: Path, stage: str, head_loss: float | None, best: SaveBest | None = None
    ):
        super().__init__()
        self.path, self.stage, self.head_loss, self._best = Path(path), stage, head_loss, best

    def on_epoch_end(self, epoch, logs=None):
        best = None if self._best is None else float(self._best.best)
        done = epoch + 1 if self._best is not None else 0
        run_dir = self.path.parent  # the run folder, whose state.json ``path`` is
        write_state(run_dir, self.stage, done, trained=True, head_loss=self.head_loss, best=best)


class StopInEpoch(keras.callbacks.Callback):
    """Stop training after the batch that reaches ``until`` (a ``time.perf_counter()`` value),
    within an epoch if need be: Keras still validates that epoch, so the checkpoint callbacks see
    it. The safety net of a ``--time`` plan that the load made too optimistic; ``stopped`` is
    ``(epoch, batch)``, 1-based.

    Args:
        until: when to stop.
    """

    def __init__(self, until: float):
        super().__init__()
        self.until = until
        self.stopped: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped is None and time.perf_counter() > self.until:
            self.stopped = (self._epoch + 1, batch + 1)
            self.model.stop_training = True


class RaiseInterrupt(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the next batch or epoch boundary once a Ctrl-C was seen, even if
    the KeyboardInterrupt that Python raised for it was swallowed where it landed (a bare
    ``except:`` in a library, an object's ``__del__``); during the fit the Ctrl-C is deferred to
    these boundaries (:meth:`~imgclf.training.interrupts.Interrupts.defer`).

    Args:
        interrupts: the active :class:`~imgclf.training.interrupts.Interrupts`.
    """

    def __init__(self, interrupts):
        super().__init__()
        self.interrupts = interrupts

    def _check(self, *args, **kwargs):
        if self.interrupts.was_seen():
            self.interrupts.defer(False)
            raise KeyboardInterrupt

    def on_train_begin(self, logs=None):
        self._check()
        self.interrupts.defer(True)

    def on_train_end(self, logs=None):
        self.interrupts.defer(False)
        self._check()

    on_epoch_begin = on_epoch_end = _check
    on_train_batch_begin = on_train_batch_end = on_test_batch_end = on_predict_batch_end = _check


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """Stop the run with one clear error when the loss becomes NaN or infinite: after every batch
    of a fit's first epoch (where a learning rate too high for the batch, or float16 overflow
    under mixed precision, shows first: tensorflow/tensorflow#87432, keras-team/keras#21172), and
    at the end of every epoch. It must come first among the callbacks: the diverged epoch is then
    never logged, checkpointed or written to ``state.json``, and the run folder stays as it was
    after the last good epoch.

    Args:
        stage: the stage being fit (for the message).
    """

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage
        self._first = True

    def on_train_begin(self, logs=None):
        self._first = True

    def on_batch_end(self, batch, logs=None):
        if self._first:
            self._check(logs, f"batch {batch + 1} of its first epoch")

    def on_epoch_end(self, epoch, logs=None):
        self._first = False
        self._check(logs, f"epoch {epoch + 1}")

    def _check(self, logs, where: str) -> None:
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        rate = getattr(self.model.optimizer, "learning_rate", None) if self.model else None
        now = "" if rate is None else f" (now {float(keras.ops.convert_to_numpy(rate)):.3g})"
        raise ModelError(
            f"training diverged: the loss became {float(loss)} in stage {self.stage}, {where}; "
            f"the run stopped before saving that epoch. Lower the learning rate{now} "
            "(--learning-rate, --fine-tune-learning-rate), or train without mixed precision "
            "(--mixed-precision off)"
        )
