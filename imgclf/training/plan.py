"""The run's plan: what it will do, decided once before training starts (:class:`RunPlan`).

Without ``--time`` the plan is what was asked. With ``--time`` on a new run, :func:`plan_run`
measures what it must — the machine's load (once), the backbone's seconds per image, the top's —
calls the pure budget arithmetic (:mod:`imgclf.training.pretrained_budget`,
:mod:`imgclf.training.scratch_budget`) and returns the frozen plan: input size, the train and
validation images, views, epochs per stage, the reserve kept for the end of the run, whether the
report fits, and what ``timings.json`` records. The trainer writes ``config.yaml`` from it once; the
session is built from it; the stages carry it out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from imgclf.config import TrainConfig, parse_duration
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import Classifier, build_classifier
from imgclf.training.activations import has_augmentation
from imgclf.training.budget import (
    PER_IMAGE_FLOOR_S,
    Rates,
    stratified_subset,
)
from imgclf.training.measure import (
    EXTRACT_SHARE_MIN,
    forward_rate,
    report_seconds,
    scratch_rates,
    slowdown,
    top_rate,
)
from imgclf.training.pretrained_budget import (
    PretrainedBudget,
    budget_image_size,
    budget_pretrained,
)
from imgclf.training.recipe import Recipe, recipe_for_run
from imgclf.training.scratch_budget import budget_scratch

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RESERVE_SECONDS", "RunPlan", "plan_run"]

RESERVE_SECONDS = 8.0  # kept back from a deadline for testing and saving when nothing was measured


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided before it trains and not changed afterwards.

    ``epochs`` is the main stage's: fine-tuning for a pretrained backbone (0: none), the one stage
    of a from-scratch model. ``deadline`` is the ``time.perf_counter()`` value at which ``--time``
    runs out (None without it); ``reserve_s`` of it is kept for testing, the report and saving;
    ``stop_at``: when a from-scratch run stops even inside an epoch. ``line`` says a ``--time`` plan
    before training; ``changes`` says, one line each, what it changed from what was asked;
    ``record`` is ``timings.json``'s ``plan``.
    """

    image_size: int
    recipe: Recipe | None
    train_items: tuple[ImageItem, ...]
    val_items: tuple[ImageItem, ...]
    views: int
    head_epochs: int
    epochs: int
    report: bool
    deadline: float | None = None
    reserve_s: float = RESERVE_SECONDS
    stop_at: float | None = None
    line: str = ""
    changes: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def fine_tunes(self) -> bool:
        """Whether a pretrained run's plan has a fine-tuning stage."""
        return self.recipe is not None and self.recipe.first is not None and self.epochs > 0

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` as the run will really go (what ``config.yaml`` records): the planned input
        size, views, epochs and report; ``fine_tune: none`` when no fine-tuning is planned.

        Args:
            cfg: the run's options as asked.
        """
        out = replace(
            cfg,
            image_size=self.image_size,
            views=self.views if self.recipe is not None else cfg.views,
            head_epochs=self.head_epochs,
            report=self.report,
        )
        if self.recipe is not None and not self.fine_tunes:
            return replace(out, fine_tune="none", fine_tune_from=None)
        return replace(out, epochs=self.epochs) if self.epochs else out


def _record(budget, rates: Rates, load: float, image_size: int, changes=()) -> dict[str, Any]:
    """What ``timings.json`` records of a ``--time`` plan, with what it changed from the ask."""
    rates_s = asdict(rates)
    return {
        **budget.to_dict(),
        "rates_s_per_image": rates_s,
        "slowdown": round(load, 2),
        "image_size": image_size,
        "changes": list(changes),
    }


def _as_asked(
    cfg: TrainConfig, clf: Classifier, by_split: dict, deadline: float | None, say
) -> RunPlan:
    """The plan of a run without ``--time`` (or resumed): everything as the options say."""
    recipe = recipe_for_run(clf, cfg, len(by_split["train"]), len(by_split["val"]), say)
    return RunPlan(
        cfg.image_size,
        recipe,
        tuple(by_split["train"]),
        tuple(by_split["val"]),
        cfg.views if has_augmentation(clf) else 1,
        cfg.head_epochs,
        cfg.epochs,
        cfg.report,
        deadline,
    )


def plan_run(
    cfg: TrainConfig,
    clf: Classifier,
    by_split: dict[str, list[ImageItem]],
    num_classes: int,
    deadline: float | None,
    say: Callable[[str], None],
    budgeted: bool,
    size_given: bool,
) -> tuple[RunPlan, Classifier]:
    """The run's plan, and its classifier (rebuilt when ``--time`` takes a smaller input).

    Args:
        cfg: the run's options (image size and epochs resolved).
        clf: its classifier.
        by_split: its images by split.
        num_classes: its number of classes.
        deadline: ``time.perf_counter()`` value at which ``--time`` runs out; None without it.
        say: prints a line for the user. budgeted: plan to the deadline (``--time`` on a new run);
        else the plan is what was asked. size_given: the user gave ``--image-size``: ``--time``
        never changes it.
    """
    if deadline is None or not budgeted:
        return _as_asked(cfg, clf, by_split, deadline, say), clf
    load = slowdown()  # the machine's load, measured once for every estimate below
    if clf.spec.pretrained:
        return _plan_pretrained(cfg, clf, by_split, num_classes, deadline, say, load, size_given)
    return _plan_scratch(cfg, clf, by_split, num_classes, deadline, say, load), clf


def _fit_size(cfg, clf, by_split, num_classes, deadline, load, size_given, say):
    """The classifier at the largest input size whose one pass over every image fits the time left
    (:func:`budget_image_size`), the backbone's seconds per image at that size, and the change
    said (none when the size stays)."""
    rate = forward_rate(clf.backbone, by_split["train"], cfg.image_size, cfg.batch_size)
    items = by_split["train"] + by_split["val"] + by_split["test"]
    sides = sorted(min(i.width, i.height) for i in items) or [cfg.image_size]
    native = sides[len(sides) // 2] // 32 * 32  # the images' own resolution: below it, detail lost
    floor_s = PER_IMAGE_FLOOR_S * load
    n = [len(by_split[k]) for k in ("train", "val", "test")]
    left = deadline - time.perf_counter()
    report_s = report_seconds(cfg.report, load)
    size = budget_image_size(
        cfg.image_size, rate, left, *n, report_s=report_s, floor=native, per_image_floor=floor_s
    )
    if size_given or size >= cfg.image_size:
        return clf, rate, ()
    change = (
        f"--time: {cfg.image_size}px does not fit ({rate * 1000:.1f} ms per image); "
        f"input size {size}px"
    )
    say(change)
    scaled = max(rate * (size / cfg.image_size) ** 2, min(rate, floor_s))
    rebuilt = build_classifier(clf.spec, num_classes, size, cfg.augment, cfg.seed)
    return rebuilt, scaled, (change,)


def _choose_report(cfg, make: Callable[[bool], PretrainedBudget], n_train: int, say):
    """The budget with the report, or without it when that lets more training images in (a model
    that saw more of the data is worth more than its report, which can be built later)."""
    budget = make(cfg.report)
    if not cfg.report or budget.train_images >= n_train:
        return budget, cfg.report, ()
    lean = make(False)
    if lean.train_images <= budget.train_images:
        return budget, True, ()
    change = (
        f"--time {cfg.time_budget}: no report, so that {lean.train_images:,} training images fit "
        f"instead of {budget.train_images:,} (`imgclf report RUN` builds it afterwards)"
    )
    say(change)
    return lean, False, (change,)


def _plan_pretrained(cfg, clf, by_split, num_classes, deadline, say, load, size_given):
    clf, rate, resized = _fit_size(cfg, clf, by_split, num_classes, deadline, load, size_given, say)
    cfg = replace(cfg, image_size=clf.model.input_shape[1])
    recipe = recipe_for_run(clf, cfg, len(by_split["train"]), len(by_split["val"]), say)
    top = recipe.top
    top_s = 0.0
    if top is not None:
        measured = top_rate(recipe.bottom, top, cfg.image_size, cfg.batch_size)
        top_s = min(measured, (1 - EXTRACT_SHARE_MIN) * rate)
    rates = Rates.measured(rate - top_s, top_s, cached=top is not None, slowdown=load)
    views = cfg.views if has_augmentation(clf) else 1
    left = deadline - time.perf_counter()
    counts = [len(by_split[k]) for k in ("train", "val", "test")] + [num_classes]
    fine_tune_epochs = cfg.epochs if recipe.first is not None else 0

    def make(report: bool) -> PretrainedBudget:
        return budget_pretrained(
            parse_duration(cfg.time_budget),
            left,
            *counts,
            rates,
            views=views,
            head_epochs=cfg.head_epochs,
            fine_tune_epochs=fine_tune_epochs,
            report_s=report_seconds(report, load),
        )

    budget, report, no_report = _choose_report(cfg, make, len(by_split["train"]), say)
    changes = resized + no_report
    say(budget.line())
    if budget.needed_s:
        say(
            f"WARNING: --time {cfg.time_budget} is too short to train on every image on this "
            f"machine now: the model will see {budget.train_images:,} of "
            f"{len(by_split['train']):,} and be the weaker for it; every image needs --time "
            f"{budget.needed_s:.0f}s or more"
        )
    plan = RunPlan(
        cfg.image_size,
        recipe,
        tuple(stratified_subset(by_split["train"], budget.train_images, cfg.seed)),
        tuple(stratified_subset(by_split["val"], budget.val_images, cfg.seed)),
        budget.views,
        max(budget.head_epochs, budget.head_until),
        budget.fine_tune_epochs,
        report,
        deadline,
        budget.reserve_s,
        line=budget.line(),
        changes=changes,
        record=_record(budget, rates, load, cfg.image_size, changes),
    )
    return plan, clf


def _plan_scratch(cfg, clf, by_split, num_classes, deadline, say, load) -> RunPlan:
    n = len(by_split["train"]) + len(by_split["val"])
    rates, decode_s = scratch_rates(clf.model, by_split["train"], cfg, n, load)
    budget = budget_scratch(
        parse_duration(cfg.time_budget),
        deadline - time.perf_counter(),
        len(by_split["train"]),
        len(by_split["val"]),
        len(by_split["test"]),
        num_classes,
        rates,
        epochs=cfg.epochs,
        report_s=report_seconds(cfg.report, load),
        decode_s=decode_s,
    )
    say(budget.line())
    val = tuple(stratified_subset(by_split["val"], budget.val_images, cfg.seed))
    return RunPlan(
        cfg.image_size,
        None,
        tuple(stratified_subset(by_split["train"], budget.train_images, cfg.seed)),
        val,
        1,
        cfg.head_epochs,
        budget.epochs,
        cfg.report,
        deadline,
        budget.reserve_s,
        # the last epoch's validation still fits
        stop_at=deadline - budget.reserve_s - len(val) * rates.fine_tune_val,
        line=budget.line(),
        record=_record(budget, rates, load, cfg.image_size),
    )
