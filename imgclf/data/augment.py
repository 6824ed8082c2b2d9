"""Training-only augmentation in the notes' vocabulary, built from Keras preprocessing layers.

``"flip,rotate=20,shift=0.1,zoom=0.1"`` → RandomFlip, RandomRotation, RandomTranslation, RandomZoom.
Keras' random layers are identity at inference, so the saved model predicts on clean images.
"""

from __future__ import annotations

from imgclf.options import AUGMENTATIONS, parse_augment

__all__ = ["AUGMENTATIONS", "parse_augment", "augmentation_layers"]


def augmentation_layers(spec: str, seed: int) -> list:
    """The Keras layers for ``spec`` (empty list for 'none'). Applied to raw [0, 255] pixels.

    Args:
        spec: the ``--augment`` spec, e.g. ``"flip,rotate=20,shift=0.1,zoom=0.1"`` or ``"none"``.
        seed: seed of the first layer; each following layer gets the next integer.
    """
    import keras

    layers = keras.layers
    out = []
    for i, (name, value) in enumerate(parse_augment(spec).items()):
        s = seed + i
        if name == "flip":
            out.append(layers.RandomFlip("horizontal", seed=s, name="aug_flip"))
        elif name == "vflip":
            out.append(layers.RandomFlip("vertical", seed=s, name="aug_vflip"))
        elif name == "rotate":
            out.append(layers.RandomRotation(value / 360.0, fill_mode="reflect", seed=s, name="aug_rotate"))
        elif name == "shift":
            out.append(layers.RandomTranslation(value, value, fill_mode="reflect", seed=s, name="aug_shift"))
        elif name == "zoom":
            out.append(layers.RandomZoom((-value, value), fill_mode="reflect", seed=s, name="aug_zoom"))
        elif name == "brightness":
            out.append(layers.RandomBrightness(value, value_range=(0, 255), seed=s, name="aug_brightness"))
        elif name == "contrast":
            out.append(layers.RandomContrast(value, value_range=(0, 255), seed=s, name="aug_contrast"))
    return out
