"""``--time`` for a from-scratch model (the ``cnn``): plan its one training stage from measured
throughput.

Once the data is scanned, diagnosed and split, the whole model's forward pass is timed on a few
batches
of the real images (:func:`~imgclf.training.planning.forward_rate`, decoding included). A training
step
is taken to cost :data:`~imgclf.training.budget.FINE_TUNE_FACTOR` forward passes (forward, two
backward,
the optimizer, the augmentation layers: measured 3-4.5× for the cnn at 32 px), and the end of the
run —
scoring the test and validation splits, the report — is kept back exactly as for a pretrained model
(:func:`~imgclf.training.budget.reserve_seconds`). :func:`plan_scratch_budget` then chooses, within
the
rest: every training image for as many epochs as fit (up to ``--epochs``); when not all epochs fit,
fewer validation images for model selection; when not even one epoch fits, a stratified subsample of
the
train split, the same in every epoch. The plan is said in one line before training and recorded in
``timings.json``; the ``Deadline`` callback, with the planned reserve, still stops an epoch that the
load made slower than planned.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from imgclf.config import parse_duration
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import decoded_dataset, fits_cache
from imgclf.data.scan import ImageItem
from imgclf.progress import format_seconds
from imgclf.training.budget import (
    FILL,
    FIT_START_SECONDS,
    MIN_TRAIN_PER_CLASS,
    PER_IMAGE_FLOOR_S,
    Rates,
    _val_used,
    of_total,
    reserve_seconds,
    stratified_subset,
)
from imgclf.training.planning import forward_rate, report_seconds, slowdown

if TYPE_CHECKING:
    from imgclf.training.session import Session

__all__ = ["ScratchPlan", "StopInEpoch", "plan_scratch", "plan_scratch_budget"]


@dataclass
class ScratchPlan:
    """What of a from-scratch run fits the time left; :meth:`line` says it in one line."""

    budget_s: float  # the whole --time budget
    left_s: float  # seconds left when the plan was made
    reserve_s: float  # kept for testing, the report and saving
    train_images: int  # training images of every epoch (a stratified subsample if < train_total)
    train_total: int
    val_images: int  # validation images used for model selection (the report still scores all)
    val_total: int
    epochs: int  # epochs planned (>= 1)
    epochs_asked: int  # --epochs (or the model's default)
    epoch_s: float  # the estimated seconds of one epoch
    planned_s: float  # the seconds the plan expects to spend before the reserve
    note: str = ""  # why epochs or images were dropped

    def line(self) -> str:
        """The plan for people, e.g. ``--time 3m: 2m10s left; cnn from scratch on all 13,991 train
        images, …``."""
        note = f" ({self.note})" if self.note else ""
        return (
            f"--time {format_seconds(self.budget_s)}: {format_seconds(self.left_s)} left; "
            "from scratch on "
            f"{of_total(self.train_images, self.train_total)} train images, "
            f"{of_total(self.val_images, self.val_total)} val "
            f"(model selection), {self.epochs} of {self.epochs_asked} epochs "
            f"(~{format_seconds(self.epoch_s)} each){note}; "
            f"~{format_seconds(self.planned_s)} planned + {format_seconds(self.reserve_s)} "
            "for test and report"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}


def _epoch_seconds(rates: Rates, n: int, n_val: int) -> float:
    """One epoch: ``n`` training steps' worth of images and ``n_val`` validation images scored."""
    return n * rates.fine_tune + n_val * rates.fine_tune_val


def _epochs_that_fit(rates: Rates, n: int, n_val: int, decode_s: float, avail: float) -> int:
    """Epochs on ``n`` train and ``n_val`` val images within ``avail`` seconds; the first also
    decodes them all."""
    first = _epoch_seconds(rates, n, n_val) + (n + n_val) * decode_s
    return (
        0
        if first > avail
        else 1 + int((avail - first) // max(_epoch_seconds(rates, n, n_val), 1e-9))
    )


def plan_scratch_budget(
    budget_s: float,
    left_s: float,
    n_train: int,
    n_val: int,
    n_test: int,
    num_classes: int,
    rates: Rates,
    *,
    epochs: int,
    report_s: float,
    decode_s: float = 0.0,
) -> ScratchPlan:
    """Choose the epochs and images of a from-scratch run that fit ``left_s`` seconds.

    Args:
        budget_s: the whole ``--time`` budget, in seconds (for the plan line).
        left_s: seconds left now.
        n_train: training images.
        n_val: validation images.
        n_test: test images (always scored whole; part of the reserve).
        num_classes: classes (a subsample keeps at least :data:`MIN_TRAIN_PER_CLASS` of each).
        rates: the measured throughput: ``fine_tune``, a training image in an epoch;
        ``fine_tune_val``, a
            validation image in an epoch; ``score``, an image scored after training;
            ``fine_tune_start``,
            the fit's start-up (tracing its steps).
        epochs: the most epochs (``--epochs`` or the model's default).
        report_s: seconds for the report and saving, beyond scoring (part of the reserve).
        decode_s: seconds per image of decoding, paid in the first epoch (later epochs read the
            decoded images from memory) and, at least, per image scored. Defaults to 0.
    """
    reserve = reserve_seconds(n_test, n_val, max(rates.score, decode_s), report_s)
    avail = max(0.0, (left_s - reserve) * FILL - rates.fine_tune_start)
    n, nv, note = n_train, n_val, ""
    if (
        _epochs_that_fit(rates, n, nv, decode_s, avail) < epochs
    ):  # fewer validation images for model selection first
        nv = _val_used(n_train, n_val)
    fit = _epochs_that_fit(rates, n, nv, decode_s, avail)
    if fit < epochs:
        note = "the rest do not fit"
    if fit < 1:  # not one epoch on every image: the largest subsample of which one epoch fits
        lo, hi = min(n_train, MIN_TRAIN_PER_CLASS * num_classes), n_train
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (
                (mid, hi)
                if _epochs_that_fit(rates, mid, _val_used(mid, n_val), decode_s, avail)
                else (lo, mid - 1)
            )
        n, nv = lo, _val_used(lo, n_val)
        fits = _epochs_that_fit(rates, n, nv, decode_s, avail)
        note = (
            "one epoch on every image does not fit"
            if fits
            else "even the smallest subsample overruns"
        )
    planned = max(1, min(fit, epochs))
    epoch_s = _epoch_seconds(rates, n, nv)
    spent = planned * epoch_s + (n + nv) * decode_s + rates.fine_tune_start
    return ScratchPlan(
        budget_s,
        left_s,
        round(reserve, 1),
        n,
        n_train,
        nv,
        n_val,
        planned,
        epochs,
        round(epoch_s, 1),
        round(spent, 1),
        note,
    )


class StopInEpoch(keras.callbacks.Callback):
    """Stop training after the batch that reaches ``until`` (a ``time.perf_counter()`` value),
    within an
    epoch if need be: Keras still validates that epoch, so the checkpoint callbacks see it. The
    safety net of a plan that the load made too optimistic; ``stopped`` is ``(epoch, batch)``,
    1-based.

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


def _stream(
    items: list[ImageItem],
    subset: list[ImageItem],
    raw: tf.data.Dataset,
    session: Session,
    log: DecodeLog,
) -> tf.data.Dataset:
    """``raw`` when ``subset`` is every item, else a decoded stream of ``subset`` (failures in
    ``log``)."""
    if len(subset) == len(items):
        return raw
    cfg = session.cfg
    return decoded_dataset(
        subset,
        cfg.image_size,
        log,
        cfg.cache_mb > 0 and fits_cache(len(subset), cfg.image_size, cfg.cache_mb),
    )


def plan_scratch(
    session: Session,
    by_split: dict[str, list[ImageItem]],
    train_raw: tf.data.Dataset,
    val_raw: tf.data.Dataset,
) -> tuple[tf.data.Dataset, tf.data.Dataset, int, StopInEpoch]:
    """Measure the model's rate, plan (:func:`plan_scratch_budget`), say the plan and apply it to
    ``session``
    (epochs, reserve, ``budget_plan``, recorded in ``timings.json`` by the trainer).

    Args:
        session: the run's trainer, with a deadline.
        by_split: the run's images by split.
        train_raw: decoded ``(image, label)`` train pairs of the whole train split.
        val_raw: the same for the validation split.

    Returns:
        ``(train_raw, val_raw, n_train, stop)`` to train on: streams of stratified subsamples when
        not all
        fit, and the callback that ends training, within an epoch if need be, when the time is up.
    """
    cfg = session.cfg
    rate = forward_rate(
        session.clf.model, by_split["train"], cfg.image_size, cfg.batch_size, batches=8
    )
    load = slowdown()
    # a training image ≈ FINE_TUNE_FACTOR forward passes; the fit's start-up traces the whole
    # model's step
    rates = replace(
        Rates.measured(rate, 0.0, cached=False, slowdown=load),
        fine_tune_start=FIT_START_SECONDS * load,
    )
    train_items, val_items = by_split["train"], by_split["val"]
    plan = plan_scratch_budget(
        parse_duration(cfg.time_budget),
        session.deadline - time.perf_counter(),
        len(train_items),
        len(val_items),
        len(by_split["test"]),
        session.num_classes,
        rates,
        epochs=session.epochs,
        report_s=report_seconds(cfg.report, load),
        decode_s=PER_IMAGE_FLOOR_S * load,
    )
    session.say(plan.line())
    session.epochs, session.reserve = plan.epochs, plan.reserve_s
    session.budget_plan = {
        **plan.to_dict(),
        "rates_s_per_image": asdict(rates),
        "image_size": cfg.image_size,
    }
    log = DecodeLog()
    session.decode_failures = (
        log.failures
    )  # the subsamples' decode failures (the trainer's log has the rest)
    train = stratified_subset(train_items, plan.train_images, cfg.seed)
    val = stratified_subset(val_items, plan.val_images, cfg.seed)
    stop = StopInEpoch(
        session.deadline - plan.reserve_s - len(val) * rates.fine_tune_val
    )  # the last epoch's validation still fits
    return (
        _stream(train_items, train, train_raw, session, log),
        _stream(val_items, val, val_raw, session, log),
        len(train),
        stop,
    )
