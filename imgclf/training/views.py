"""Epochs over cached augmented views: each training image once per epoch, in a view drawn anew.

With ``--views V`` the feature cache holds V versions of every training image's activations (the
original and V-1 augmented copies). Training on all of them each epoch costs V times as much per
epoch; drawing one view per image per epoch costs as much as one view and still shows the network a
different version of most images every epoch, which is what augmentation is for.

The views are read a batch at a time: each is an array or a
:class:`~imgclf.training.shards.ShardedRows` over the feature cache's shards, so a set of
activations larger than memory trains as well as a small one. :class:`RowBatches` is the same
without shuffling or views (validation, evaluation, a forward pass over every row).
"""

from __future__ import annotations

import keras
import numpy as np

from imgclf.data.augment import mix_batch

__all__ = ["ViewBatches", "DrawViews", "RowBatches", "rows_of"]


def rows_of(source, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of an array or of a :class:`~imgclf.training.shards.ShardedRows`."""
    return source[idx] if isinstance(source, np.ndarray) else source.take(idx)


class RowBatches(keras.utils.PyDataset):
    """Batches of ``(rows, targets)`` in order (``targets`` None: rows only), read a batch at a
    time."""

    def __init__(self, rows, targets: np.ndarray | None, batch_size: int):
        super().__init__()
        self.rows, self.targets, self.batch_size = rows, targets, batch_size

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, k: int):
        idx = np.arange(k * self.batch_size, min(len(self.rows), (k + 1) * self.batch_size))
        x = rows_of(self.rows, idx)
        return (x,) if self.targets is None else (x, self.targets[idx])


class ViewBatches(keras.utils.PyDataset):
    """Batches of ``(activations, targets)``: a seeded shuffle of the images and one view of each,
    both drawn again for every epoch from ``(seed, epoch)``, so a resumed run sees the same epochs.
    ``views``: an array ``(V, n, …)`` or a list of V row sources of n rows each (arrays or
    :class:`~imgclf.training.shards.ShardedRows`).
    With ``mix`` (a Keras ``MixUp``/``CutMix`` layer, ``--augment mixup``/``cutmix``), every batch's
    activations and float targets are mixed by it (manifold mixup)."""

    def __init__(
        self,
        views,
        targets: np.ndarray,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        mix=None,
    ):
        super().__init__()
        if len(views[0]) != len(targets):
            raise ValueError(
                f"views hold {len(views[0])} images per view but there are {len(targets)} targets"
            )
        self.views, self.targets, self.batch_size, self.seed, self.mix = (
            views,
            targets,
            batch_size,
            seed,
            mix,
        )
        self.draw(epoch)

    def draw(self, epoch: int) -> None:
        rng = np.random.default_rng((self.seed, epoch))
        n = len(self.targets)
        self.order = rng.permutation(n)
        self.choice = rng.integers(0, len(self.views), n)

    def __len__(self) -> int:
        return -(-len(self.targets) // self.batch_size)

    def __getitem__(self, k: int):
        idx = self.order[k * self.batch_size : (k + 1) * self.batch_size]
        choice = self.choice[idx]
        x = None
        for v in np.unique(choice):
            at = np.flatnonzero(choice == v)
            rows = rows_of(self.views[v], idx[at])
            if x is None:
                x = np.empty((len(idx), *rows.shape[1:]), rows.dtype)
            x[at] = rows
        y = self.targets[idx]
        if self.mix is None:
            return x, y
        x, y = mix_batch(self.mix, x, y.astype(np.float32))
        return np.asarray(x), np.asarray(y)


class DrawViews(keras.callbacks.Callback):
    """Tells a :class:`ViewBatches` which epoch begins, before its first batch is read."""

    def __init__(self, batches: ViewBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.draw(epoch)
