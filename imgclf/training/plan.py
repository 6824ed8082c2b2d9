"""The run's plan: what it will do, decided once before training starts
(:class:`~imgclf.training.run_plan.RunPlan`).

Without ``--time`` the plan is what was asked. With ``--time`` on a new run, :func:`plan_run`
measures what it must — the machine's load (once), the backbone's seconds per image, the top's —
calls the pure budget arithmetic (:mod:`imgclf.training.pretrained_budget`,
:mod:`imgclf.training.scratch_budget`; a pretrained backbone's plan is
:mod:`imgclf.training.pretrained_plan`) and returns the frozen plan: input size, the train and
validation images, views, epochs per stage, the reserve kept for the end of the run, whether the
report fits, and what ``timings.json`` records. The trainer writes ``config.yaml`` from it once; the
session is built from it; the stages carry it out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from imgclf.config import TrainConfig, parse_duration
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import Classifier
from imgclf.training.activations import has_augmentation
from imgclf.training.budget import (
    stratified_subset,
)
from imgclf.training.measure import report_seconds, scratch_rates, slowdown
from imgclf.training.pretrained_plan import plan_pretrained
from imgclf.training.recipe import recipe_for_run
from imgclf.training.run_plan import RESERVE_SECONDS, RunPlan, plan_record
from imgclf.training.scratch_budget import budget_scratch

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["RESERVE_SECONDS", "RunPlan", "plan_run"]


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
        head_features="multi" if cfg.head_features == "multi" else "last",
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
        return plan_pretrained(cfg, clf, by_split, num_classes, deadline, say, load, size_given)
    return _plan_scratch(cfg, clf, by_split, num_classes, deadline, say, load), clf


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
        record=plan_record(budget, rates, load, cfg.image_size),
    )
