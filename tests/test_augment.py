"""imgclf.data.augment: the augmentation spec and the Keras layers it becomes."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.data.augment import AUGMENTATIONS, augmentation_layers, parse_augment
from imgclf.errors import ConfigError


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
    ],
)
def test_accepted_specs(spec, expected):
    assert parse_augment(spec) == expected


@pytest.mark.parametrize(
    "spec, received, allowed",
    [
        ("blur", "blur", "'none' or a comma list of flip, vflip, rotate"),
        ("flip,sharpen=2", "sharpen=2", "'none' or a comma list of"),
        ("flip=1", "flip=1", "'flip' without a value"),
        ("rotate=0", "rotate=0", "rotate in (0, 180]"),  # lower bound is exclusive
        ("rotate=181", "rotate=181", "rotate in (0, 180]"),
        ("rotate=abc", "rotate=abc", "rotate=NUMBER"),
        ("zoom=0.95", "zoom=0.95", "zoom in (0, 0.9]"),
        ("shift=-0.1", "shift=-0.1", "shift in (0, 0.5]"),
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

    layers = augmentation_layers("flip,vflip,rotate=10,shift=0.1,zoom=0.2,brightness=0.2,contrast=0.2", seed=1)
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


def test_every_augmentation_name_builds_one_layer():
    for name in AUGMENTATIONS:
        assert len(augmentation_layers(name, seed=0)) == 1, name


def test_layers_are_identity_at_inference_and_random_in_training():
    import keras

    spec = ",".join(AUGMENTATIONS)  # every augmentation at its default strength
    model = keras.Sequential(augmentation_layers(spec, seed=3))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), x, atol=1e-4)
    y = np.asarray(model(x, training=True))
    assert y.shape == x.shape
    assert not np.allclose(y, x)
