"""The training stages, wired to Keras ``fit``; they carry out the run's plan
(:class:`~imgclf.training.plan.RunPlan`, made before any of them starts) and decide nothing about
time themselves.

Pretrained backbones (the keras.io transfer-learning recipe, made fast):

1. **head** — the backbone is frozen. Its output (or, when fine-tuning follows, the activations at
   the cut below the trainable top) is computed once per image and per augmented view, kept in the
   feature cache, and the head trains on it in seconds.
2. **fine_tune** — the top of the backbone is unfrozen (BatchNorm frozen, inference mode) and trains
   with the head on the cached activations at a lower, warmed-up learning rate. The checkpoint only
   moves when validation loss beats the head stage's best. Where no cache is possible
   (``--fine-tune all``, no clean cut, over the memory budget) the whole model trains on decoded
   images with augmentation applied on the fly.

From-scratch models train in one stage (**train**) on decoded images.
"""

from __future__ import annotations

import csv
import time

import keras
import numpy as np
import tensorflow as tf

from imgclf.atomic import save_model_atomic
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import head_learning_rate
from imgclf.runs import RunFiles, write_state
from imgclf.training.activations import Activations, forward_rows
from imgclf.training.callbacks import StopInEpoch
from imgclf.training.fitting import fit_arrays, fit_dataset, steps
from imgclf.training.precise_bn import PreciseBatchNorm
from imgclf.training.recipe import freeze_below
from imgclf.training.session import Session
from imgclf.training.shards import ShardedRows
from imgclf.training.views import RowBatches

__all__ = ["train_pretrained", "train_scratch"]


def _history_rows(session: Session, stage: str) -> int:
    with open(session.run_dir / RunFiles.HISTORY, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row["stage"] == stage)


def _all_views(
    session: Session,
    acts: Activations,
    train_items: list[ImageItem],
    val_items: list[ImageItem],
    cut_name: str,
    views: int,
):
    """Activations of val (view 0) and train (``views`` views).

    Returns:
        ``(a_train, y_train, a_val, y_val, same_images)``: the train views stacked block after
        block; ``same_images``: every view holds the same images (then an epoch can sample views).
    """
    t = time.perf_counter()
    a_val, y_val = acts.get(val_items, 0)
    a_train, y_train = acts.get(train_items, 0)
    train_views = [a_train]
    labels = [y_train]
    for v in range(1, views):
        a, y = acts.get(train_items, v)
        train_views.append(a)
        labels.append(y)
    a_train, y_train = ShardedRows.concat(train_views), np.concatenate(labels)
    session.say(
        f"  {len(y_train)} training activations ({views} view(s)) + {len(y_val)} val at "
        f"{cut_name!r} in "
        f"{time.perf_counter() - t:.1f}s (cache: {acts.cache.hits} hit, "
        f"{acts.cache.misses} computed)"
    )
    if acts.cache.write_error:  # a read-only or full cache costs reuse, not the run
        session.say(f"  {acts.cache.write_error}; training goes on")
    session.decode_failures = acts.log.failures
    # every view holds the same images (a file that fails to decode fails in every view); if not, no
    # sampling
    same_images = all(np.array_equal(labels[0], other) for other in labels[1:])
    return a_train, y_train, a_val, y_val, same_images


def _head_stage(
    session: Session,
    f_train: ShardedRows,
    y_train: np.ndarray,
    f_val: ShardedRows,
    y_val: np.ndarray,
) -> tuple[float, bool]:
    """Train the head on frozen features (or, when resuming past it, take its loss from state.json).

    Returns:
        ``(threshold, done)``: the validation loss the fine-tuning checkpoint must beat, and whether
        the head left nothing to learn (:func:`_nothing_left`; never when resuming).
    """
    cfg, clf, resume = session.cfg, session.clf, session.resume
    done = False
    if resume and resume["stage"] != "head":  # the head's weights came back with the run
        head_loss = float(resume["head_loss"])
        session.epochs_done = _history_rows(session, "head")
    else:
        session.say("stage head: backbone frozen, training the new head")
        lr = head_learning_rate(clf, cfg.learning_rate)
        fit_arrays(session, clf.head, "head", f_train, y_train, f_val, y_val, lr)
        session.compile(clf.head, lr, 1, 1, schedule="constant")
        head_loss, head_accuracy = (
            float(v)
            for v in clf.head.evaluate(
                RowBatches(
                    f_val,
                    session.targets(y_val),
                    session.distribution.batch_for(cfg.batch_size, len(y_val)),
                ),
                verbose=0,
            )[:2]
        )
        save_model_atomic(clf.model, session.model_path)
        session.say(f"  head: val_loss {head_loss:.4f}, val_accuracy {head_accuracy:.4f}")
        done = _nothing_left(session, head_loss, head_accuracy, len(y_val))
        follows = session.plan.fine_tunes and not done
        # from here a Ctrl-C leaves a run that resumes with the next stage (or with its test)
        stage = "fine_tune" if follows else "test"
        write_state(session.run_dir, stage, 0, trained=True, head_loss=head_loss)
    session.head_loss = head_loss
    if resume and resume.get("best") is not None:
        head_loss = min(
            head_loss, float(resume["best"])
        )  # the checkpoint must beat the best so far
    return head_loss, done


def _nothing_left(session: Session, loss: float, accuracy: float, n_val: int) -> bool:
    """Whether fine-tuning can be skipped: the head already classifies every validation image
    correctly with a validation loss below ``--skip-fine-tune-loss``. Fine-tuning is kept only if it
    lowers that
    loss, and a loss this small leaves no error for the validation set to see it fix."""
    limit = session.cfg.skip_fine_tune_loss
    if n_val == 0 or accuracy < 1.0 or loss >= limit:
        return False
    session.stops.append("the head left nothing to learn")
    session.say(
        f"stage fine_tune skipped: the head already classifies all {n_val} validation "
        "images correctly "
        f"(val_loss {loss:.2g} < --skip-fine-tune-loss {limit:g}); nothing measurable is "
        "left to learn"
    )
    return True


def train_pretrained(
    session: Session, train_raw: tf.data.Dataset, val_raw: tf.data.Dataset
) -> None:
    """Head stage on cached features, then fine-tuning (on cached activations, or the whole model on
    decoded images), as the session's plan says (its recipe, images, views and epochs).

    Args:
        session: the run's trainer.
        train_raw: decoded ``(image, label)`` pairs of the plan's train images, for fine-tuning
            without a cache.
        val_raw: the same for its validation images.
    """
    cfg, clf, plan = session.cfg, session.clf, session.plan
    recipe = plan.recipe
    if session.resume and session.resume["stage"] == "test":  # trained; only testing was left
        return
    freeze_below(clf.backbone, None)
    bottom = clf.backbone if recipe.bottom is None else recipe.bottom
    top = recipe.top
    cut_name = "output" if top is None else top.layers[1].name
    acts = Activations(cfg, clf, bottom, cut_name, progress=bool(session.verbose))
    train_items, val_items = list(plan.train_items), list(plan.val_items)
    a_train, y_train, a_val, y_val, same_images = _all_views(
        session, acts, train_items, val_items, cut_name, plan.views
    )
    f_train = forward_rows(top, a_train) if top is not None else a_train
    f_val = forward_rows(top, a_val) if top is not None else a_val
    head_loss, nothing_left = _head_stage(session, f_train, y_train, f_val, y_val)
    if recipe.first is None or nothing_left:
        return
    if not plan.fine_tunes:
        session.say("stage fine_tune skipped: no time left for it in --time")
        return
    freeze_below(clf.backbone, recipe.first)
    trainable = sum(1 for layer in clf.backbone.layers if layer.trainable and layer.weights)
    where = clf.backbone.layers[recipe.first].name
    on = "cached activations" if top is not None else "decoded images"
    session.say(
        f"stage fine_tune: {trainable} backbone layers from {where!r} trainable on {on} "
        "(BatchNorm frozen)"
    )
    if top is None:
        lr = cfg.fine_tune_learning_rate
        fit_dataset(session, "fine_tune", train_raw, val_raw, len(train_items), lr, head_loss)
        return
    inputs = keras.Input(a_train.shape[1:], name="activations")
    model = keras.Model(inputs, clf.apply_head(top(inputs, training=False)), name="top_and_head")
    fit_arrays(
        session,
        model,
        "fine_tune",
        a_train,
        y_train,
        a_val,
        y_val,
        cfg.fine_tune_learning_rate,
        save=clf.model,
        threshold=head_loss,
        views=plan.views if same_images else 1,
    )


def train_scratch(session: Session, train_raw: tf.data.Dataset, val_raw: tf.data.Dataset) -> None:
    """The one stage of a from-scratch model: the whole model on decoded images, as the session's
    plan says (with ``--time``, its epochs, images and the time at which it stops even inside an
    epoch).

    Args:
        session: the run's trainer.
        train_raw: decoded ``(image, label)`` pairs of the plan's train images.
        val_raw: the same for its validation images.
    """
    cfg, plan = session.cfg, session.plan
    n_train = len(plan.train_items)
    stop = StopInEpoch(plan.stop_at) if plan.stop_at is not None else None
    extra: list = [stop] if stop is not None else []
    if cfg.precise_bn:  # BatchNorm's statistics re-estimated before each validation
        bn = PreciseBatchNorm(
            session.clf.backbone, train_raw, cfg.precise_bn, cfg.batch_size, cfg.seed
        )
        extra.append(bn)
    session.say(f"stage train: {session.clf.spec.name} from scratch")
    best = session.resume.get("best") if session.resume else None
    lr = cfg.learning_rate
    fit_dataset(session, "train", train_raw, val_raw, n_train, lr, threshold=best, extra=extra)
    if stop is not None and stop.stopped:
        epoch, batch = stop.stopped
        session.stops.append(
            f"the time ran out in train epoch {epoch} after batch {batch} of "
            f"{steps(n_train, session.batch_size)} (slower than planned)"
        )
