"""Epochs over cached augmented views: each training image once per epoch, in a view drawn anew.

With ``--views V`` the feature cache holds V versions of every training image's activations (the
original and V-1 augmented copies). Training on all of them each epoch costs V times as much per
epoch; drawing one view per image per epoch costs as much as one view and still shows the network a
different version of most images every epoch, which is what augmentation is for.
"""

from __future__ import annotations

import keras
import numpy as np

from imgclf.data.augment import mix_batch

__all__ = ["ViewBatches", "DrawViews"]


class ViewBatches(keras.utils.PyDataset):
    """Batches of ``(activations, targets)``: a seeded shuffle of the images and one view of each,
    both drawn again for every epoch from ``(seed, epoch)``, so a resumed run sees the same epochs.
    With ``mix`` (a Keras ``MixUp``/``CutMix`` layer, ``--augment mixup``/``cutmix``), every batch's
    activations and float targets are mixed by it (manifold mixup)."""

    def __init__(
        self,
        views: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        seed: int,
        epoch: int = 0,
        mix=None,
    ):
        super().__init__()
        if views.shape[1] != len(targets):
            raise ValueError(
                f"views hold {views.shape[1]} images per view but there are {len(targets)} targets"
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
        x, y = self.views[self.choice[idx], idx], self.targets[idx]
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
