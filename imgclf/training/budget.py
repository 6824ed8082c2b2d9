"""``--time``: plan the work of a pretrained run from measured throughput before doing it.

Once the data is scanned, diagnosed and split (that time is already spent), the trainer measures on
a
small sample of the real images how long the frozen backbone takes per image, and how long the top
of
the backbone takes; :func:`plan_budget` then decides, within the seconds left and a reserve for
testing, the report and saving, how many training images the head sees (a stratified subsample when
all will not fit), how many validation images pick the best epoch, how many augmented views, and
whether fine-tuning fits and for how many epochs. The test split is always scored whole.

The planner is a pure function of its numbers, so it is tested without training anything; the
measuring and applying are in :mod:`imgclf.training.planning`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from imgclf.data.scan import ImageItem
from imgclf.progress import format_seconds

__all__ = [
    "BudgetPlan",
    "Rates",
    "budget_image_size",
    "of_total",
    "plan_budget",
    "reserve_seconds",
    "stratified_subset",
]

# report.html, figures, Grad-CAM, tracing the whole model to score test and val, load and save
# (digits at 96 px: 17 s)
REPORT_SECONDS = 15.0
FIT_START_SECONDS = (
    3.0  # a fit's own start-up (tracing the train and validation steps), per stage …
)
FINE_TUNE_START_SECONDS = (
    15.0  # … and of fine-tuning, whose training step through the top traces for long
)
HEAD_SECONDS_PER_SAMPLE = (
    1.5e-4  # one head epoch on cached features, per sample (a dense layer: ~5 ms a batch)
)
FINE_TUNE_FACTOR = (
    4.0  # a training step of the top costs ~3 forward passes (forward, two backward) + Adam
)
FILL = (
    0.85  # plan to spend this share of what is left: the rest absorbs misestimates and load swings
)
MIN_TRAIN_PER_CLASS = 10  # the smallest subsample of training images the head is given, per class
PER_IMAGE_FLOOR_S = (
    8e-4  # decoding and the pipeline, per image, quiet machine: not smaller at a smaller input
)
MIN_IMAGE_SIZE = 32  # the smallest input size a budget shrinks a pretrained model's input to
MIN_VAL_IMAGES = 100  # validation images always used for model selection (all if fewer)
HEAD_EPOCHS_MIN = 5  # the head stage is shortened down to this before images are dropped …
HEAD_SHARE = 0.25  # … while it would take more than this share of the time available
HEAD_FREE_SECONDS = 2.0  # when nothing fits, a head stage this cheap still keeps its epochs


@dataclass(frozen=True)
class Rates:
    """Measured seconds per image.

    ``extract``: decode + the frozen bottom, one view; ``top``: the cached top's forward pass (0
    when
    the head trains on the backbone's output); ``score``: decode + the whole model (test, report);
    ``fine_tune``: one training image in one fine-tuning epoch; ``fine_tune_val``: one validation
    image in a fine-tuning epoch.
    """

    extract: float
    top: float
    score: float
    fine_tune: float = 0.0
    fine_tune_val: float = 0.0
    head: float = HEAD_SECONDS_PER_SAMPLE  # one sample in one head epoch
    fine_tune_start: float = FINE_TUNE_START_SECONDS  # the fine-tuning fit's start-up (tracing)

    @classmethod
    def measured(cls, extract: float, top: float, cached: bool, slowdown: float = 1.0) -> Rates:
        """Rates from the two measured ones: fine-tuning on cached activations (``cached``) trains
        the
        top, else the whole model on decoded images; a training step costs ~3 forward passes.

        Args:
            extract: seconds per image of decode + the frozen bottom.
            top: seconds per image of the top above the cut.
            cached: whether fine-tuning runs on cached activations.
            slowdown: how much slower than a quiet machine this one is now (scales the head's rate,
                which is Keras' per-step overhead rather than arithmetic, and fine-tuning's
                start-up). Defaults to 1.
        """
        score = extract + top
        forward = top if cached else score
        return cls(
            extract,
            top,
            score,
            FINE_TUNE_FACTOR * forward,
            forward,
            HEAD_SECONDS_PER_SAMPLE * slowdown,
            FINE_TUNE_START_SECONDS * slowdown,
        )


@dataclass
class BudgetPlan:
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
        return (
            f"--time {format_seconds(self.budget_s)}: {format_seconds(self.left_s)} left; "
            f"extracting {images} train images, "
            f"{self.views} view(s), {val}, head {self.head_epochs} epochs, {ft}{note}; "
            f"~{format_seconds(self.planned_s)} "
            f"planned + {format_seconds(self.reserve_s)} for test and report"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "line": self.line()}


def of_total(n: int, total: int) -> str:
    """``6,000 of 14,400`` when ``n`` is a part of ``total``, else ``all 14,400`` (a plan's line).

    Args:
        n: how many are used.
        total: how many there are.
    """
    return f"{n:,} of {total:,}" if n < total else f"all {total:,}"


def reserve_seconds(n_test: int, n_val: int, score: float, report_s: float) -> float:
    """Seconds kept for the end of the run: scoring the test split and the validation split (the
    report's
    calibration), the report and saving.

    Args:
        n_test: test images.
        n_val: validation images.
        score: seconds per image of the whole model, decoding included.
        report_s: seconds for the report and saving, beyond scoring.
    """
    return (n_test + n_val) * score + report_s


def _cost(rates: Rates, n: int, n_val: int, views: int, head_epochs: int, ft_epochs: int) -> float:
    """Seconds for extraction of ``n`` train images × ``views`` and ``n_val`` val, the head,
    fine-tuning."""
    extract = (n * views + n_val) * (
        rates.extract + rates.top
    )  # the top turns cut activations into features
    head = _head_seconds(rates, n, n_val, views, head_epochs) + FIT_START_SECONDS
    fine = ft_epochs * (n * rates.fine_tune + n_val * rates.fine_tune_val) + (
        rates.fine_tune_start if ft_epochs else 0.0
    )
    return extract + head + fine


def _head_seconds(rates: Rates, n: int, n_val: int, views: int, head_epochs: int) -> float:
    """Seconds of the head's epochs on ``n`` train images × ``views`` and ``n_val`` val (start-up
    aside)."""
    return head_epochs * (n * views + n_val) * rates.head


def _head_cost(plan: BudgetPlan, rates: Rates) -> float:
    return _head_seconds(rates, plan.train_images, plan.val_images, plan.views, plan.head_epochs)


def _val_used(n: int, n_val: int) -> int:
    return min(n_val, max(MIN_VAL_IMAGES, n // 4))


def plan_budget(
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
) -> BudgetPlan:
    """Choose the work that fits ``left_s`` seconds: first every training image once with the head,
    then fine-tuning epochs, then more augmented views; when even the head on every image does not
    fit,
    a shorter head stage and then a stratified subsample of the training images.

    Args:
        budget_s: the whole ``--time`` budget, in seconds (for the plan line).
        left_s: seconds left now.
        n_train: training images.
        n_val: validation images.
        n_test: test images (always scored whole; part of the reserve).
        num_classes: classes (the subsample keeps at least :data:`MIN_TRAIN_PER_CLASS` of each).
        rates: the measured throughput.
        views: the most views asked for (1 without augmentation).
        head_epochs: the most head epochs.
        fine_tune_epochs: the most fine-tuning epochs (0: no fine-tuning asked).
        report_s: seconds for the report and saving, beyond scoring (part of the reserve).
        search: with a subsample, find the budget that would take every image (``needed_s``).
        Defaults to True.
    """
    options = {
        "views": views,
        "head_epochs": head_epochs,
        "fine_tune_epochs": fine_tune_epochs,
        "report_s": report_s,
    }
    reserve = reserve_seconds(n_test, n_val, rates.score, report_s)
    avail = max(0.0, (left_s - reserve) * FILL)
    plan = BudgetPlan(
        budget_s, left_s, reserve, n_train, n_train, n_val, n_val, 1, head_epochs, 0, 0.0
    )

    def cost(p: BudgetPlan) -> float:
        return _cost(
            rates, p.train_images, p.val_images, p.views, p.head_epochs, p.fine_tune_epochs
        )

    while (
        cost(plan) > avail
        and plan.head_epochs > HEAD_EPOCHS_MIN
        and _head_cost(plan, rates) > HEAD_SHARE * avail
    ):
        plan.head_epochs -= (
            1  # a shorter head stage before fewer images, while the head is a large share
        )
    if (
        cost(plan) > avail
    ):  # fewer validation images for model selection first (the report still scores all)
        plan.val_images = _val_used(n_train, n_val)
    if cost(plan) > avail:  # not every image: the largest subsample that fits (cost is linear in n)
        floor = min(n_train, MIN_TRAIN_PER_CLASS * num_classes)
        lo, hi = floor, n_train
        while lo < hi:
            mid = (lo + hi + 1) // 2
            plan.train_images, plan.val_images = mid, _val_used(mid, n_val)
            lo, hi = (mid, hi) if cost(plan) <= avail else (lo, mid - 1)
        plan.train_images, plan.val_images = lo, _val_used(lo, n_val)
        plan.note = (
            "the rest do not fit" if cost(plan) <= avail else "even the smallest subsample overruns"
        )
    overrun = cost(plan) > avail
    while plan.head_epochs < head_epochs and (
        cost(plan) + _head_cost(plan, rates) / plan.head_epochs <= avail
        or overrun
        and _head_cost(plan, rates) < HEAD_FREE_SECONDS
    ):
        # give the head back the epochs that fit (or, when nothing fits, that cost next to nothing)
        plan.head_epochs += 1
    if fine_tune_epochs and plan.train_images == n_train:
        one_epoch = _cost(rates, n_train, plan.val_images, 1, plan.head_epochs, 1) - cost(plan)
        plan.fine_tune_epochs = int(
            min(
                fine_tune_epochs,
                max(0.0, avail - cost(plan) - rates.fine_tune_start)
                // max(one_epoch - rates.fine_tune_start, 1e-9),
            )
        )
        if not plan.fine_tune_epochs:
            plan.note = (
                f"a fine-tuning epoch needs ~{format_seconds(one_epoch - (avail - cost(plan)))} "
                "more"
            )
    elif fine_tune_epochs:
        plan.note += "; no time for fine-tuning"
    if plan.train_images == n_train and plan.fine_tune_epochs in (0, fine_tune_epochs):
        while (
            plan.views < views
            and cost(BudgetPlan(**{**asdict(plan), "views": plan.views + 1})) <= avail
        ):
            plan.views += 1
    plan.planned_s = round(cost(plan), 1)
    plan.note = plan.note.lstrip("; ")
    if (
        plan.train_images < n_train and search
    ):  # the budget whose plan takes every image: the first that does, to 1 s
        lo, hi = (
            left_s,
            2 * left_s
            + 2 * reserve
            + 10 * cost(BudgetPlan(**{**asdict(plan), "train_images": n_train})),
        )
        while hi - lo > 1:
            mid = (lo + hi) / 2
            every = (
                plan_budget(
                    budget_s,
                    mid,
                    n_train,
                    n_val,
                    n_test,
                    num_classes,
                    rates,
                    search=False,
                    **options,
                ).train_images
                == n_train
            )
            lo, hi = (lo, mid) if every else (mid, hi)
        plan.needed_s = float(math.ceil(budget_s - left_s + hi))
    return plan


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
        left_s: seconds left.
        n_train: training images.
        n_val: validation images.
        n_test: test images.
        report_s: seconds for the report and saving, beyond scoring.
        floor: the smallest size to consider.
        per_image_floor: seconds per image that do not shrink with the input (decoding, the
        pipeline).
    """
    floor = max(MIN_IMAGE_SIZE, min(size, floor))
    for s in range(size, floor - 1, -32):
        rate = max(
            score * (s / size) ** 2, min(score, per_image_floor)
        )  # decoding does not shrink with the input
        work = (n_train + _val_used(n_train, n_val)) * rate + FIT_START_SECONDS
        if reserve_seconds(n_test, n_val, rate, report_s) + work <= left_s * FILL:
            return s
    return floor


def stratified_subset(items: list[ImageItem], n: int, seed: int) -> list[ImageItem]:
    """``n`` of ``items`` with the classes in their proportions (at least one of each), in their
    order.

    Args:
        items: the images.
        n: how many to keep (all when ``n >= len(items)``).
        seed: random seed of the draw.
    """
    if n >= len(items):
        return list(items)
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        by_class.setdefault(item.label, []).append(index)
    keep: list[int] = []
    for _label, indices in sorted(by_class.items()):
        share = max(1, round(n * len(indices) / len(items)))
        keep.extend(rng.choice(indices, min(share, len(indices)), replace=False).tolist())
    return [items[i] for i in sorted(keep)]
