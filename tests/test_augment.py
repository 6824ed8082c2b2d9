"""imgclf.data.augment: the augmentation spec and the Keras layers it becomes."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.data.augment import (
    AUGMENTATIONS,
    augmentation_layers,
    mix_batch,
    mixing_layer,
    parse_augment,
)
from imgclf.errors import ConfigError
from imgclf.options import MIXING, image_augment

PER_IMAGE = [name for name in AUGMENTATIONS if name not in MIXING]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("", {}),
        ("none", {}),
        ("NONE", {}),
        ("off", {}),
        ("flip", {"flip": None}),
        ("flip,vflip", {"flip": None, "vflip": None}),
        ("rotate", {"rotate": 15.0}),
        ("rotate=20", {"rotate": 20.0}),
        (" flip , Zoom=0.2 ", {"flip": None, "zoom": 0.2}),
        ("shift=0.5", {"shift": 0.5}),  # upper bound is inclusive
        ("brightness=1,contrast=0.3", {"brightness": 1.0, "contrast": 0.3}),
        ("flip,rotate=10,zoom=0.1", {"flip": None, "rotate": 10.0, "zoom": 0.1}),  # the default
        ("randaugment", {"randaugment": 0.5}),
        ("flip,RandAugment=0.3", {"flip": None, "randaugment": 0.3}),
        ("mixup", {"mixup": 0.2}),
        ("flip,mixup=0.4", {"flip": None, "mixup": 0.4}),
        ("cutmix=2", {"cutmix": 2.0}),
        ("hue,saturation=0.3,grayscale=1", {"hue": 0.1, "saturation": 0.3, "grayscale": 1.0}),
        ("blur,noise=4", {"blur": 0.3, "noise": 4.0}),
    ],
)
def test_accepted_specs(spec, expected):
    assert parse_augment(spec) == expected


@pytest.mark.parametrize(
    "spec, received, allowed",
    [
        ("emboss", "emboss", "'none' or a comma list of flip, vflip, rotate"),
        ("flip,sharpen=2", "sharpen=2", "'none' or a comma list of"),
        ("flip=1", "flip=1", "'flip' without a value"),
        ("rotate=0", "rotate=0", "rotate in (0, 180]"),  # lower bound is exclusive
        ("rotate=181", "rotate=181", "rotate in (0, 180]"),
        ("rotate=abc", "rotate=abc", "rotate=NUMBER"),
        ("zoom=0.95", "zoom=0.95", "zoom in (0, 0.9]"),
        ("shift=-0.1", "shift=-0.1", "shift in (0, 0.5]"),
        ("randaugment=1.5", "randaugment=1.5", "randaugment in (0, 1]"),
        ("mixup=0", "mixup=0", "mixup in (0, 2]"),
        ("cutmix=x", "cutmix=x", "cutmix=NUMBER"),
        ("flip,mixup,cutmix", "flip,mixup,cutmix", "at most one of mixup, cutmix"),
        ("grayscale=1.5", "grayscale=1.5", "grayscale in (0, 1]"),
        ("hue=0", "hue=0", "hue in (0, 1]"),
        ("noise=100", "noise=100", "noise in (0, 64]"),
    ],
)
def test_rejected_specs_name_the_bad_part(spec, received, allowed):
    with pytest.raises(ConfigError) as info:
        parse_augment(spec)
    message = str(info.value)
    assert "`augment`" in message
    assert f"received {received!r}" in message
    assert allowed in message


def test_none_gives_no_layers():
    assert augmentation_layers("none", seed=0) == []


def test_layer_types_and_settings():
    import keras

    layers = augmentation_layers(
        "flip,vflip,rotate=10,shift=0.1,zoom=0.2,brightness=0.2,contrast=0.2", seed=1
    )
    kinds = [type(layer) for layer in layers]
    assert kinds == [
        keras.layers.RandomFlip,
        keras.layers.RandomFlip,
        keras.layers.RandomRotation,
        keras.layers.RandomTranslation,
        keras.layers.RandomZoom,
        keras.layers.RandomBrightness,
        keras.layers.RandomContrast,
    ]
    assert layers[0].get_config()["mode"] == "horizontal"
    assert layers[1].get_config()["mode"] == "vertical"
    # Keras' rotation factor is a fraction of a full turn: 10 degrees -> 10/360
    assert max(np.abs(layers[2].get_config()["factor"])) == pytest.approx(10 / 360)
    assert layers[3].get_config()["height_factor"] == pytest.approx(0.1)
    assert max(np.abs(layers[4].get_config()["height_factor"])) == pytest.approx(0.2)
    # brightness/contrast work on raw [0, 255] pixels (the model's input)
    assert tuple(layers[5].get_config()["value_range"]) == (0, 255)
    assert tuple(layers[6].get_config()["value_range"]) == (0, 255)


def test_photometric_layers_and_their_settings():
    """hue, saturation, grayscale: Keras' RandomHue, RandomSaturation (its factor 0.5 is no change:
    saturation=F spans 0.5 +- F/2) and RandomGrayscale (the probability), on [0, 255] pixels."""
    import keras

    hue, saturation, grey = augmentation_layers("hue=0.2,saturation=0.5,grayscale=1", seed=2)
    assert isinstance(hue, keras.layers.RandomHue) and hue.factor == pytest.approx((0, 0.2))
    assert isinstance(saturation, keras.layers.RandomSaturation)
    assert saturation.factor == pytest.approx((0.25, 0.75))
    assert isinstance(grey, keras.layers.RandomGrayscale) and grey.factor == pytest.approx(1.0)
    assert tuple(hue.value_range) == tuple(saturation.value_range) == (0, 255)
    x = np.random.default_rng(2).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    y = np.asarray(grey(x, training=True))  # probability 1: every image grey
    np.testing.assert_allclose(y[..., 0], y[..., 1], atol=1e-3)
    np.testing.assert_allclose(np.asarray(grey(x, training=False)), x)


def test_camera_layers_blur_and_add_noise_in_training_only():
    """blur=P: Keras' RandomGaussianBlur applied with probability P; noise=SIGMA: GaussianNoise of
    SIGMA grey levels (Keras' layer takes a stddev <= 1, so it runs on pixels scaled to [0, 1])."""
    import keras

    blur, noise = augmentation_layers("blur=1,noise=8", seed=4)
    assert isinstance(blur, keras.layers.RandomGaussianBlur)
    x = np.random.default_rng(3).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    assert np.asarray(blur(x, training=True)).std() < 0.8 * x.std()  # smoothed
    np.testing.assert_allclose(np.asarray(blur(x, training=False)), x)
    assert (np.asarray(noise(x, training=True)) - x).std() == pytest.approx(8, rel=0.1)
    np.testing.assert_allclose(np.asarray(noise(x, training=False)), x, atol=1e-3)


def test_every_per_image_augmentation_builds_one_layer_and_mixing_none():
    for name in PER_IMAGE:
        assert len(augmentation_layers(name, seed=0)) == 1, name
    for name in MIXING:  # a batch step, not a layer of the model
        assert augmentation_layers(f"flip,{name}", seed=0)[0].name == "aug_flip"
        assert len(augmentation_layers(f"flip,{name}", seed=0)) == 1
    (ra,) = augmentation_layers("randaugment=0.3", seed=0)
    assert (
        type(ra).__name__ == "RandAugment"
        and ra.factor == pytest.approx((0, 0.3))
        and tuple(ra.value_range) == (0, 255)
    )


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("flip,rotate=10,zoom=0.1", "flip,rotate=10,zoom=0.1"),
        ("flip, mixup=0.2", "flip"),
        ("cutmix", "none"),
        ("none", "none"),
    ],
)
def test_the_cached_views_depend_on_the_per_image_part_only(spec, expected):
    assert image_augment(spec) == expected


def test_layers_are_identity_at_inference_and_random_in_training():
    import keras

    spec = ",".join(PER_IMAGE)  # every per-image augmentation at its default strength
    model = keras.Sequential(augmentation_layers(spec, seed=3))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), x, atol=1e-4)
    y = np.asarray(model(x, training=True))
    assert y.shape == x.shape
    assert not np.allclose(y, x)


def test_randaugment_changes_pixels_in_training_only():
    import keras

    model = keras.Sequential(augmentation_layers("randaugment=0.8", seed=5))
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), x)
    y = np.asarray(model(x, training=True))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    assert np.mean(np.abs(y - x)) > 1.0


@pytest.mark.parametrize("name", MIXING)
def test_mixing_mixes_pixels_and_labels_of_pairs(name):
    """MixUp/CutMix on a batch: the pixels (or activation maps, any channel count) and the one-hot
    labels of pairs are mixed, every label row still sums to 1; a sigmoid output's (n, 1) targets
    too."""
    assert mixing_layer("flip", seed=0) is None
    layer = mixing_layer(f"{name}=1", seed=3)
    assert type(layer).__name__ == {"mixup": "MixUp", "cutmix": "CutMix"}[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 16, 16, 24)).astype("float32")
    y = np.eye(4, dtype="float32")[np.arange(8) % 4]
    mixed_x, mixed_y = (np.asarray(t) for t in mix_batch(layer, x, y))
    assert mixed_x.shape == x.shape and mixed_y.shape == y.shape
    assert not np.allclose(mixed_x, x)
    assert not np.allclose(mixed_y, y)  # soft labels
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, atol=1e-5)
    binary = (np.arange(8) % 2).astype("float32").reshape(-1, 1)
    _, mixed_b = mix_batch(layer, x, binary)
    mixed_b = np.asarray(mixed_b)
    assert mixed_b.shape == (8, 1) and mixed_b.min() >= 0 and mixed_b.max() <= 1
    assert not np.array_equal(mixed_b, binary)


def test_cached_view_batches_are_mixed_with_their_labels():
    """The fine-tuning stage's batches of cached activations (manifold mixup): activations and
    targets."""
    from imgclf.training.views import ViewBatches

    rng = np.random.default_rng(0)
    views = rng.normal(size=(2, 12, 4, 4, 8)).astype("float32")
    targets = np.eye(3, dtype="float32")[np.arange(12) % 3]
    plain = ViewBatches(views, targets, batch_size=6, seed=1)
    mixed = ViewBatches(views, targets, batch_size=6, seed=1, mix=mixing_layer("mixup=1", seed=2))
    (x0, y0), (x1, y1) = plain[0], mixed[0]
    assert x1.shape == x0.shape and y1.shape == y0.shape
    assert not np.allclose(x1, x0) and not np.allclose(y1, y0)
    np.testing.assert_allclose(y1.sum(axis=1), 1.0, atol=1e-5)
