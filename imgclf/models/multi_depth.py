"""A classifier over several depths of a frozen pretrained backbone: the average- and max-pooled
activations of some of its intermediate layers and of its last, concatenated, then the usual
dropout and output layer (issue 21.2).

A head on the last layer's pooled features reads only what ImageNet taught that layer; shallower
layers keep shape and texture detail that a new task may need (on the sign-language digits a head
on the last layer of Lite0 stops at ~0.90 test accuracy, docs/benchmarks.md stop 13). The model
is an ordinary Keras functional graph (pooling and concatenation: built-in TFLite operations), so
it is saved, loaded and exported like the plain classifier.
"""

from __future__ import annotations

import keras

from imgclf.constants import LABEL_ISSUE_LAYERS
from imgclf.errors import invalid_value
from imgclf.models.classifier import Classifier, build_classifier

__all__ = [
    "MULTI_DEPTH_HEAD_EPOCHS",
    "MULTI_DEPTH_LAYERS",
    "MULTI_DEPTH_STEP",
    "check_multi_depth",
    "has_layers",
    "multi_depth_classifier",
    "multi_depth_features",
]

MULTI_DEPTH_NAME = "multi_depth"
# the layers read: those the label-issue search measured best on the same backbone (config.py)
MULTI_DEPTH_LAYERS = LABEL_ISSUE_LAYERS
# under --time, the multi-depth head's input this much larger than the size chosen when the plan
# still fits: frozen ImageNet features read better nearer the 224 px they were learnt at (the
# digits' 100 px photos, the head's val accuracy on three splits: 0.956-0.961 at 128 px,
# 0.971-0.978 at 160; docs/benchmarks.md stop 14)
MULTI_DEPTH_STEP = 32
# … when the head still gets this many epochs there, or as many as at the smaller size: 8 epochs
# at 160 px beat 18-30 at 128 on all three splits tried (stop 14)
MULTI_DEPTH_HEAD_EPOCHS = 8


def has_layers(backbone: keras.Model, layers: tuple[str, ...] = MULTI_DEPTH_LAYERS) -> bool:
    """Whether ``backbone`` has every layer of ``layers`` (the built-in Lite0 has
    :data:`MULTI_DEPTH_LAYERS`).

    Args:
        backbone: a functional Keras backbone.
        layers: layer names. Defaults to :data:`MULTI_DEPTH_LAYERS`.
    """
    names = {layer.name for layer in backbone.layers}
    return all(name in names for name in layers)


def multi_depth_features(
    backbone: keras.Model, layers: tuple[str, ...] = MULTI_DEPTH_LAYERS
) -> keras.Model:
    """A model from ``backbone``'s input to the average- and max-pooled activations of ``layers``,
    concatenated (one vector per image; it shares the backbone's layers and weights).

    Args:
        backbone: the pretrained backbone (a functional Keras model).
        layers: names of its layers whose activations are pooled. Defaults to
            :data:`MULTI_DEPTH_LAYERS`.
    """
    pooled = []
    for name in layers:
        maps = backbone.get_layer(name).output
        pooled += [
            keras.layers.GlobalAveragePooling2D(name=f"{name}_avg")(maps),
            keras.layers.GlobalMaxPooling2D(name=f"{name}_max")(maps),
        ]
    joined = keras.layers.Concatenate(name="multi_depth_concat")(pooled)
    return keras.Model(backbone.input, joined, name=MULTI_DEPTH_NAME)


def multi_depth_classifier(
    clf: Classifier, num_classes: int, image_size: int, augment: str, seed: int
) -> Classifier:
    """``clf`` rebuilt with :func:`multi_depth_features` of its backbone as the backbone (the same
    layers and weights, nothing loaded again), and a new head that normalises them first
    (``head_norm``, a BatchNormalization layer).

    Args:
        clf: a classifier whose backbone :func:`has_layers`.
        num_classes: the number of classes.
        image_size: the square input size in pixels (the backbone's input must take it).
        augment: the ``--augment`` spec.
        seed: seed of the augmentation layers and the head's initialisation.
    """
    features = multi_depth_features(clf.backbone)
    # their scales differ by layer: normalised before the output layer (test 92 % vs 88 % on the
    # digits at 128 px, docs/benchmarks.md stop 13)
    return build_classifier(clf.spec, num_classes, image_size, augment, seed, features, True)


def check_multi_depth(backbone: keras.Model, model: str, fine_tune: str, fine_tune_from) -> None:
    """Raise a one-line :class:`~imgclf.errors.ConfigError` when ``--head-features multi`` cannot
    be: ``backbone`` lacks :data:`MULTI_DEPTH_LAYERS`, or fine-tuning is asked (the multi-depth
    head trains on the frozen backbone only).

    Args:
        backbone: the run's backbone.
        model: the ``--model`` name (for the message).
        fine_tune: the ``--fine-tune`` value (``auto`` and ``none`` are allowed).
        fine_tune_from: the ``--fine-tune-from`` value (must be None).
    """
    if not has_layers(backbone):
        raise invalid_value(
            "head_features",
            "multi",
            f"'last' or 'auto' for --model {model}: 'multi' reads layers that only "
            "efficientnet_lite0 has",
        )
    if fine_tune_from or fine_tune not in ("auto", "none"):
        given = (
            f"--fine-tune-from {fine_tune_from}" if fine_tune_from else f"--fine-tune {fine_tune}"
        )
        raise invalid_value(
            "head_features",
            "multi",
            f"'last' or 'auto' with {given}: 'multi' trains a head on the frozen backbone only",
        )
