"""Precise BatchNorm statistics for a from-scratch model: re-estimated before each validation.

A BatchNormalization layer normalises in training mode with the statistics of the batch, and in
inference mode (validation, test, prediction) with its moving averages. While the optimizer keeps
changing the convolutions before it, those averages (momentum 0.9: mostly the last ~10 batches)
describe weights that no longer exist, and a from-scratch network's validation accuracy swings from
epoch to epoch although its training accuracy climbs smoothly (docs/benchmarks.md, "the from-scratch
cnn's swing"). :class:`PreciseBatchNorm` replaces them, before each validation, by the plain average
over a fixed sample of training batches run through the current weights in training mode ("precise
BN", Wu & Johnson 2021, as in fvcore/Detectron2's ``update_bn_stats`` and PyTorch's
``torch.optim.swa_utils.update_bn``). No weight but the moving statistics changes.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from imgclf.data.pipeline import batched
from imgclf.models.classifier import iter_layers

__all__ = ["PreciseBatchNorm"]


class PreciseBatchNorm(keras.callbacks.Callback):
    """Before each validation, set every BatchNormalization layer's moving mean and variance of
    ``backbone`` to their average over ``batches`` training batches (decoded images, no
    augmentation).

    Args:
        backbone: the model whose BatchNorm layers are re-estimated (the from-scratch backbone).
        train_raw: decoded ``(image, label)`` training pairs.
        batches: how many batches to average over.
        batch_size: images per batch.
        seed: seed of the shuffle that picks the images (the same images every epoch).
    """

    def __init__(
        self,
        backbone: keras.Model,
        train_raw: tf.data.Dataset,
        batches: int,
        batch_size: int,
        seed: int,
    ):
        super().__init__()
        self.backbone, self.batches = backbone, batches
        n = batches * batch_size
        self._data = batched(
            train_raw.shuffle(4 * n, seed=seed, reshuffle_each_iteration=False).take(n), batch_size
        )
        self._layers = [
            layer
            for layer in iter_layers(backbone)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    def on_test_begin(self, logs=None):
        momenta = [layer.momentum for layer in self._layers]
        try:
            for i, (x, _) in enumerate(self._data):
                for layer in (
                    self._layers
                ):  # moving = moving * m + batch * (1 - m): with m = i / (i + 1), the plain mean
                    layer.momentum = i / (i + 1)
                self.backbone(
                    tf.cast(x, "float32"), training=True
                )  # eager: the momentum is read at each call
        finally:
            for layer, momentum in zip(self._layers, momenta, strict=True):
                layer.momentum = momentum
