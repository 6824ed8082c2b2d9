"""A from-scratch network for tiny pictures (8-32 px), trained at their native size.

Stages of two 3×3 Conv2D/BatchNorm/ReLU layers, one MaxPooling2D between stages, global pooling,
Dense 128: an 8×8 digit keeps 4×4 cells after its one pooling step (the ``cnn``, built for 32 px
and up, pools three times, down to 1×1), 28 px Fashion-MNIST 7×7 after two. The layers were
measured against a small MLP and the ``cnn`` upsampled to 64 px in docs/benchmarks.md ("Tiny
images in seconds").
"""

from __future__ import annotations

import math

import keras

from imgclf.models.cnn import BN_MOMENTUM
from imgclf.models.registry import register_model

__all__ = ["build_tiny_cnn", "pooling_steps", "TINY_WIDTHS"]

TINY_WIDTHS = (16, 32, 64)  # filters of each stage; a stage follows each pooling step
SMALLEST_GRID = 4  # pooling stops before the feature map would fall under this many cells a side


def pooling_steps(image_size: int) -> int:
    """Pooling steps for a square input: halve while the map stays at least 4 cells a side, at
    least once and at most ``len(TINY_WIDTHS) - 1`` times (8 px: 1, 16-28 px: 2, 32 px: 2).

    Args:
        image_size: the square input size in pixels.
    """
    halvings = int(math.floor(math.log2(max(image_size, 1) / SMALLEST_GRID)))
    return max(1, min(len(TINY_WIDTHS) - 1, halvings))


@register_model(
    "tiny_cnn",
    pretrained=False,
    default_size=32,
    min_size=8,
    description="from-scratch network for pictures of 8-32 px at their native size",
    default_epochs=30,
)
def build_tiny_cnn(image_size: int) -> keras.Model:
    """The tiny-picture backbone: ``pooling_steps + 1`` stages of two Conv2D/BatchNorm/ReLU
    layers with a MaxPooling2D between stages, global average pooling and Dense 128.

    Args:
        image_size: the square input size; the number of stages follows it.
    """
    layers = keras.layers
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    stages = pooling_steps(image_size) + 1
    for s, filters in enumerate(TINY_WIDTHS[:stages]):
        if s:
            x = layers.MaxPooling2D(name=f"stage{s}_pool")(x)
        for c in range(2):
            name = f"stage{s}_conv{c}"
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    return keras.Model(inputs, x, name="tiny_cnn_backbone")
