"""Training-only augmentation by name (``flip``, ``rotate``, …), from Keras preprocessing layers.

``"flip,rotate=20,shift=0.1,zoom=0.1"`` → RandomFlip, RandomRotation, RandomTranslation, RandomZoom;
``brightness``, ``contrast``, ``hue``, ``saturation``, ``grayscale`` → Keras' RandomBrightness,
RandomContrast, RandomHue, RandomSaturation, RandomGrayscale (photometric changes: other light);
``blur``, ``noise`` → RandomGaussianBlur, GaussianNoise (another, worse camera); ``randaugment=F``
→ Keras' RandAugment. These are per-image layers inside the model (identity at inference, so the
saved model predicts on clean images); the pretrained recipe caches the activations of views they
make.

``mixup=ALPHA`` and ``cutmix=F`` mix *pairs* of a batch and their labels, so they cannot be layers
of a model that takes one image: :func:`mixing_layer` gives Keras' ``MixUp`` / ``CutMix`` layer and
:func:`mix_batch` applies it to one training batch. On decoded images it mixes the pixels; on the
cached activations of the pretrained recipe's fine-tuning stage it mixes the activations at the cut
(manifold mixup, Verma et al. 2019: the frozen bottom is not trained, so mixing its output is the
honest equivalent; CutMix then pastes a box of the activation grid). The head stage, a linear layer
on pooled features, trains unmixed.
"""

from __future__ import annotations

from imgclf.options import AUGMENTATIONS, MIXING, parse_augment

__all__ = ["AUGMENTATIONS", "parse_augment", "augmentation_layers", "mixing_layer", "mix_batch"]


def _per_image_layer(name: str, value: float | None, seed: int):
    """The Keras layer of one per-image token (None for the batch-mixing ones)."""
    import keras

    layers, pixels = keras.layers, (0, 255)
    builders = {
        "flip": lambda: layers.RandomFlip("horizontal", seed=seed, name="aug_flip"),
        "vflip": lambda: layers.RandomFlip("vertical", seed=seed, name="aug_vflip"),
        "rotate": lambda: layers.RandomRotation(
            value / 360.0, fill_mode="reflect", seed=seed, name="aug_rotate"
        ),
        "shift": lambda: layers.RandomTranslation(
            value, value, fill_mode="reflect", seed=seed, name="aug_shift"
        ),
        "zoom": lambda: layers.RandomZoom(
            (-value, value), fill_mode="reflect", seed=seed, name="aug_zoom"
        ),
        "brightness": lambda: layers.RandomBrightness(
            value, value_range=pixels, seed=seed, name="aug_brightness"
        ),
        "contrast": lambda: layers.RandomContrast(
            value, value_range=pixels, seed=seed, name="aug_contrast"
        ),
        "hue": lambda: layers.RandomHue(value, value_range=pixels, seed=seed, name="aug_hue"),
        # Keras' factor: 0 grey, 0.5 unchanged, 1 fully saturated; saturation=F spans 0.5 +- F/2
        "saturation": lambda: layers.RandomSaturation(
            (0.5 - value / 2, 0.5 + value / 2), value_range=pixels, seed=seed, name="aug_saturation"
        ),
        "grayscale": lambda: layers.RandomGrayscale(value, seed=seed, name="aug_grayscale"),
        # a worse camera: out of focus (RandomGaussianBlur's factor is the probability), and sensor
        # noise (Keras' GaussianNoise takes a stddev <= 1: applied on pixels scaled to [0, 1])
        "blur": lambda: layers.RandomGaussianBlur(
            value, kernel_size=7, sigma=(0.5, 1.5), value_range=pixels, seed=seed, name="aug_blur"
        ),
        "noise": lambda: keras.Sequential(
            [
                layers.Rescaling(1 / 255),
                layers.GaussianNoise(value / 255, seed=seed),
                layers.Rescaling(255),
            ],
            name="aug_noise",
        ),
        "randaugment": lambda: layers.RandAugment(
            value_range=pixels, num_ops=2, factor=value, seed=seed, name="aug_randaugment"
        ),
    }
    return builders[name]() if name in builders else None


def augmentation_layers(spec: str, seed: int) -> list:
    """The per-image Keras layers for ``spec`` (empty list for 'none'), in the spec's order.
    Applied to raw [0, 255] pixels. The batch-mixing tokens (``mixup``, ``cutmix``) are not among
    them: see :func:`mixing_layer`.

    Args:
        spec: the ``--augment`` spec, e.g. ``"flip,rotate=20,shift=0.1,zoom=0.1"`` or ``"none"``.
        seed: seed of the first layer; each following layer gets the next integer.
    """
    made = (
        _per_image_layer(name, value, seed + i)
        for i, (name, value) in enumerate(parse_augment(spec).items())
    )
    return [layer for layer in made if layer is not None]


def mixing_layer(spec: str, seed: int):
    """Keras' ``MixUp`` (``mixup=ALPHA``) or ``CutMix`` (``cutmix=F``) layer for ``spec``; None
    without either.

    Args:
        spec: the ``--augment`` spec.
        seed: the layer's seed.
    """
    import keras

    mixing = {name: value for name, value in parse_augment(spec).items() if name in MIXING}
    if "mixup" in mixing:
        return keras.layers.MixUp(alpha=mixing["mixup"], seed=seed, name="mixup")
    if "cutmix" in mixing:
        return keras.layers.CutMix(factor=mixing["cutmix"], seed=seed, name="cutmix")
    return None


def mix_batch(layer, x, y):
    """``(x, y)`` of one training batch, mixed by ``layer`` (:func:`mixing_layer`).

    Args:
        layer: a Keras ``MixUp`` or ``CutMix`` layer.
        x: images (or activation maps), ``(n, height, width, channels)``.
        y: float targets, ``(n, classes)`` one-hot or ``(n, 1)`` for a sigmoid output.
    """
    out = layer({"images": x, "labels": y}, training=True)
    return out["images"], out["labels"]
