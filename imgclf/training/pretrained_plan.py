"""The ``--time`` plan of a pretrained backbone (:func:`plan_pretrained`): the input size that
fits, the rates measured at it, the budget (:mod:`imgclf.training.pretrained_budget`), the report
kept or dropped, and — when no fine-tuning fits — a head that reads several depths of the frozen
backbone (:mod:`imgclf.models.multi_depth`) rather than its last layer alone.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from imgclf.config import parse_duration
from imgclf.models.classifier import Classifier, resized
from imgclf.models.multi_depth import (
    MULTI_DEPTH_HEAD_EPOCHS,
    MULTI_DEPTH_NAME,
    MULTI_DEPTH_STEP,
    has_layers,
    multi_depth_classifier,
)
from imgclf.training.activations import has_augmentation
from imgclf.training.budget import PER_IMAGE_FLOOR_S, Rates, stratified_subset
from imgclf.training.measure import EXTRACT_SHARE_MIN, forward_rate, report_seconds, top_rate
from imgclf.training.pretrained_budget import (
    PretrainedBudget,
    budget_image_size,
    budget_pretrained,
)
from imgclf.training.recipe import Recipe, recipe_for_run
from imgclf.training.run_plan import RunPlan, plan_record

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "choose_report",
    "deeper_head",
    "fit_size",
    "multi_depth_recipe",
    "plan_pretrained",
]


def fit_size(cfg, clf, by_split, num_classes, deadline, load, size_given, say):
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
    # a file's backbone takes any size: not loaded again
    rebuilt = resized(clf, num_classes, size, cfg.augment, cfg.seed)
    return rebuilt, scaled, (change,)


def choose_report(cfg, make: Callable[[bool], PretrainedBudget], n_train: int, say):
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


def deeper_head(cfg, clf, budget: PretrainedBudget, num_classes: int, say, larger=None):
    """When the plan has no fine-tuning and ``--head-features auto``: the classifier rebuilt with
    the multi-depth head over the same backbone (nothing loaded or measured again: the forward
    pass is the backbone's), at :data:`MULTI_DEPTH_STEP` px larger when ``larger`` (the budget at a
    size) says that still fits as much work; its recipe (no cut, no fine-tuning), its budget, the
    config at its size and the change said; else ``None``. A head on the last layer alone stops at
    ~0.90 on the digits, one on seven depths reaches ~0.95 at the same extraction cost
    (docs/benchmarks.md stop 13), ~0.97 at 160 px rather than 128 (stop 14)."""
    if budget.fine_tune_epochs or cfg.head_features != "auto" or not has_layers(clf.backbone):
        return None
    size = cfg.image_size + MULTI_DEPTH_STEP
    up = larger(size) if larger is not None else None
    grown = up is not None and _as_much(up, budget)
    change = (
        f"--time {cfg.time_budget}: no time for fine-tuning; the head reads the frozen backbone "
        "at several depths (--head-features multi)"
    )
    if grown:
        change += f", at {size}px rather than {cfg.image_size}px (the plan still fits)"
        clf = resized(clf, num_classes, size, cfg.augment, cfg.seed)
        cfg, budget = replace(cfg, image_size=size), up
    deeper, recipe = multi_depth_recipe(cfg, clf, num_classes)
    say(change)
    return deeper, recipe, budget, cfg, change


def _as_much(up: PretrainedBudget, budget: PretrainedBudget) -> bool:
    """Whether ``up`` does the work ``budget`` does: its images and views, and its head epochs or
    :data:`MULTI_DEPTH_HEAD_EPOCHS`, whichever is fewer."""
    return (
        up.train_images >= budget.train_images
        and up.val_images >= budget.val_images
        and up.views >= budget.views
        and up.head_epochs >= min(budget.head_epochs, MULTI_DEPTH_HEAD_EPOCHS)
    )


def multi_depth_recipe(cfg, clf, num_classes: int) -> tuple[Classifier, Recipe]:
    """``clf`` with the multi-depth head over its backbone at ``cfg.image_size`` (nothing loaded
    again), and its recipe: the head on the frozen features, no cut, no fine-tuning."""
    deeper = multi_depth_classifier(clf, num_classes, cfg.image_size, cfg.augment, cfg.seed)
    return deeper, Recipe(None, deeper.backbone, None)


def _rates(cfg, recipe: Recipe, rate: float, load: float) -> Rates:
    """The rates of the plan: the backbone's measured ``rate`` split at the cache cut (the top
    measured on its own, at least :data:`EXTRACT_SHARE_MIN` of the pass left to the bottom)."""
    top = recipe.top
    top_s = 0.0
    if top is not None:
        measured = top_rate(recipe.bottom, top, cfg.image_size, cfg.batch_size)
        top_s = min(measured, (1 - EXTRACT_SHARE_MIN) * rate)
    return Rates.measured(rate - top_s, top_s, cached=top is not None, slowdown=load)


def _scaled(rate: float, factor: float, load: float) -> Rates:
    """The rates of a head on the whole frozen backbone (no cut) whose forward pass costs
    ``factor`` × ``rate`` seconds per image (a larger input: its pixel count)."""
    return Rates.measured(rate * factor, 0.0, cached=False, slowdown=load)


def _warn_subsample(cfg, budget: PretrainedBudget, n_train: int, say) -> None:
    if budget.needed_s:
        say(
            f"WARNING: --time {cfg.time_budget} is too short to train on every image on this "
            f"machine now: the model will see {budget.train_images:,} of "
            f"{n_train:,} and be the weaker for it; every image needs --time "
            f"{budget.needed_s:.0f}s or more"
        )


def plan_pretrained(cfg, clf, by_split, num_classes, deadline, say, load, size_given):
    """The ``--time`` plan of a pretrained backbone, and its classifier (rebuilt at a smaller input,
    or with the multi-depth head). Arguments as :func:`imgclf.training.plan.plan_run`'s, with
    ``load`` the slowdown measured once."""
    clf, rate, resized = fit_size(cfg, clf, by_split, num_classes, deadline, load, size_given, say)
    cfg = replace(cfg, image_size=clf.model.input_shape[1])
    recipe = recipe_for_run(clf, cfg, len(by_split["train"]), len(by_split["val"]), say)
    rates = _rates(cfg, recipe, rate, load)
    views = cfg.views if has_augmentation(clf) else 1
    left = deadline - time.perf_counter()
    counts = [len(by_split[k]) for k in ("train", "val", "test")] + [num_classes]
    fine_tune_epochs = cfg.epochs if recipe.first is not None else 0

    def make(report: bool, at: Rates = rates, fine_tune: int = fine_tune_epochs):
        return budget_pretrained(
            parse_duration(cfg.time_budget),
            left,
            *counts,
            at,
            views=views,
            head_epochs=cfg.head_epochs,
            fine_tune_epochs=fine_tune,
            report_s=report_seconds(report, load),
        )

    budget, report, no_report = choose_report(cfg, make, len(by_split["train"]), say)
    changes = resized + no_report

    def larger(size: int) -> PretrainedBudget:  # the multi-depth head's budget at ``size``
        return make(report, _scaled(rate, (size / cfg.image_size) ** 2, load), 0)

    deeper = deeper_head(cfg, clf, budget, num_classes, say, None if size_given else larger)
    if deeper is not None:
        clf, recipe, budget, sized, change = deeper
        if sized.image_size != cfg.image_size:
            rates = _scaled(rate, (sized.image_size / cfg.image_size) ** 2, load)
        cfg, changes = sized, changes + (change,)
    say(budget.line())
    _warn_subsample(cfg, budget, len(by_split["train"]), say)
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
        record=plan_record(budget, rates, load, cfg.image_size, changes),
        head_features="multi" if clf.backbone.name == MULTI_DEPTH_NAME else "last",
    )
    return plan, clf
