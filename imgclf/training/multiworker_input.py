"""The input of a multi-worker run: the rows of each epoch (:func:`epoch_order`, the same on every
worker: a shuffle seeded by ``(seed, epoch)``) and the input function that gives each input
pipeline its share of every global batch (:func:`worker_batches`), read from the cached rows one
batch at a time (an array, or :class:`~imgclf.training.shards.ShardedRows`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from imgclf.training.shards import ShardedRows

__all__ = ["epoch_order", "worker_batches"]


def epoch_order(n: int, views: int, seed: int, epoch: int, size: int, train: bool) -> np.ndarray:
    """The row indices of one epoch, ``size`` (the global batch) per step: for training a seeded
    shuffle (one random view per image), whole batches only (the rest of a shuffle waits for the
    next epoch); for validation every row once, padded with -1 to whole batches."""
    if not train:
        steps = max(1, -(-n // size))
        return np.concatenate([np.arange(n), -np.ones(steps * size - n, np.int64)])
    rng = np.random.default_rng([seed, epoch])
    rows = rng.permutation(n) + n * rng.integers(0, views, n)
    steps = max(1, n // size)
    return np.resize(rows, steps * size)  # fewer images than one global batch: repeated


def worker_batches(order: np.ndarray, x, t: np.ndarray, w: np.ndarray, local: int, b: int):
    """``dataset_fn`` for ``distribute_datasets_from_function``: this input pipeline's
    per-replica batches of ``order`` (``local`` replicas of ``b`` rows per pipeline and step), read
    from ``x`` (an array or :class:`~imgclf.training.shards.ShardedRows`) one batch at a time:
    a worker reads only the rows it trains on, never every cached activation at once."""

    def dataset_fn(ctx):
        p = ctx.input_pipeline_id
        per_step = order.reshape(-1, ctx.num_input_pipelines, local, b)[:, p].reshape(-1, b)
        mask = (per_step >= 0).astype(np.float32)
        rows = np.maximum(per_step, 0)

        def batches():
            for k, idx in enumerate(rows):
                batch = x.take(idx) if isinstance(x, ShardedRows) else x[idx]
                yield np.asarray(batch, np.float32), t[idx], w[idx] * mask[k]

        signature = (
            tf.TensorSpec((b, *x.shape[1:]), tf.float32),
            tf.TensorSpec((b, *t.shape[1:]), tf.as_dtype(t.dtype)),
            tf.TensorSpec((b,), tf.float32),
        )
        return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(1)

    return dataset_fn
