"""How a stage fits a Keras model: on cached arrays (the head, fine-tuning on cached activations),
or on decoded images streamed through tf.data (fine-tuning without a cache, from-scratch models)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imgclf.data.augment import mix_batch
from imgclf.data.pipeline import batched, shuffled
from imgclf.training.multiworker import fit_arrays_multi_worker
from imgclf.training.session import Session
from imgclf.training.shards import ShardedRows
from imgclf.training.views import DrawViews, RowBatches, ViewBatches

__all__ = ["fit_arrays", "fit_dataset", "steps"]


def steps(n: int, batch_size: int) -> int:
    """Batches in an epoch of ``n`` images."""
    return max(1, -(-n // batch_size))


def fit_arrays(
    session: Session,
    model: keras.Model,
    stage: str,
    x: np.ndarray | ShardedRows,
    y: np.ndarray,
    x_val: np.ndarray | ShardedRows,
    y_val: np.ndarray,
    peak_lr: float,
    save: keras.Model | None = None,
    threshold: float | None = None,
    views: int = 1,
) -> None:
    """Fit on cached rows (arrays, or :class:`~imgclf.training.shards.ShardedRows` read a batch at
    a time, so they need not fit in memory). With ``views`` > 1, ``x``/``y`` are that many equal
    blocks (one per cached view) and each epoch draws one view per image
    (:mod:`imgclf.training.views`), so an epoch costs one view. Either way an epoch is a seeded
    shuffle drawn from ``(seed, epoch)``."""
    cfg = session.cfg
    if session.distribution.multi_worker:  # Keras fit fails there: a training step of our own
        arrays = (x, np.asarray(y), x_val, np.asarray(y_val))  # rows read a batch at a time
        return fit_arrays_multi_worker(
            session, model, stage, arrays, peak_lr, save, threshold, views
        )
    n = len(x) // views
    batch_size = session.distribution.batch_for(cfg.batch_size, n)  # over all replicas
    epochs = session.head_epochs if stage == "head" else session.epochs
    schedule = "constant" if stage == "head" else None
    start = session.start_fit(model, stage, peak_lr, steps(n, batch_size), epochs, schedule)
    callbacks = session.callbacks(stage, save=save, threshold=threshold)
    mix = (
        session.mixing if stage != "head" else None
    )  # the head, a linear layer on pooled features, trains unmixed
    blocks = [_block(x, v * n, n) for v in range(views)]
    data = ViewBatches(blocks, session.targets(y[:n]), batch_size, cfg.seed, start, mix)
    callbacks.insert(0, DrawViews(data))
    val_batch = session.distribution.batch_for(cfg.batch_size, len(y_val))
    model.fit(
        data,
        # it shuffles its images itself; under a strategy the first batch must be a full one
        shuffle=session.distribution.replicas == 1,
        validation_data=RowBatches(x_val, session.targets(y_val), val_batch),
        epochs=epochs,
        initial_epoch=start,
        class_weight=session.class_weight,
        callbacks=callbacks,
        verbose=session.fit_verbose,
    )
    session.end_stage()


def _block(x: np.ndarray | ShardedRows, start: int, n: int) -> np.ndarray | ShardedRows:
    """Rows ``start`` to ``start + n`` of an array or :class:`ShardedRows` (nothing is read)."""
    if start == 0 and n == len(x):
        return x
    if isinstance(x, np.ndarray):
        return x[start : start + n]
    return x.subset(np.arange(start, start + n))


def fit_dataset(
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
    ``train_raw``: from :func:`~imgclf.data.pipeline.decoded_dataset`, shuffled each epoch by
    :func:`~imgclf.data.pipeline.shuffled` (the file order, unless its images are cached), so
    memory does not grow with the data; ``extra``: more callbacks."""
    cfg, model = session.cfg, session.clf.model
    train_raw = shuffled(train_raw, cfg.seed)  # seeded, a new order each epoch
    if session.one_hot:

        def encode(x, y):
            return x, keras.ops.one_hot(y, session.num_classes)

        train_raw, val_raw = train_raw.map(encode), val_raw.map(encode)
    elif session.mixing is not None:  # a sigmoid output's mixed targets: float, (1,) per image

        def encode(x, y):
            return x, tf.reshape(tf.cast(y, tf.float32), (1,))

        train_raw, val_raw = train_raw.map(encode), val_raw.map(encode)
    batch_size = session.distribution.batch_for(cfg.batch_size, n_train)  # over all replicas
    train = batched(train_raw, batch_size)
    if (
        session.mixing is not None
    ):  # --augment mixup/cutmix: pairs of each batch mixed, pixels and labels
        mix = session.mixing
        train = train.map(
            lambda x, y: mix_batch(mix, tf.cast(x, tf.float32), tf.cast(y, tf.float32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    epochs = session.epochs
    if session.deadline is not None and not session.plan.line:
        # no --time plan said it (a resumed run): the Deadline callback stops it
        session.say(f"  time budget: training until {session.seconds_left():.0f}s from now")
    # a filtered stream has no known length: the schedule is stepped by epoch and batch (exact)
    start = session.start_fit(
        model, stage, peak_lr, steps(n_train, batch_size), epochs, known_length=False
    )
    model.fit(
        train,
        validation_data=batched(
            val_raw, session.distribution.batch_for(cfg.batch_size, len(session.plan.val_items))
        ),
        epochs=epochs,
        initial_epoch=start,
        shuffle=False,  # the pipeline shuffles, seeded
        class_weight=session.class_weight,
        callbacks=session.callbacks(stage, save=model, threshold=threshold) + (extra or []),
        verbose=session.fit_verbose,
    )
    session.end_stage()
