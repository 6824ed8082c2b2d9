"""The training stages, wired to Keras ``fit``.

Pretrained backbones (the keras.io transfer-learning recipe, made fast):

1. **head** — the backbone is frozen. Its output (or, when fine-tuning follows, the activations at
the
   cut below the trainable top) is computed once per image and per augmented view, kept in the
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
from imgclf.data.augment import mix_batch
from imgclf.data.pipeline import batched
from imgclf.data.scan import ImageItem
from imgclf.runs import RunFiles
from imgclf.training.activations import Activations, has_augmentation
from imgclf.training.planning import plan_run
from imgclf.training.precise_bn import PreciseBatchNorm
from imgclf.training.recipe import Plan, freeze_below
from imgclf.training.scratch_plan import plan_scratch
from imgclf.training.session import Session
from imgclf.training.views import DrawViews, ViewBatches

__all__ = ["train_pretrained", "train_scratch"]


def _history_rows(session: Session, stage: str) -> int:
    with open(session.run_dir / RunFiles.HISTORY, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row["stage"] == stage)


def _steps(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def _fit_arrays(
    session: Session,
    model: keras.Model,
    stage: str,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    peak_lr: float,
    save: keras.Model | None = None,
    threshold: float | None = None,
    views: int = 1,
) -> None:
    """Fit on arrays. With ``views`` > 1, ``x``/``y`` are that many equal blocks (one per cached
    view)
    and each epoch draws one view per image (:mod:`imgclf.training.views`), so an epoch costs one
    view."""
    cfg = session.cfg
    n = len(x) // views
    epochs = session.head_epochs if stage == "head" else session.epochs
    schedule = "constant" if stage == "head" else None
    start = session.start_fit(model, stage, peak_lr, _steps(n, cfg.batch_size), epochs, schedule)
    callbacks = session.callbacks(stage, save=save, threshold=threshold)
    mix = (
        session.mixing if stage != "head" else None
    )  # the head, a linear layer on pooled features, trains unmixed
    if views > 1 or mix is not None:
        data = ViewBatches(
            x.reshape(views, n, *x.shape[1:]),
            session.targets(y[:n]),
            cfg.batch_size,
            cfg.seed,
            start,
            mix,
        )
        fit_args: dict = {"x": data}
        callbacks.insert(0, DrawViews(data))
    else:
        fit_args = {"x": x, "y": session.targets(y), "batch_size": cfg.batch_size, "shuffle": True}
    model.fit(
        **fit_args,
        validation_data=(x_val, session.targets(y_val)),
        epochs=epochs,
        initial_epoch=start,
        class_weight=session.class_weight,
        callbacks=callbacks,
        verbose=session.fit_verbose,
    )
    session.end_stage()


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
    a_train, y_train = np.concatenate(train_views), np.concatenate(labels)
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
    session: Session, f_train: np.ndarray, y_train: np.ndarray, f_val: np.ndarray, y_val: np.ndarray
) -> tuple[float, bool]:
    """Train the head on frozen features (or, when resuming past it, take its loss from state.json).

    Returns:
        ``(threshold, done)``: the validation loss the fine-tuning checkpoint must beat, and whether
        the head left nothing to learn (:func:`_nothing_left`; never when resuming).
    """
    cfg, clf, resume = session.cfg, session.clf, session.resume
    done = False
    if resume and resume["stage"] != "head":
        head_loss = float(resume["head_loss"])  # the head's weights come back with last.keras
        session.epochs_done = _history_rows(session, "head")
    else:
        session.say("stage head: backbone frozen, training the new head")
        _fit_arrays(session, clf.head, "head", f_train, y_train, f_val, y_val, cfg.learning_rate)
        session.compile(clf.head, cfg.learning_rate, 1, 1, schedule="constant")
        head_loss, head_accuracy = (
            float(v) for v in clf.head.evaluate(f_val, session.targets(y_val), verbose=0)[:2]
        )
        save_model_atomic(clf.model, session.model_path)
        session.say(f"  head: val_loss {head_loss:.4f}, val_accuracy {head_accuracy:.4f}")
        done = _nothing_left(session, head_loss, head_accuracy, len(y_val))
    session.head_loss = head_loss
    if resume and resume.get("best") is not None:
        head_loss = min(
            head_loss, float(resume["best"])
        )  # the checkpoint must beat the best so far
    return head_loss, done


def _nothing_left(session: Session, loss: float, accuracy: float, n_val: int) -> bool:
    """Whether fine-tuning can be skipped: the head already classifies every validation image
    correctly
    with a validation loss below ``--skip-fine-tune-loss``. Fine-tuning is kept only if it lowers
    that
    loss, and a loss this small leaves no error for the validation set to see it fix."""
    limit = session.cfg.skip_fine_tune_loss
    if n_val == 0 or accuracy < 1.0 or loss >= limit:
        return False
    session.say(
        f"stage fine_tune skipped: the head already classifies all {n_val} validation "
        "images correctly "
        f"(val_loss {loss:.2g} < --skip-fine-tune-loss {limit:g}); nothing measurable is "
        "left to learn"
    )
    return True


def train_pretrained(
    session: Session,
    plan: Plan,
    train_items: list[ImageItem],
    val_items: list[ImageItem],
    train_raw: tf.data.Dataset,
    val_raw: tf.data.Dataset,
    n_test: int = 0,
) -> None:
    """Head stage on cached features, then fine-tuning (on cached activations, or the whole model on
    decoded images), as ``plan`` says; with ``--time``, the work is planned first
    (:func:`plan_run`).

    Args:
        session: the run's trainer.
        plan: what trains and where the backbone is cut
        (:func:`imgclf.training.recipe.plan_fine_tune`).
        train_items: the train split.
        val_items: the validation split.
        train_raw: decoded ``(image, label)`` train pairs, for fine-tuning without a cache.
        val_raw: the same for the validation split.
        n_test: the test split's size (with ``--time``, scoring it is part of the reserve). Defaults
        to 0.
    """
    cfg, clf = session.cfg, session.clf
    freeze_below(clf.backbone, None)
    bottom = clf.backbone if plan.bottom is None else plan.bottom
    cut_name = "output" if plan.top is None else plan.top.layers[1].name
    acts = Activations(cfg, clf, bottom, cut_name, progress=bool(session.verbose))
    top = plan.top
    views = cfg.views if has_augmentation(clf) else 1
    if session.backbone_rate is not None:  # --time on a new run: plan the work before doing it
        fine = plan.first is not None
        train_items, val_items, views = plan_run(
            session, session.backbone_rate, bottom, top, train_items, val_items, n_test, views, fine
        )
    a_train, y_train, a_val, y_val, same_images = _all_views(
        session, acts, train_items, val_items, cut_name, views
    )
    f_train = top.predict(a_train, batch_size=256, verbose=0) if top is not None else a_train
    f_val = top.predict(a_val, batch_size=256, verbose=0) if top is not None else a_val
    head_loss, nothing_left = _head_stage(session, f_train, y_train, f_val, y_val)
    if plan.first is None or nothing_left:
        return
    if not session.epochs:
        session.say("stage fine_tune skipped: no time left for it in --time")
        return

    freeze_below(clf.backbone, plan.first)
    trainable = sum(1 for layer in clf.backbone.layers if layer.trainable and layer.weights)
    where = clf.backbone.layers[plan.first].name
    if top is not None:
        session.say(
            f"stage fine_tune: {trainable} backbone layers from {where!r} trainable on "
            "cached activations (BatchNorm frozen)"
        )
        inputs = keras.Input(a_train.shape[1:], name="activations")
        model = keras.Model(
            inputs, clf.apply_head(top(inputs, training=False)), name="top_and_head"
        )
        _fit_arrays(
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
            views=views if same_images else 1,
        )
        return
    session.say(
        f"stage fine_tune: {trainable} backbone layers from {where!r} trainable on "
        "decoded images (BatchNorm frozen)"
    )
    _fit_dataset(
        session,
        "fine_tune",
        train_raw,
        val_raw,
        len(train_items),
        cfg.fine_tune_learning_rate,
        threshold=head_loss,
    )


def _fit_dataset(
    session: Session,
    stage: str,
    train_raw: tf.data.Dataset,
    val_raw: tf.data.Dataset,
    n_train: int,
    peak_lr: float,
    threshold: float | None,
    extra: list | None = None,
) -> None:
    """Fit the whole model on decoded images (augmentation inside the model, applied on the fly);
    ``extra``: more callbacks."""
    cfg, model = session.cfg, session.clf.model
    if session.one_hot:

        def encode(x, y):
            return x, keras.ops.one_hot(y, session.num_classes)

        train_raw, val_raw = train_raw.map(encode), val_raw.map(encode)
    elif session.mixing is not None:  # a sigmoid output's mixed targets: float, (1,) per image

        def encode(x, y):
            return x, tf.reshape(tf.cast(y, tf.float32), (1,))

        train_raw, val_raw = train_raw.map(encode), val_raw.map(encode)
    train = batched(train_raw, cfg.batch_size, shuffle_seed=cfg.seed, buffer=n_train)
    if (
        session.mixing is not None
    ):  # --augment mixup/cutmix: pairs of each batch mixed, pixels and labels
        mix = session.mixing
        train = train.map(
            lambda x, y: mix_batch(mix, tf.cast(x, tf.float32), tf.cast(y, tf.float32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    epochs = session.epochs
    if (
        session.deadline is not None and session.budget_plan is None
    ):  # no plan said it: the Deadline callback stops it
        session.say(f"  time budget: training until {session.seconds_left():.0f}s from now")
    # a filtered stream has no known length: the schedule is stepped by epoch and batch (exact)
    start = session.start_fit(
        model, stage, peak_lr, _steps(n_train, cfg.batch_size), epochs, known_length=False
    )
    model.fit(
        train,
        validation_data=batched(val_raw, cfg.batch_size),
        epochs=epochs,
        initial_epoch=start,
        shuffle=False,  # the pipeline shuffles, seeded
        class_weight=session.class_weight,
        callbacks=session.callbacks(stage, save=model, threshold=threshold) + (extra or []),
        verbose=session.fit_verbose,
    )
    session.end_stage()


def train_scratch(
    session: Session,
    train_raw: tf.data.Dataset,
    val_raw: tf.data.Dataset,
    by_split: dict[str, list[ImageItem]],
) -> None:
    """The one stage of a from-scratch model: the whole model on decoded images; with ``--time`` on
    a
    new run, its epochs (and images) planned first
    (:func:`~imgclf.training.scratch_plan.plan_scratch`).

    Args:
        session: the run's trainer.
        train_raw: decoded ``(image, label)`` train pairs.
        val_raw: the same for the validation split.
        by_split: the run's images by split (the train split's size: steps per epoch, shuffle
        buffer).
    """
    n_train, stop = len(by_split["train"]), None
    if session.deadline is not None and session.resume is None:
        train_raw, val_raw, n_train, stop = plan_scratch(session, by_split, train_raw, val_raw)
    cfg = session.cfg
    extra = [stop] if stop is not None else []
    if (
        cfg.precise_bn
    ):  # BatchNorm's statistics re-estimated before each validation (imgclf.training.precise_bn)
        extra.append(
            PreciseBatchNorm(
                session.clf.backbone, train_raw, cfg.precise_bn, cfg.batch_size, cfg.seed
            )
        )
    session.say(f"stage train: {session.clf.spec.name} from scratch")
    best = session.resume.get("best") if session.resume else None
    _fit_dataset(
        session,
        "train",
        train_raw,
        val_raw,
        n_train,
        cfg.learning_rate,
        threshold=best,
        extra=extra,
    )
    if stop is not None and stop.stopped:
        epoch, batch = stop.stopped
        session.say(
            f"  --time: training stopped in epoch {epoch} after batch {batch} of "
            f"{_steps(n_train, cfg.batch_size)} (slower than planned)"
        )
        session.budget_plan["stopped_in_epoch"] = {"epoch": epoch, "batch": batch}
