"""The plan of a multi-worker run: the same on every worker, or they wait on each other for ever.

Without ``--time`` (or resumed) every worker's plan is what was asked, the same everywhere. With
``--time`` only the chief measures and plans (:func:`~imgclf.training.plan.plan_run`, with this
machine's measured rates); it sends every other worker what its plan decided (:func:`chief_plan`:
input size, train and validation images, views, epochs per stage, report, reserve, head), so that
every worker trains the same model on the same images for the same epochs. Each worker keeps its
own deadline; a stage stops on every worker when any worker's deadline stops it
(:class:`~imgclf.training.multiworker_control.Agreement`).

The rates are measured on the chief, one process: the feature cache, the main cost of a pretrained
backbone's run, is computed by every worker over every image, so that is its rate under the
strategy; the stages on cached activations are split over the workers, so the plan is on the safe
side there (they end before the time planned for them, never after).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import tensorflow as tf

from imgclf.config import TrainConfig
from imgclf.models.classifier import Classifier, build_classifier
from imgclf.models.multi_depth import MULTI_DEPTH_NAME
from imgclf.training.budget import stratified_subset
from imgclf.training.distribution import Distribution
from imgclf.training.multiworker import chief_values
from imgclf.training.multiworker_checks import check_multi_worker
from imgclf.training.plan import RunPlan
from imgclf.training.pretrained_plan import multi_depth_recipe
from imgclf.training.recipe import recipe_for_run
from imgclf.training.watchdog import Watchdog

__all__ = ["chief_plan", "multi_worker_plan"]

LOG = logging.getLogger(__name__)


def multi_worker_plan(dist: Distribution, setup, plan: RunPlan, clf: Classifier, timed: bool):
    """Check a multi-worker run
    (:func:`~imgclf.training.multiworker_checks.check_multi_worker`) and, when ``timed`` (a new
    run with ``--time``), give every worker the chief's plan.

    Args:
        dist: the run's distribution (multi-worker).
        setup: the run's :class:`~imgclf.training.setup.RunSetup`.
        plan: this worker's plan (the chief's is planned to the deadline; others' as asked).
        clf: its classifier.
        timed: a new run with ``--time``: the plans must be made the same.

    Returns:
        ``(plan, clf)``, the same on every worker.
    """
    cached = plan.recipe is not None and (plan.recipe.first is None or plan.recipe.top is not None)
    check_multi_worker(setup.cfg, plan.recipe is not None, cached)
    if not timed:
        return plan, clf
    num_classes = len(setup.data.classes)
    return chief_plan(dist, plan, clf, setup.cfg, setup.by_split, num_classes)


def _from_chief(dist: Distribution, values: list[float]) -> np.ndarray:
    """``values`` as the chief has them, on every worker (:func:`chief_values`; float32: counts
    are exact below 2**24)."""
    who = f"worker {dist.worker} of {dist.workers}"
    with Watchdog(dist.timeout, who).waiting("waiting for the chief's --time plan"):
        return chief_values(dist.strategy, [tf.constant(values, tf.float32)])[0]


def chief_plan(
    dist: Distribution,
    plan: RunPlan,
    clf: Classifier,
    cfg: TrainConfig,
    by_split: dict,
    num_classes: int,
) -> tuple[RunPlan, Classifier]:
    """The chief's ``--time`` plan on every worker: the chief's ``plan`` and ``clf`` unchanged;
    another worker's (planned as asked, with its own deadline) takes the chief's input size,
    images, views, epochs, report, reserve and head (the multi-depth one where the chief's plan
    switched to it), its classifier rebuilt at the chief's size.
    Call it on every worker of a new multi-worker run with ``--time`` (a collective)."""
    mine = [plan.image_size, len(plan.train_items), len(plan.val_items), plan.views]
    mine += [plan.head_epochs, plan.epochs, float(plan.report), plan.reserve_s]
    mine += [float(plan.head_features == "multi")]
    chief = _from_chief(dist, [float(v) for v in mine])
    if dist.is_chief:
        return plan, clf
    size, n_train, n_val, views, head_epochs, epochs = (int(round(v)) for v in chief[:6])
    head_features = "multi" if chief[8] else "last"
    recipe = plan.recipe
    sized = replace(cfg, image_size=size)
    if size != plan.image_size:
        clf = build_classifier(clf.spec, num_classes, size, cfg.augment, cfg.seed)
        recipe = recipe_for_run(clf, sized, len(by_split["train"]), len(by_split["val"]))
    if head_features == "multi" and clf.backbone.name != MULTI_DEPTH_NAME:
        clf, recipe = multi_depth_recipe(sized, clf, num_classes)  # as the chief's plan switched
    LOG.info(
        f"worker {dist.worker} of {dist.workers}: the chief's --time plan: {size}px, "
        f"{n_train} train and {n_val} val images, {views} view(s), {head_epochs} head and "
        f"{epochs} fine-tuning epochs"
    )
    train = stratified_subset(by_split["train"], n_train, cfg.seed)
    val = stratified_subset(by_split["val"], n_val, cfg.seed)
    return replace(
        plan,
        image_size=size,
        recipe=recipe,
        train_items=tuple(train),
        val_items=tuple(val),
        views=views,
        head_epochs=head_epochs,
        epochs=epochs,
        report=bool(chief[6]),
        reserve_s=float(chief[7]),
        head_features=head_features,
    ), clf
