"""The feature-cache plumbing of the cached stages: the frozen bottom's activations for a list of
images and one view (0: the image as is; k > 0: the k-th augmented copy), computed on a miss and
kept in :class:`~imgclf.training.feature_cache.FeatureCache`."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imgclf.config import TrainConfig
from imgclf.constants import SHARD_ROWS
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import Classifier
from imgclf.options import image_augment
from imgclf.progress import Progress
from imgclf.training.feature_cache import FeatureCache, default_cache_root
from imgclf.training.shards import ShardedRows, write_shard

__all__ = ["Activations", "forward_rows", "has_augmentation"]


class Activations:
    """Frozen-bottom activations of the train (all views) and val (view 0) images, via the feature
    cache.

    Args:
        cfg: the run's options (image size, batch size, augmentation, seed, ``feature_cache``).
        clf: the classifier; its augmentation layer makes the views, its backbone names the cache
        key. bottom: the frozen part of the backbone whose output is cached. cut_name: the layer the
        cut feeds (part of the cache key). progress: show the progress of computing activations
        (:mod:`imgclf.progress`).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        clf: Classifier,
        bottom: keras.Model,
        cut_name: str,
        progress: bool = False,
    ):
        root = default_cache_root() if cfg.feature_cache else None
        # the views depend on the per-image augmentation only (mixup/cutmix mix batches later)
        key = (
            clf.spec.name,
            _weights_id(clf),
            bottom.name,  # the backbone's output and the multi-depth features differ
            cut_name,
            cfg.image_size,
            image_augment(cfg.augment),
            cfg.seed,
        )
        self.cfg, self.clf, self.bottom, self.cache = cfg, clf, bottom, FeatureCache(root, key)
        self.log = DecodeLog()
        self.progress = progress
        # one traced function for every batch and view (predict_on_batch would retrace per shape)
        self._forward = tf.function(lambda x: bottom(x, training=False), reduce_retracing=True)

    def _compute(self, items: list[ImageItem], view: int):
        """Returns a compute(indices) for FeatureCache: decode, augment (view > 0), run the
        bottom; it yields the rows in chunks of about :data:`~imgclf.constants.SHARD_ROWS` (one
        shard), so no more than a shard of activations is ever held."""
        augment = (
            self.clf.model.get_layer("augmentation")
            if view and has_augmentation(self.clf)
            else None
        )

        def compute(indices: list[int]) -> Iterator[tuple[list[int], np.ndarray]]:
            subset = [
                replace(items[i], label=i) for i in indices
            ]  # the label slot carries the position
            what = "feature extraction" + (f" (augmented view {view})" if view else "")
            with Progress(len(indices), what, "images", enabled=self.progress) as bar:
                yield from self._chunks(subset, augment, bar)

        return compute

    def _chunks(self, subset: list[ImageItem], augment, bar: Progress):
        kept: list[int] = []
        out: list[np.ndarray] = []
        data = decoded_dataset(subset, self.cfg.image_size, self.log, cache=False)
        for x, pos in batched(data, self.cfg.batch_size):
            if augment is not None:
                x = augment(x, training=True)
            out.append(self._forward(x).numpy().astype(np.float16))
            kept.extend(int(p) for p in pos.numpy())
            bar.advance(len(pos))
            if len(kept) >= SHARD_ROWS:
                yield kept, np.concatenate(out)
                kept, out = [], []
        if kept:
            yield kept, np.concatenate(out)

    def get(self, items: list[ImageItem], view: int) -> tuple[ShardedRows, np.ndarray]:
        """(activations, labels) of ``items`` in ``view``; an undecodable image drops out of both.
        The activations are read from the cache's shards batch by batch
        (:class:`~imgclf.training.shards.ShardedRows`), never all held in memory.

        Args:
            items: the images.
            view: 0 for the images as they are, k > 0 for the k-th augmented copy.
        """
        hashes = FeatureCache.digests([i.path for i in items])
        kept, acts = self.cache.get(hashes, view, self._compute(items, view))
        return acts, np.array([items[i].label for i in kept], np.int32)


def forward_rows(model: keras.Model, rows: ShardedRows, batch_size: int = 256) -> ShardedRows:
    """``model``'s output for every row, a batch at a time, kept (float32) in shards in a
    temporary folder that lives as long as the returned rows.

    Args:
        model: e.g. the frozen top of the backbone over cached activations.
        rows: its inputs. batch_size: rows per forward pass.
    """
    scratch = tempfile.TemporaryDirectory(prefix="imgclf-rows-")
    folder = Path(scratch.name)
    files: list[Path] = []
    shard, row, out = [], [], []
    for k in range(0, len(rows), batch_size):
        idx = np.arange(k, min(k + batch_size, len(rows)))
        out.append(np.asarray(_forward(model, rows.take(idx)), np.float32))
        if sum(len(o) for o in out) >= SHARD_ROWS or idx[-1] == len(rows) - 1:
            block = np.concatenate(out)
            files.append(write_shard(folder, [str(i) for i in range(len(block))], block))
            shard.append(np.full(len(block), len(files) - 1))
            row.append(np.arange(len(block)))
            out = []
    shape = tuple(model.output.shape[1:])
    if not files:
        return ShardedRows([], np.zeros(0, int), np.zeros(0, int), shape)
    return ShardedRows(
        files, np.concatenate(shard), np.concatenate(row), shape, owners=[scratch]
    )  # the temporary folder goes when the last rows that read it do


def _forward(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """``model``'s output for one batch. Under a strategy of several replicas (``--devices N``),
    ``predict_on_batch`` would give every replica the whole batch and return each one's copy, so
    ``predict`` splits it over them instead."""
    if model.distribute_strategy.num_replicas_in_sync > 1:
        return model.predict(x, batch_size=len(x), verbose=0)
    return model.predict_on_batch(x)


def has_augmentation(clf: Classifier) -> bool:
    """Whether the classifier has an augmentation layer (``--augment`` not ``none``).

    Args:
        clf: the classifier.
    """
    return any(layer.name == "augmentation" for layer in clf.model.layers)


def _weights_id(clf: Classifier) -> str:
    """Identifies the backbone's pretrained weights (cheap: a digest of a few weight tensors)."""
    h = hashlib.blake2b(digest_size=8)
    for w in clf.backbone.weights[:3] + clf.backbone.weights[-3:]:
        h.update(np.asarray(w.numpy()).tobytes()[:4096])
    return h.hexdigest()
