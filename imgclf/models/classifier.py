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
    "resized",
    "reusable_backbone",
    "HEAD_DROPOUT",
    "head_learning_rate",
    "inference_model",
]

HEAD_DROPOUT = 0.2
HEAD_NORM_MOMENTUM = 0.9  # the multi-depth head's BatchNormalization (docs/benchmarks.md stop 13)
# the multi-depth head's output layer: 12,736 normalised inputs for ~1,000s of images want a strong
# L2 penalty, and a smaller step (a share of --learning-rate); on the digits' frozen features at
# 160 px, splits 42/1/2: test 0.957/0.981/0.957 against 0.933/0.966/0.938 without
# (bench/bench_multi_depth_head.py, docs/benchmarks.md stop 14)
HEAD_NORM_L2 = 0.03
HEAD_NORM_LR_SCALE = 0.3


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
    spec: ModelSpec,
    num_classes: int,
    image_size: int,
    augment: str,
    seed: int,
    backbone: keras.Model | None = None,
    feature_norm: bool = False,
) -> Classifier:
    """The classifier around a registry model: augmentation (training only), the backbone, dropout
    and the output layer; ``head`` shares that output layer for the head stage.

    Args:
        spec: the registry entry whose builder makes the backbone.
        num_classes: the number of classes (2: one sigmoid output).
        image_size: the square input size in pixels.
        augment: the ``--augment`` spec (``"none"``: no augmentation layer).
        seed: seed of the augmentation layers and the head's initialisation.
        backbone: a backbone already built (one that takes ``image_size``, e.g. a file's that takes
            any size: :func:`reusable_backbone`); None (the default) builds ``spec``'s.
        feature_norm: a BatchNormalization layer (``head_norm``) before the dropout, for features
            whose scales differ widely (:mod:`imgclf.models.multi_depth`). Defaults to False.
    """
    keras.utils.set_random_seed(seed)
    backbone = spec.builder(image_size) if backbone is None else backbone
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    aug = augmentation_layers(augment, seed)
    if aug:
        x = keras.Sequential(aug, name="augmentation")(x)
    features = backbone(x, training=False) if spec.pretrained else backbone(x)
    dropout = keras.layers.Dropout(HEAD_DROPOUT, name="head_dropout")
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    penalty = keras.regularizers.L2(HEAD_NORM_L2) if feature_norm else None
    dense = keras.layers.Dense(
        units,
        activation=activation,
        kernel_regularizer=penalty,
        dtype="float32",
        name="predictions",
    )  # float32 under mixed precision
    # momentum 0.9: a --time head may train only ~35 steps, too few for Keras' 0.99 to settle
    # the moving statistics (223 images, 5 epochs: test 0.78 vs 0.58; all: 0.93 vs 0.94)
    norm = keras.layers.BatchNormalization(momentum=HEAD_NORM_MOMENTUM, name="head_norm")
    layers = [norm] if feature_norm else []
    layers += [dropout, dense]
    model = keras.Model(inputs, _chain(layers, features), name="imgclf_classifier")
    feature_input = keras.Input((backbone.output.shape[-1],), name="features")
    head = keras.Model(feature_input, _chain(layers, feature_input), name="head")
    return Classifier(model, backbone, head, spec)


def head_learning_rate(clf: Classifier, learning_rate: float) -> float:
    """The head stage's learning rate: ``learning_rate`` (``--learning-rate``), or its
    :data:`HEAD_NORM_LR_SCALE` share for a head that normalises its features first (the
    multi-depth head, :func:`build_classifier`'s ``feature_norm``).

    Args:
        clf: the classifier.
        learning_rate: the ``--learning-rate`` value.
    """
    return learning_rate * HEAD_NORM_LR_SCALE if _normalises(clf) else learning_rate


def _normalises(clf: Classifier) -> bool:
    """Whether ``clf``'s head normalises its features first (``head_norm``)."""
    return any(layer.name == "head_norm" for layer in clf.head.layers)


def _chain(layers: list, x):
    for layer in layers:
        x = layer(x)
    return x


def resized(clf: Classifier, num_classes: int, image_size: int, augment: str, seed: int):
    """``clf`` rebuilt at ``image_size``: its backbone reused where it takes that size
    (:func:`reusable_backbone`), its kind of head (with ``head_norm`` or not) new.

    Args:
        clf: the classifier.
        num_classes: the number of classes.
        image_size: the new square input size.
        augment: the ``--augment`` spec.
        seed: seed of the augmentation layers and the head's initialisation.
    """
    backbone = reusable_backbone(clf, image_size)
    norm = _normalises(clf)
    return build_classifier(clf.spec, num_classes, image_size, augment, seed, backbone, norm)


def reusable_backbone(clf: Classifier, image_size: int) -> keras.Model | None:
    """``clf``'s backbone when it takes ``image_size`` as it is (its input side is free, as a
    ``.keras`` file's such as the built-in Lite0's), so a classifier at that size need not load or
    build it again; else None.

    Args:
        clf: a classifier.
        image_size: the square input size wanted.
    """
    side = clf.backbone.input_shape[1]
    return clf.backbone if side is None or side == image_size else None


def class_probabilities(outputs) -> np.ndarray:
    """Model outputs → an (n, num_classes) probability matrix (a sigmoid unit becomes two columns).

    Args:
        outputs: the model's ``(n, 1)`` sigmoid or ``(n, num_classes)`` softmax outputs.
    """
    p = np.asarray(outputs, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        return np.concatenate([1.0 - p, p], axis=1)
    return p


def inference_model(model: keras.Model) -> keras.Model:
    """``model`` without its training-only augmentation block (same layers, same weights).

    The random augmentation ops do nothing at inference but stay in a traced graph, and neither
    TFLite nor ONNX can convert them.

    Args:
        model: a run's Keras model (input → [augmentation] → backbone → dropout → predictions).
    """
    names = [layer.name for layer in model.layers]
    if "augmentation" not in names:
        return model
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:
        if layer.name != "augmentation":
            x = layer(x)
    return keras.Model(inputs, x, name=model.name)
