"""Assemble a classifier: raw pixels → augmentation (training only) → backbone → dropout → output.

Two classes get one sigmoid unit and binary cross-entropy; more get softmax. A pretrained backbone
is always called with ``training=False`` so its BatchNorm layers stay in inference mode, also once
it is unfrozen for fine-tuning (the keras.io transfer-learning recipe).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np

from imgclf.data.augment import augmentation_layers
from imgclf.models.registry import ModelSpec

__all__ = [
    "Classifier",
    "build_classifier",
    "class_probabilities",
    "iter_layers",
    "loss_and_metric",
    "HEAD_DROPOUT",
]

HEAD_DROPOUT = 0.2


@dataclass
class Classifier:
    """The full model plus handles on its parts (for two-stage training)."""

    model: keras.Model  # pixels -> probabilities; what is saved as model.keras
    backbone: keras.Model  # pixels -> features
    head: keras.Model  # features -> probabilities (shares its layers with ``model``)
    spec: ModelSpec

    def apply_head(self, features):
        """The head's layers applied to ``features`` (a new graph sharing their weights, without
        nesting the compiled ``head`` model and its optimizer)."""
        x = features
        for layer in self.head.layers[1:]:
            x = layer(x)
        return x


def iter_layers(model: keras.Layer) -> Iterator[keras.Layer]:
    """Every layer inside ``model``, nested models included (depth first).

    Args:
        model: a Keras model or layer (one without ``layers`` yields nothing).
    """
    for layer in getattr(model, "layers", []):
        yield layer
        yield from iter_layers(layer)


def loss_and_metric(num_classes: int, label_smoothing: float = 0.0, soft_labels: bool = False):
    """(loss, accuracy metric, whether labels must be one-hot). Keras' sparse cross-entropy has no
    label smoothing, so smoothing a multi-class loss switches to one-hot labels; so do soft labels.

    Args:
        num_classes: 2 gives a sigmoid output's binary loss, more a softmax's.
        label_smoothing: the loss's label smoothing. Defaults to 0.
        soft_labels: the targets are mixed (``--augment mixup`` / ``cutmix``), so one-hot rows of
            probabilities rather than class indices. Defaults to False.
    """
    if num_classes == 2:
        return (
            keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
            keras.metrics.BinaryAccuracy(name="accuracy"),
            False,
        )
    if label_smoothing or soft_labels:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        return loss, keras.metrics.CategoricalAccuracy(name="accuracy"), True
    return (
        keras.losses.SparseCategoricalCrossentropy(),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        False,
    )


def build_classifier(
    spec: ModelSpec, num_classes: int, image_size: int, augment: str, seed: int
) -> Classifier:
    """The classifier around a registry model: augmentation (training only), the backbone, dropout
    and the output layer; ``head`` shares that output layer for the head stage.

    Args:
        spec: the registry entry whose builder makes the backbone.
        num_classes: the number of classes (2: one sigmoid output).
        image_size: the square input size in pixels.
        augment: the ``--augment`` spec (``"none"``: no augmentation layer).
        seed: seed of the augmentation layers and the head's initialisation.
    """
    keras.utils.set_random_seed(seed)
    backbone = spec.builder(image_size)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    aug = augmentation_layers(augment, seed)
    if aug:
        x = keras.Sequential(aug, name="augmentation")(x)
    features = backbone(x, training=False) if spec.pretrained else backbone(x)
    dropout = keras.layers.Dropout(HEAD_DROPOUT, name="head_dropout")
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    dense = keras.layers.Dense(
        units, activation=activation, dtype="float32", name="predictions"
    )  # float32 under mixed precision
    model = keras.Model(inputs, dense(dropout(features)), name="imgclf_classifier")
    feature_input = keras.Input((backbone.output.shape[-1],), name="features")
    head = keras.Model(feature_input, dense(dropout(feature_input)), name="head")
    return Classifier(model, backbone, head, spec)


def class_probabilities(outputs) -> np.ndarray:
    """Model outputs → an (n, num_classes) probability matrix (a sigmoid unit becomes two columns).

    Args:
        outputs: the model's ``(n, 1)`` sigmoid or ``(n, num_classes)`` softmax outputs.
    """
    p = np.asarray(outputs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        return np.concatenate([1.0 - p, p], axis=1)
    return p
