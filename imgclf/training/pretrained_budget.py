"""``--time`` for a pretrained backbone: the work that fits the seconds left, from measured rates.

Once the data is scanned, diagnosed and split (that time is already spent), the frozen backbone's
and the top's seconds per image are measured on a sample of the real images
(:mod:`imgclf.training.measure`); :func:`budget_pretrained` then decides, within the seconds left
and a reserve for testing, the report and saving, how many training images the head sees (a
stratified subsample when all will not fit), how many validation images pick the best epoch, how
many augmented views, and whether fine-tuning fits and for how many epochs. The test split is
always scored whole. :func:`budget_image_size` picks a smaller input first when even one pass over
every image does not fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from imgclf.progress import format_seconds
from imgclf.training.budget import (
    FILL,
    FIT_START_SECONDS,
    HEAD_EPOCHS_MIN,
    HEAD_FREE_SECONDS,
    HEAD_SHARE,
    MIN_IMAGE_SIZE,
    MIN_TRAIN_PER_CLASS,
    PER_IMAGE_FLOOR_S,
    REPORT_SECONDS,
    Rates,
    of_total,
    reserve_seconds,
    val_used,
)

__all__ = ["PretrainedBudget", "budget_image_size", "budget_pretrained"]


@dataclass
class PretrainedBudget:
    """What fits the time left; :meth:`line` says it in one line."""

    budget_s: float  # the whole --time budget
    left_s: float  # seconds left when the plan was made
    reserve_s: float  # kept for testing, the report and saving
    # training images whose activations are computed (a stratified subsample if < train_total)
    train_images: int
    train_total: int
    val_images: (
        int  # validation images used for model selection (the rest are still scored for the report)
    )
    val_total: int
    views: int
    head_epochs: int
    fine_tune_epochs: int  # 0: no fine-tuning
    planned_s: float  # the seconds the plan expects to spend before the reserve
    note: str = ""  # why fine-tuning or images were dropped
    # with a subsample: the --time that would give the head every training image (0: not needed)
    needed_s: float = 0.0
    # the head is the last stage: it may go on up to this many epochs while the time lasts (the
    # Deadline callback ends it at the reserve), rather than leave the estimate's slack unused
    head_until: int = 0

    def line(self) -> str:
        """The plan for people, e.g. ``--time 3m: extracting 6,000 of 14,400 train images, 1 view,
        …``."""
        images = of_total(self.train_images, self.train_total)
        val = of_total(self.val_images, self.val_total) + (
            " val (model selection)" if self.val_images < self.val_total else " val"
        )
        ft = (
            f"fine-tuning {self.fine_tune_epochs} epoch(s)"
            if self.fine_tune_epochs
            else "no fine-tuning"
        )
        note = f" ({self.note})" if self.note else ""
        more = f" (up to {self.head_until} while time is left)" if self.head_until else ""
        return (
            f"--time {format_seconds(self.budget_s)}: {format_seconds(self.left_s)} left; "
            f"extracting {images} train images, "
            f"{self.views} view(s), {val}, head {self.head_epochs} epochs{more}, {ft}{note}; "
            f"~{format_seconds(self.planned_s)} "
            f"planned + {format_seconds(self.reserve_s)} for test and report"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}


def _cost(rates: Rates, b: PretrainedBudget) -> float:
    """Seconds for extracting ``b``'s train images × views and val images, its head and its
    fine-tuning."""
    # the top turns cut activations into features
    extract = (b.train_images * b.views + b.val_images) * (rates.extract + rates.top)
    fine = b.fine_tune_epochs * (
        b.train_images * rates.fine_tune + b.val_images * rates.fine_tune_val
    )
    start = rates.fine_tune_start if b.fine_tune_epochs else 0.0
    return extract + _head_seconds(rates, b) + FIT_START_SECONDS + fine + start


def _head_seconds(rates: Rates, b: PretrainedBudget) -> float:
    """Seconds of the head's epochs (start-up aside): per sample, and per epoch (validation,
    callbacks)."""
    per_epoch = (b.train_images * b.views + b.val_images) * rates.head + rates.head_epoch
    return b.head_epochs * per_epoch


def _shorten_head(budget: PretrainedBudget, rates: Rates, avail: float) -> None:
    """A shorter head stage before fewer images, while the head is a large share of the time."""
    while (
        _cost(rates, budget) > avail
        and budget.head_epochs > HEAD_EPOCHS_MIN
        and _head_seconds(rates, budget) > HEAD_SHARE * avail
    ):
        budget.head_epochs -= 1


def _subsample(budget: PretrainedBudget, rates: Rates, avail: float, num_classes: int) -> None:
    """Fewer validation images for model selection first (the report still scores all); then, when
    still over, the largest stratified subsample of training images that fits (cost is linear in
    the images)."""
    n_train, n_val = budget.train_total, budget.val_total
    if _cost(rates, budget) > avail:
        budget.val_images = val_used(n_train, n_val)
    if _cost(rates, budget) <= avail:
        return
    lo, hi = min(n_train, MIN_TRAIN_PER_CLASS * num_classes), n_train
    while lo < hi:
        mid = (lo + hi + 1) // 2
        budget.train_images, budget.val_images = mid, val_used(mid, n_val)
        lo, hi = (mid, hi) if _cost(rates, budget) <= avail else (lo, mid - 1)
    budget.train_images, budget.val_images = lo, val_used(lo, n_val)
    fits = _cost(rates, budget) <= avail
    budget.note = "the rest do not fit" if fits else "even the smallest subsample overruns"


def _give_back_head_epochs(
    budget: PretrainedBudget, rates: Rates, avail: float, head_epochs: int
) -> None:
    """Give the head back the epochs that fit (or, when nothing fits, that cost next to nothing)."""
    overrun = _cost(rates, budget) > avail
    while budget.head_epochs < head_epochs:
        one_more = replace(budget, head_epochs=budget.head_epochs + 1)
        cheap = overrun and _head_seconds(rates, one_more) < HEAD_FREE_SECONDS
        if _cost(rates, one_more) > avail and not cheap:
            return
        budget.head_epochs += 1


def _fine_tune(budget: PretrainedBudget, rates: Rates, avail: float, epochs: int) -> None:
    """As many fine-tuning epochs as fit, up to ``epochs``, once the head sees every image."""
    if not epochs:
        return
    if budget.train_images < budget.train_total:
        budget.note += "; no time for fine-tuning"
        return
    base = _cost(rates, budget)
    one_epoch = _cost(rates, replace(budget, fine_tune_epochs=1)) - base
    per_epoch = max(one_epoch - rates.fine_tune_start, 1e-9)
    budget.fine_tune_epochs = int(
        min(epochs, max(0.0, avail - base - rates.fine_tune_start) // per_epoch)
    )
    if not budget.fine_tune_epochs:
        budget.note = (
            f"a fine-tuning epoch needs ~{format_seconds(one_epoch - (avail - base))} more"
        )


def _add_views(budget: PretrainedBudget, rates: Rates, avail: float, views: int, ft: int) -> None:
    """More augmented views last, when every image and every fine-tuning epoch asked for (or none)
    fit."""
    if budget.train_images < budget.train_total or budget.fine_tune_epochs not in (0, ft):
        return
    while budget.views < views and _cost(rates, replace(budget, views=budget.views + 1)) <= avail:
        budget.views += 1


def _close(budget: PretrainedBudget, rates: Rates, head_epochs: int) -> None:
    """The planned seconds, the note; and, when the head is the last stage, its epochs up to
    ``head_epochs`` while the time lasts."""
    budget.planned_s, budget.note = round(_cost(rates, budget), 1), budget.note.lstrip("; ")
    if not budget.fine_tune_epochs and budget.head_epochs < head_epochs:
        budget.head_until = head_epochs


def _needed_seconds(budget: PretrainedBudget, rates: Rates, takes_all) -> float:
    """The ``--time`` whose budget takes every training image (``takes_all(left_s)``): the first
    that does, to 1 s."""
    left_s = budget.left_s
    every = replace(budget, train_images=budget.train_total)
    lo, hi = left_s, 2 * left_s + 2 * budget.reserve_s + 10 * _cost(rates, every)
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if takes_all(mid) else (mid, hi)
    # ``hi`` is within 1 s above the threshold: its ceiling may be a whole second over the first
    needed = math.ceil(budget.budget_s - left_s + hi)
    while takes_all(needed - 1 - budget.budget_s + left_s):
        needed -= 1
    return float(needed)


def budget_pretrained(
    budget_s: float,
    left_s: float,
    n_train: int,
    n_val: int,
    n_test: int,
    num_classes: int,
    rates: Rates,
    *,
    views: int,
    head_epochs: int,
    fine_tune_epochs: int,
    report_s: float = REPORT_SECONDS,
    search: bool = True,
) -> PretrainedBudget:
    """Choose the work that fits ``left_s`` seconds: first every training image once with the head,
    then fine-tuning epochs, then more augmented views; when even the head on every image does not
    fit, a shorter head stage and then a stratified subsample of the training images.

    Args:
        budget_s: the whole ``--time`` budget, in seconds (for the line).
        left_s: seconds left now.
        n_train: training images.
        n_val: validation images.
        n_test: test images (always scored whole; part of the reserve).
        num_classes: classes (the subsample keeps at least :data:`MIN_TRAIN_PER_CLASS` of each).
        rates: the measured throughput. views: the most views asked for (1 without augmentation).
        head_epochs: the most head epochs. fine_tune_epochs: the most fine-tuning epochs (0: no
        fine-tuning asked). report_s: seconds for the report and saving, beyond scoring (part of the
        reserve). search: with a subsample, find the budget that would take every image
        (``needed_s``). Defaults to True.

    Returns:
        The work that fits (its :meth:`~PretrainedBudget.line` says it).
    """
    reserve = reserve_seconds(n_test, n_val, rates.score, report_s)
    avail = max(0.0, (left_s - reserve) * FILL)
    budget = PretrainedBudget(
        budget_s, left_s, reserve, n_train, n_train, n_val, n_val, 1, head_epochs, 0, 0.0
    )
    _shorten_head(budget, rates, avail)
    _subsample(budget, rates, avail, num_classes)
    _give_back_head_epochs(budget, rates, avail, head_epochs)
    _fine_tune(budget, rates, avail, fine_tune_epochs)
    _add_views(budget, rates, avail, views, fine_tune_epochs)
    _close(budget, rates, head_epochs)
    if budget.train_images < n_train and search:
        asked = {"views": views, "head_epochs": head_epochs, "fine_tune_epochs": fine_tune_epochs}
        counts = (n_train, n_val, n_test, num_classes)

        def takes_all(left: float) -> bool:
            again = budget_pretrained(
                budget_s, left, *counts, rates, report_s=report_s, search=False, **asked
            )
            return again.train_images == n_train

        budget.needed_s = _needed_seconds(budget, rates, takes_all)
    return budget


def budget_image_size(
    size: int,
    score: float,
    left_s: float,
    n_train: int,
    n_val: int,
    n_test: int,
    report_s: float = REPORT_SECONDS,
    floor: int = MIN_IMAGE_SIZE,
    per_image_floor: float = PER_IMAGE_FLOOR_S,
) -> int:
    """The largest input size, from ``size`` down in steps of 32 px to ``floor``, at which every
    training image once, the validation images for model selection, the head and the reserve fit
    ``left_s``; the cost of a forward pass is taken as proportional to the pixel count (``floor`` if
    none fits: below the images' own resolution a smaller input loses detail, and fewer images are
    the better loss).

    Args:
        size: the size chosen from the data, in pixels.
        score: measured seconds per image of the whole model at ``size``, decoding included.
        left_s: seconds left. n_train: training images. n_val: validation images. n_test: test
        images. report_s: seconds for the report and saving, beyond scoring. floor: the smallest
        size to consider. per_image_floor: seconds per image that do not shrink with the input
        (decoding, the pipeline).
    """
    floor = max(MIN_IMAGE_SIZE, min(size, floor))
    for s in range(size, floor - 1, -32):
        rate = max(
            score * (s / size) ** 2, min(score, per_image_floor)
        )  # decoding does not shrink with the input
        work = (n_train + val_used(n_train, n_val)) * rate + FIT_START_SECONDS
        if reserve_seconds(n_test, n_val, rate, report_s) + work <= left_s * FILL:
            return s
    return floor
