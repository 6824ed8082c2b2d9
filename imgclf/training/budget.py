"""``--time``'s budget arithmetic, shared by both kinds of model: the measured rates, the reserve
kept for the end of a run, and how a subsample is drawn.

Everything in the budget modules (this one, :mod:`imgclf.training.pretrained_budget`,
:mod:`imgclf.training.scratch_budget`) is a pure function of its numbers, so it is tested without
training anything; measuring is :mod:`imgclf.training.measure`, and turning the numbers into the
run's one frozen plan is :mod:`imgclf.training.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgclf.data.scan import ImageItem

__all__ = [
    "Rates",
    "fixed_cost_factor",
    "of_total",
    "reserve_seconds",
    "stratified_subset",
    "val_used",
]

# report.html, figures, Grad-CAM, tracing the whole model to score test and val, load and save,
# beyond scoring the images themselves (the reserve adds those): 17 s once at 96 px on a loaded
# machine; on a quiet one, stop 14, 10.5-11.4 s from the head's end to the run saved, scoring
# included (the digits' 208 test + 411 val images at 128 and 160 px)
REPORT_SECONDS = 10.0
FIT_START_SECONDS = (
    3.0  # a fit's own start-up (tracing the train and validation steps), per stage …
)
# … and of fine-tuning, whose training step through the top traces for long, on a quiet machine:
# ~4 s for Lite0 at 128 px (its first epoch 6.2 s, the next 2.2 s, at a slowdown of 1.04); the 15 s
# once measured at 96 px was under a load that made everything ~3× slower, and the plan scales
# this by the load itself (fixed_cost_factor)
FINE_TUNE_START_SECONDS = 6.0
HEAD_SECONDS_PER_SAMPLE = (
    1.5e-4  # one head epoch on cached features, per sample (a dense layer: ~5 ms a batch)
)
# and per head epoch, whatever its size: validation, callbacks, history (measured 0.06-0.15 s)
HEAD_EPOCH_SECONDS = 0.12
FINE_TUNE_FACTOR = (
    4.0  # a training step of the top costs ~3 forward passes (forward, two backward) + Adam
)
# … and a training image of a from-scratch fit on decoded images, in forward passes of the whole
# model: those 4, and Keras' loop with imgclf's per-batch callbacks (the learning rate set at each
# batch) — measured for the tiny_cnn at 28 px in CPU seconds, one process, whole `imgclf train`
# epochs of 12,000 + 3,000 Fashion-MNIST images: 1.17-1.19x the 4 passes (a bare Keras fit: 1.0x)
SCRATCH_STEP_FACTOR = 4.75
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


def fixed_cost_factor(slowdown: float) -> float:
    """How much a busy machine slows the fixed costs of a run — tracing a step, Keras' per-epoch
    work, saving — which run mostly on one core: the square root of what it does to the arithmetic
    spread over every core (measured at a slowdown of 4: a head epoch 0.16-0.35 s against 0.12 s
    quiet, saving and calibration 3 s against 5 s; scaling them by the whole slowdown planned a
    20 s reserve that was 6 s used, and stopped a head whose loss was still falling).

    Args:
        slowdown: how much slower than a quiet machine this one is (1 to 4).
    """
    return max(1.0, slowdown) ** 0.5


@dataclass(frozen=True)
class Rates:
    """Measured seconds per image.

    ``extract``: decode + the frozen bottom, one view; ``top``: the cached top's forward pass (0
    when the head trains on the backbone's output); ``score``: decode + the whole model (test,
    report); ``fine_tune``: one training image in one fine-tuning epoch; ``fine_tune_val``: one
    validation image in a fine-tuning epoch.
    """

    extract: float
    top: float
    score: float
    fine_tune: float = 0.0
    fine_tune_val: float = 0.0
    head: float = HEAD_SECONDS_PER_SAMPLE  # one sample in one head epoch
    head_epoch: float = HEAD_EPOCH_SECONDS  # one head epoch's own cost, beyond its samples
    fine_tune_start: float = FINE_TUNE_START_SECONDS  # the fine-tuning fit's start-up (tracing)

    @classmethod
    def measured(cls, extract: float, top: float, cached: bool, slowdown: float = 1.0) -> Rates:
        """Rates from the two measured ones: fine-tuning on cached activations (``cached``) trains
        the top, else the whole model on decoded images; a training step costs ~3 forward passes.

        Args:
            extract: seconds per image of decode + the frozen bottom.
            top: seconds per image of the top above the cut.
            cached: whether fine-tuning runs on cached activations.
            slowdown: how much slower than a quiet machine this one is now (scales the head's rate,
                and, by its square root (:func:`fixed_cost_factor`), the fixed costs: a head
                epoch's own cost and fine-tuning's start-up; which is Keras' per-step overhead
                rather than arithmetic, and fine-tuning's start-up). Defaults to 1.
        """
        score = extract + top
        forward = top if cached else score
        return cls(
            extract,
            top,
            score,
            FINE_TUNE_FACTOR * forward,
            forward,
            head=HEAD_SECONDS_PER_SAMPLE * slowdown,
            head_epoch=HEAD_EPOCH_SECONDS * fixed_cost_factor(slowdown),
            fine_tune_start=FINE_TUNE_START_SECONDS * fixed_cost_factor(slowdown),
        )


def of_total(n: int, total: int) -> str:
    """``6,000 of 14,400`` when ``n`` is a part of ``total``, else ``all 14,400`` (a plan's line).

    Args:
        n: how many are used.
        total: how many there are.
    """
    return f"{n:,} of {total:,}" if n < total else f"all {total:,}"


def reserve_seconds(n_test: int, n_val: int, score: float, report_s: float) -> float:
    """Seconds kept for the end of the run: scoring the test split and the validation split (the
    report's calibration), the report and saving.

    Args:
        n_test: test images.
        n_val: validation images.
        score: seconds per image of the whole model, decoding included.
        report_s: seconds for the report and saving, beyond scoring.
    """
    return (n_test + n_val) * score + report_s


def val_used(n: int, n_val: int) -> int:
    """Validation images used for model selection when not all fit: a quarter of the ``n``
    training images, at least :data:`MIN_VAL_IMAGES`, at most ``n_val``.

    Args:
        n: training images used.
        n_val: validation images there are.
    """
    return min(n_val, max(MIN_VAL_IMAGES, n // 4))


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
