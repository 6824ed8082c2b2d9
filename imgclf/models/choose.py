"""``--model auto``: the model and input size that fit the data and the time budget.

A pure function of the data's facts (how many images, their median shorter side) and the budget,
called once when a run starts (:func:`imgclf.training.trainer._new_run`); the run's ``config.yaml``
then holds the model it resolved to, so ``--resume``, ``evaluate`` and the report see the real one.
The rules, and the measurements behind them, are in docs/benchmarks.md ("The default fits the
data"):

1. Tiny pictures (median side ≤ :data:`~imgclf.constants.AUTO_TINY_MAX_SIDE` px, e.g. the 8×8
   scikit-learn digits or 28 px Fashion-MNIST), however many: the from-scratch ``tiny_cnn`` at
   their native size, without augmentation or precise BN unless ``--augment`` / ``--precise-bn``
   are given (:data:`~imgclf.constants.AUTO_TINY_SETTINGS`). Measured on the 8×8 digits: 99+ % in
   a fraction of the time of Lite0 upsampled to 128 px or the ``cnn`` upsampled to 64 px.
2. Small pictures in large numbers (median side ≤
   :data:`~imgclf.constants.AUTO_SCRATCH_MAX_SIDE` px, at least
   :data:`~imgclf.constants.AUTO_SCRATCH_MIN_IMAGES` images, e.g. 28 px Fashion-MNIST): the
   from-scratch ``cnn`` at (about) the native size. An ImageNet backbone would need every picture
   upscaled 4-5× to its smallest useful size, at ~15× the compute per picture, for no new pixels.
3. Large photos with a ``--time`` budget: the largest EfficientNet-Lite whose trained size the
   photos reach (no upsampling) and whose estimated run fits in the budget.
4. Otherwise EfficientNet-Lite0 at the size :func:`choose_image_size` picks (128 px for 100 px
   photos: the measured default on the sign-language digits).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from imgclf.config import TrainConfig, parse_duration
from imgclf.constants import (
    AUTO_MODEL,
    AUTO_SCRATCH_MAX_SIDE,
    AUTO_SCRATCH_MIN_IMAGES,
    AUTO_TINY_MAX_SIDE,
    AUTO_TINY_SETTINGS,
)
from imgclf.models.registry import ModelSpec, choose_image_size, get_spec

LOG = logging.getLogger(__name__)

__all__ = ["Choice", "choose_model", "estimated_seconds", "resolve_model"]

# Seconds per image of a whole default run (doctor, frozen activations, head, 8 fine-tuning epochs,
# test)
# of Lite0 at 128 px on the 2-core reference CPU: 194 s for the 2,062 sign-language digits.
LITE0_128_SECONDS_PER_IMAGE = 194 / 2062
# Cost per pixel relative to Lite0: Lite1 measured 1.5× Lite0 at the same size (docs/benchmarks.md);
# Lite2
# scaled from Lite1 by their multiply-adds per pixel (899 M at 260 px vs 631 M at 240 px: ×1.21).
RELATIVE_COST = {"efficientnet_lite0": 1.0, "efficientnet_lite1": 1.5, "efficientnet_lite2": 1.8}
LARGER_FIRST = ("efficientnet_lite2", "efficientnet_lite1")
TINY_MODEL = "tiny_cnn"  # imgclf.models.tiny_cnn


@dataclass(frozen=True)
class Choice:
    """What ``--model auto`` (or the user) picked: the registry name, the input size and why."""

    model: str
    image_size: int
    reason: str
    # the path's own options, (name, value) pairs, applied where the user left the default
    settings: tuple[tuple[str, object], ...] = ()

    def line(self, requested: str) -> str:
        """One line for the run's log: ``model: auto → cnn at 32 px (…)``.

        Args:
            requested: the ``--model`` value the user gave (``auto`` or a name).
        """
        arrow = f"{requested} → " if requested == AUTO_MODEL else ""
        own = "".join(f"; --{k.replace('_', '-')} {v}" for k, v in self.settings)
        return f"model: {arrow}{self.model} at {self.image_size} px ({self.reason}{own})"


def estimated_seconds(model: str, image_size: int, images: int) -> float:
    """Rough wall seconds of the default recipe of a pretrained Lite backbone on the reference CPU.

    Args:
        model: a key of :data:`RELATIVE_COST`.
        image_size: the square input size.
        images: the number of images in the data folder.
    """
    return LITE0_128_SECONDS_PER_IMAGE * images * (image_size / 128) ** 2 * RELATIVE_COST[model]


def choose_model(
    requested: str,
    sides: list[int],
    budget_seconds: float | None = None,
    image_size: int | None = None,
) -> Choice:
    """The model and input size for a run.

    Args:
        requested: ``--model``: ``"auto"``, or a name or path that always wins.
        sides: the shorter side of each image, in pixels (its length is the number of images).
        budget_seconds: the ``--time`` budget in seconds; None: no budget. Defaults to None.
        image_size: ``--image-size`` when given; it always wins over the chosen size. Defaults to
        None.
    """
    n = len(sides)
    median = sorted(sides)[n // 2] if sides else 0
    if requested != AUTO_MODEL:
        spec = get_spec(requested)
        size = choose_image_size(spec, sides)
        if spec.name == TINY_MODEL and sides:  # native, not rounded to a multiple of 32
            size = max(spec.min_size, min(spec.default_size, median))
        return Choice(spec.name, image_size or size, "--model given")
    facts = f"{n:,} images, median side {median} px"
    if sides and median <= AUTO_TINY_MAX_SIDE:
        spec = get_spec(TINY_MODEL)
        size = image_size or max(spec.min_size, median)  # native: no upsampling
        why = f"{facts}: tiny pictures train fastest at their native size"
        return Choice(spec.name, size, why, AUTO_TINY_SETTINGS)
    if sides and median <= AUTO_SCRATCH_MAX_SIDE and n >= AUTO_SCRATCH_MIN_IMAGES:
        size = image_size or max(
            32, (median + 7) // 8 * 8
        )  # native, to a multiple of the cnn's 8× pooling
        return Choice(
            "cnn", size, f"{facts}: small pictures in large numbers train fastest from scratch"
        )
    if budget_seconds is not None:
        for name in LARGER_FIRST:
            spec = get_spec(name)
            size = image_size or choose_image_size(spec, sides)
            seconds = estimated_seconds(name, size, n)
            if median >= spec.default_size and seconds <= budget_seconds:
                why = (
                    f"photos reach its {spec.default_size} px and ~{seconds:.0f}s of work "
                    f"fits --time {budget_seconds:.0f}s"
                )
                return Choice(name, size, f"{facts}: {why}")
    spec = get_spec("efficientnet_lite0")
    return Choice(
        spec.name,
        image_size or choose_image_size(spec, sides),
        f"{facts}: the default pretrained backbone",
    )


def resolve_model(cfg: TrainConfig, sides: list[int]) -> tuple[Choice, ModelSpec]:
    """:func:`choose_model` for a run's options, saying what ``auto`` picked; the choice and its
    spec.

    Args:
        cfg: the run's options (``model``, ``time_budget``, ``image_size``).
        sides: the shorter side of each image, in pixels.
    """
    budget = parse_duration(cfg.time_budget) if cfg.time_budget else None
    choice = choose_model(cfg.model, sides, budget, cfg.image_size)
    defaults = TrainConfig()  # an option the user gave wins over the path's own
    own = tuple((k, v) for k, v in choice.settings if getattr(cfg, k) == getattr(defaults, k))
    choice = replace(choice, settings=own)
    if cfg.model == AUTO_MODEL:  # a given --model is already named in the run's first line
        LOG.info(choice.line(cfg.model))
    return choice, get_spec(choice.model)
