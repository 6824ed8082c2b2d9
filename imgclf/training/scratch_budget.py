"""``--time`` for a from-scratch model (the ``cnn``): the epochs and images of its one stage
that fit the seconds left.

Decoding and the whole model's forward pass are measured apart on a few batches of the real images
(:func:`~imgclf.training.measure.decode_and_forward`): the fit decodes every image once, into its
in-memory cache during the first epoch, so the first epoch pays decoding and the fit's start-up
(tracing) once and every epoch after pays only its steps. (Counting decoding in every epoch, as a
rate measured with decoding did, planned 2 epochs of Fashion-MNIST's 60,000 at ~58 s each where
they took 58.9 s, the first, and 36.8 s.) A training image is taken to cost
:data:`~imgclf.training.budget.SCRATCH_STEP_FACTOR` forward passes (forward, two backward, the
optimizer, the augmentation layers, and Keras' and imgclf's work at each batch), and the end of the
run —
scoring the test and validation splits, the report — is kept back exactly as for a pretrained model
(:func:`~imgclf.training.budget.reserve_seconds`). :func:`budget_scratch` then chooses, within the
rest: every training image for as many epochs as fit (up to ``--epochs``); when not all epochs fit,
fewer validation images for model selection; when not even one epoch fits, a stratified subsample
of the train split, the same in every epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from imgclf.progress import format_seconds
from imgclf.training.budget import (
    FILL,
    MIN_TRAIN_PER_CLASS,
    Rates,
    of_total,
    reserve_seconds,
    val_used,
)

__all__ = ["ScratchBudget", "budget_scratch"]


@dataclass
class ScratchBudget:
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
    epoch_s: float  # the estimated seconds of one epoch after the first
    planned_s: float  # the seconds the plan expects to spend before the reserve
    note: str = ""  # why epochs or images were dropped
    first_epoch_s: float = 0.0  # the first epoch's: epoch_s + decoding every image + start-up

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
            f"(~{format_seconds(self.epoch_s)} each, the first "
            f"~{format_seconds(self.first_epoch_s)} with decoding){note}; "
            f"~{format_seconds(self.planned_s)} planned + {format_seconds(self.reserve_s)} "
            "for test and report"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}


def _epoch_seconds(rates: Rates, n: int, n_val: int) -> float:
    """One epoch: ``n`` training steps' worth of images and ``n_val`` validation images scored."""
    return n * rates.fine_tune + n_val * rates.fine_tune_val


def _first_epoch_seconds(rates: Rates, n: int, n_val: int, decode_s: float) -> float:
    """The first epoch, which also decodes every image into the cache and starts the fit up
    (tracing its steps): what is paid once."""
    return _epoch_seconds(rates, n, n_val) + (n + n_val) * decode_s + rates.fine_tune_start


def _epochs_that_fit(rates: Rates, n: int, n_val: int, decode_s: float, avail: float) -> int:
    """Epochs on ``n`` train and ``n_val`` val images within ``avail`` seconds; the first also
    decodes them all."""
    first = _epoch_seconds(rates, n, n_val) + (n + n_val) * decode_s
    return (
        0
        if first > avail
        else 1 + int((avail - first) // max(_epoch_seconds(rates, n, n_val), 1e-9))
    )


def _fewest_images(
    rates: Rates, n_train: int, n_val: int, decode_s: float, avail: float, floor: int
):
    """The largest stratified subsample of the train split of which one epoch fits (at least
    ``floor`` images), and its validation images."""
    lo, hi = min(n_train, floor), n_train
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = _epochs_that_fit(rates, mid, val_used(mid, n_val), decode_s, avail)
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    return lo, val_used(lo, n_val)


def budget_scratch(
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
) -> ScratchBudget:
    """Choose the epochs and images of a from-scratch run that fit ``left_s`` seconds.

    Args:
        budget_s: the whole ``--time`` budget, in seconds (for the line).
        left_s: seconds left now.
        n_train: training images.
        n_val: validation images.
        n_test: test images (always scored whole; part of the reserve).
        num_classes: classes (a subsample keeps at least :data:`MIN_TRAIN_PER_CLASS` of each).
        rates: the measured throughput: ``fine_tune``, a training image in an epoch, decoded;
            ``fine_tune_val``, a validation image in an epoch, decoded; ``score``, an image
            scored after training (decoding included); ``fine_tune_start``, the fit's start-up
            (tracing its steps).
        epochs: the most epochs (``--epochs`` or the model's default).
        report_s: seconds for the report and saving, beyond scoring (part of the reserve).
        decode_s: seconds per image of decoding, paid in the first epoch (later epochs read the
            decoded images from memory) and, at least, per image scored. Defaults to 0.

    Returns:
        What fits; ``.epochs`` is at least 1.
    """
    reserve = reserve_seconds(n_test, n_val, max(rates.score, decode_s), report_s)
    avail = max(0.0, (left_s - reserve) * FILL - rates.fine_tune_start)
    n, nv, note = n_train, n_val, ""
    if _epochs_that_fit(rates, n, nv, decode_s, avail) < epochs:
        nv = val_used(n_train, n_val)  # fewer validation images for model selection first
    fit = _epochs_that_fit(rates, n, nv, decode_s, avail)
    if fit < epochs:
        note = "the rest do not fit"
    if fit < 1:  # not one epoch on every image: the largest subsample of which one epoch fits
        floor = MIN_TRAIN_PER_CLASS * num_classes
        n, nv = _fewest_images(rates, n_train, n_val, decode_s, avail, floor)
        fits = _epochs_that_fit(rates, n, nv, decode_s, avail)
        note = (
            "one epoch on every image does not fit"
            if fits
            else "even the smallest subsample overruns"
        )
    planned = max(1, min(fit, epochs))
    epoch_s, first = _epoch_seconds(rates, n, nv), _first_epoch_seconds(rates, n, nv, decode_s)
    times = (round(epoch_s, 1), round(first + (planned - 1) * epoch_s, 1))
    images = (n, n_train, nv, n_val)
    return ScratchBudget(
        budget_s, left_s, round(reserve, 1), *images, planned, epochs, *times, note, round(first, 1)
    )
