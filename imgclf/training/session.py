"""The trainer of one run, built from its plan (:class:`~imgclf.training.plan.RunPlan`): its
options, run folder, model parts, epoch counts and clock, the one place a stage starts a fit
(compile, then, when resuming, restore ``last.keras``), and what each stage really ran."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from imgclf.config import TrainConfig
from imgclf.data.augment import mixing_layer
from imgclf.models.classifier import Classifier, loss_and_metric
from imgclf.models.loading import load_model_file
from imgclf.runs import RunFiles
from imgclf.training.budget import HEAD_EPOCHS_MIN
from imgclf.training.callbacks import (
    Deadline,
    HistoryCSV,
    RaiseInterrupt,
    RunState,
    SaveBest,
    SaveLast,
    StopAtAccuracy,
    StopOnNaN,
)
from imgclf.training.distribution import SINGLE, Distribution
from imgclf.training.optim import schedule_callbacks, scheduled_optimizer
from imgclf.training.plan import RunPlan

LOG = logging.getLogger(__name__)

if TYPE_CHECKING:
    from imgclf.training.interrupts import Interrupts

__all__ = ["Session", "MONITOR"]

MONITOR = "val_loss"


class Session:
    """State shared by the stages of one run.

    Args:
        cfg: the run's resolved options.
        run_dir: the run folder.
        clf: the classifier (backbone, head, whole model).
        num_classes: the number of classes.
        verbose: 0 prints nothing, else progress lines and Keras' progress.
        plan: what the run does (epochs per stage, images, deadline and reserve).
        class_weight: loss weight per class index (``--class-weight auto``); None: unweighted.
        resume: ``state.json`` of the interrupted run being resumed; None for a new run.
        interrupts: the run's :class:`~imgclf.training.interrupts.Interrupts` (a Ctrl-C stops
            every fit at its next batch); None: Ctrl-C is Python's own. Defaults to None.
        distribution: how the run trains (:mod:`imgclf.training.distribution`): the global batch
            and the learning rates follow its replicas. Defaults to one device.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        clf: Classifier,
        num_classes: int,
        verbose: int,
        plan: RunPlan,
        class_weight: dict[int, float] | None = None,
        resume: dict[str, Any] | None = None,
        interrupts: Interrupts | None = None,
        distribution: Distribution = SINGLE,
    ):
        self.cfg, self.run_dir, self.clf, self.verbose = cfg, run_dir, clf, verbose
        self.num_classes, self.plan, self.interrupts = num_classes, plan, interrupts
        self.distribution = distribution
        self.batch_size = distribution.global_batch(cfg.batch_size)  # images per step, all replicas
        self.deadline = plan.deadline
        self.class_weight = class_weight
        self.resume = resume
        self.epochs_done = 0
        self.model_path = run_dir / RunFiles.MODEL
        self.mixing = mixing_layer(
            cfg.augment, cfg.seed
        )  # --augment mixup/cutmix: mixes the main stage's batches
        self.loss, self.metric, self.one_hot = loss_and_metric(
            num_classes, cfg.label_smoothing, soft_labels=self.mixing is not None
        )
        self.ema = 0.0  # the EMA momentum of the stage being fit (--ema, fine-tuning only)
        self._history: HistoryCSV | None = None
        self._stop: keras.callbacks.EarlyStopping | None = None
        self._schedule: list[
            keras.callbacks.Callback
        ] = []  # what the compiled optimizer's schedule needs
        self.decode_failures: dict[str, str] = {}
        self.head_loss: float | None = None
        self.reserve = plan.reserve_s  # kept back from the deadline
        self.head_epochs, self.epochs = plan.head_epochs, plan.epochs
        self._deadline: Deadline | None = None
        self.ran: dict[str, int] = {}  # epochs each stage really ran (this process)
        self.stops: list[str] = []  # why a stage ran fewer epochs than planned, one line each

    def say(self, message: str) -> None:
        """Report on the run (``logging``: the command line shows it; see :mod:`imgclf.logs`)."""
        LOG.info(message)

    @property
    def fit_verbose(self) -> int:
        if not self.verbose:
            return 0
        return 1 if sys.stdout.isatty() else 2

    def seconds_left(self) -> float:
        return (
            float("inf")
            if self.deadline is None
            else self.deadline - time.perf_counter() - self.reserve
        )

    def targets(self, labels: np.ndarray) -> np.ndarray:
        if self.one_hot:
            return keras.utils.to_categorical(labels, self.num_classes)
        if self.mixing is not None:  # a sigmoid output's mixed targets: float, (n, 1)
            return np.asarray(labels, np.float32).reshape(-1, 1)
        return labels

    def resume_epoch(self, stage: str) -> int:
        """Epochs of ``stage`` already done by the run being resumed (0 if none)."""
        return (
            int(self.resume["stage_epochs"]) if self.resume and self.resume["stage"] == stage else 0
        )

    def restore(self, model: keras.Model) -> None:
        """Load ``last.keras`` weights and optimizer state into ``model`` (compiled the same
        way)."""
        last = load_model_file(self.run_dir / RunFiles.LAST, "checkpoint")
        model.set_weights(last.get_weights())
        model.optimizer.build(model.trainable_variables)
        for mine, saved in zip(model.optimizer.variables, last.optimizer.variables, strict=True):
            mine.assign(saved)

    def start_fit(
        self,
        model: keras.Model,
        stage: str,
        peak_lr: float,
        steps_per_epoch: int,
        epochs: int,
        schedule: str | None = None,
        known_length: bool = True,
    ) -> int:
        """Compile ``model`` for ``stage`` and, when resuming that stage, restore ``last.keras``
        into it. ``known_length=False``: the input is a stream of unknown length (see
        :func:`scheduled_optimizer`).

        Returns:
            The epoch to start from (``initial_epoch`` of ``fit``): 0, or the epochs already done.
        """
        fine = stage == "fine_tune"
        scale = self.cfg.backbone_lr_scale if fine else 1.0
        optimizer = (
            (self.cfg.fine_tune_optimizer or self.cfg.optimizer) if fine else self.cfg.optimizer
        )
        self.ema = self.cfg.ema if fine else 0.0
        if self.cfg.ema and stage == "train":
            self.say(
                "  --ema applies to the fine-tuning stage of a pretrained backbone; this "
                "model trains from scratch without it"
            )
        self.compile(
            model,
            self.distribution.learning_rate(peak_lr),
            steps_per_epoch,
            epochs,
            schedule,
            known_length,
            scale,
            optimizer,
            self.ema,
        )
        start = self.resume_epoch(stage)
        if start:
            self.restore(model)
            self.say(f"  resuming {stage} after epoch {start}")
        return start

    def callbacks(
        self, stage: str, *, save: keras.Model | None = None, threshold: float | None = None
    ) -> list:
        """History, early stopping and the optional controls; ``save``: checkpoint that model on
        improvement (and the trained model every epoch, for --resume), else restore the best
        weights."""
        cfg = self.cfg
        self._history = HistoryCSV(
            self.run_dir / RunFiles.HISTORY, stage, first_epoch=self.epochs_done
        )
        # the schedule's callbacks first: they set the rate the history logs at the end of an epoch
        # first: a NaN loss stops the fit before any callback saves or logs the diverged epoch
        out: list = [StopOnNaN(stage), *self._schedule, self._history]
        self._stop = keras.callbacks.EarlyStopping(
            MONITOR,
            min_delta=cfg.min_delta,
            patience=cfg.patience,
            restore_best_weights=save is None,
        )
        out.append(self._stop)
        if save is not None:
            best = SaveBest(
                save, self.model_path, monitor=MONITOR, initial_value_threshold=threshold
            )
            last = SaveLast(self.run_dir / RunFiles.LAST)
            # last.keras first, with the weights being trained (the average stays in its optimizer
            if self.ema:
                # state); then the average is swapped in (Keras validates with it too) for the best
                # checkpoint
                out += [last, keras.callbacks.SwapEMAWeights(swap_on_epoch=True), best]
            # the best model first: a disk that fills up mid-epoch leaves the one worth keeping
            # whole
            else:
                out += [best, last]
            out.append(RunState(self.run_dir / RunFiles.STATE, stage, self.head_loss, best))
        else:  # the head: from its first epoch, the run has a trained model
            out.append(RunState(self.run_dir / RunFiles.STATE, stage, self.head_loss))
            if self.ema:
                out.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
        if cfg.stop_at_accuracy is not None:
            out.append(StopAtAccuracy(cfg.stop_at_accuracy))
        if self.deadline is not None:
            # the head on cached features costs seconds: a run that got this far gets a usable head
            minimum = HEAD_EPOCHS_MIN if stage == "head" else 0
            self._deadline = Deadline(self.deadline - self.reserve, min_epochs=minimum)
            out.append(self._deadline)
        if cfg.tensorboard:
            out.append(keras.callbacks.TensorBoard(str(self.run_dir / "tensorboard" / stage)))
        out += schedule_callbacks(cfg.lr_schedule, cfg.patience)
        # last: an epoch that ends as Ctrl-C comes is logged and checkpointed before the fit stops
        return out + ([RaiseInterrupt(self.interrupts)] if self.interrupts is not None else [])

    def end_stage(self) -> None:
        """Count the stage's epochs; say so when early stopping ended it, and note it when the
        deadline did."""
        if self._history is not None:
            self.epochs_done += self._history.epochs_done
            stage = self._history.stage
            self.ran[stage] = self.ran.get(stage, 0) + self._history.epochs_done
            if self._deadline is not None and self._deadline.stopped:
                self.stops.append(f"the time ran out in {stage} (slower than planned)")
        self._deadline = None
        if self._stop is not None and self._stop.stopped_epoch > 0 and self._history is not None:
            cfg = self.cfg
            self.say(
                f"  {self._history.stage} stopped early after epoch "
                f"{self._history.first_epoch + self._stop.stopped_epoch + 1}: "
                f"{MONITOR} did not improve by --min-delta {cfg.min_delta:g} for "
                f"--patience {cfg.patience} epochs"
            )
            self.stops.append(f"early stopping in {self._history.stage} (no improvement)")
        self._stop = None

    def compile(
        self,
        model: keras.Model,
        peak_lr: float,
        steps_per_epoch: int,
        epochs: int,
        schedule: str | None = None,
        known_length: bool = True,
        backbone_scale: float = 1.0,
        optimizer: str | None = None,
        ema: float = 0.0,
    ) -> None:
        """Compile with ``optimizer`` (default: the run's); ``backbone_scale``: the backbone's rate
        as a
        fraction of the head's; ``ema``: the momentum of an average of the weights (0: none)."""
        head_variables = tuple(v.path for v in self.clf.head.trainable_variables)
        optimizer, self._schedule = scheduled_optimizer(
            optimizer or self.cfg.optimizer,
            schedule or self.cfg.lr_schedule,
            peak_lr,
            steps_per_epoch,
            epochs,
            known_length,
            backbone_scale,
            head_variables,
            ema,
        )
        model.compile(optimizer=optimizer, loss=self.loss, metrics=[self.metric])
