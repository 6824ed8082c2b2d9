"""The feature-cache plumbing of the cached stages: the frozen bottom's activations for a list of
images and one view (0: the image as is; k > 0: the k-th augmented copy), computed on a miss and
kept
in :class:`~imgclf.training.feature_cache.FeatureCache`."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import keras
import numpy as np
import tensorflow as tf

from imgclf.config import TrainConfig
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import Classifier
from imgclf.options import image_augment
from imgclf.progress import Progress
from imgclf.training.feature_cache import FeatureCache, default_cache_root

__all__ = ["Activations", "has_augmentation"]


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
        bottom."""
        cfg = self.cfg
        augment = (
            self.clf.model.get_layer("augmentation")
            if view and has_augmentation(self.clf)
            else None
        )

        def compute(indices: list[int]) -> tuple[list[int], np.ndarray]:
            subset = [
                replace(items[i], label=i) for i in indices
            ]  # the label slot carries the position
            kept, out = [], []
            what = "feature extraction" + (f" (augmented view {view})" if view else "")
            with Progress(len(indices), what, "images", enabled=self.progress) as bar:
                for x, pos in batched(
                    decoded_dataset(subset, cfg.image_size, self.log, cache=False), cfg.batch_size
                ):
                    if augment is not None:
                        x = augment(x, training=True)
                    out.append(self._forward(x).numpy())
                    kept.extend(int(p) for p in pos.numpy())
                    bar.advance(len(pos))
            shape = (0, *self.bottom.output.shape[1:])
            return kept, (np.concatenate(out) if out else np.zeros(shape, np.float32))

        return compute

    def get(self, items: list[ImageItem], view: int) -> tuple[np.ndarray, np.ndarray]:
        """(activations, labels) of ``items`` in ``view``; an undecodable image drops out of both.

        Args:
            items: the images.
            view: 0 for the images as they are, k > 0 for the k-th augmented copy.
        """
        hashes = FeatureCache.digests([i.path for i in items])
        kept, acts = self.cache.get(hashes, view, self._compute(items, view))
        return acts, np.array([items[i].label for i in kept], np.int32)


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
