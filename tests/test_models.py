"""imgclf.models: the registry (every entry), classifiers, backbones, BatchNorm freezing, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import imgclf
from imgclf.errors import ConfigError, ModelError
from imgclf.models.backbones import KERAS_APPLICATIONS, build_keras_application, load_backbone_file
from imgclf.models.classifier import (
    build_classifier,
    class_probabilities,
    iter_layers,
    loss_and_metric,
)
from imgclf.models.layers import ImagenetPreprocess
from imgclf.models.registry import ModelSpec, choose_image_size, get_spec, list_models
from imgclf.training.recipe import freeze_below

ALL_MODELS = sorted(
    [
        "cnn",
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "tiny_cnn",
        *KERAS_APPLICATIONS,
    ]
)


def test_list_models_names():
    names = [spec.name for spec in list_models()]
    assert names == ALL_MODELS  # sorted, every registered entry
    assert [s.name for s in imgclf.list_models()] == names


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_registry_entry_is_well_formed(name):
    spec = get_spec(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert callable(spec.builder)
    assert 8 <= spec.min_size <= spec.default_size <= 1024  # tiny_cnn: 8 px
    assert spec.description
    if name in KERAS_APPLICATIONS:
        class_name = KERAS_APPLICATIONS[name][0]
        assert hasattr(keras.applications, class_name), f"keras.applications has no {class_name}"
        assert spec.pretrained and not spec.offline  # ImageNet weights are downloaded on first use
    else:
        assert (
            spec.offline
        )  # cnn and the built-in EfficientNet-Lite0, Lite1 and Lite2 need no network


def test_pretrained_flags():
    assert get_spec("cnn").pretrained is False
    assert get_spec("efficientnet_lite0").pretrained is True


@pytest.mark.parametrize("name", ["cnn", "efficientnet_lite0"])
@pytest.mark.parametrize("num_classes, units, activation", [(2, 1, "sigmoid"), (5, 5, "softmax")])
def test_build_classifier_output(name, num_classes, units, activation):
    clf = build_classifier(get_spec(name), num_classes, 64, "flip,rotate=10", seed=0)
    assert clf.model.output_shape == (None, units)
    assert clf.model.input_shape == (None, 64, 64, 3)
    out_layer = clf.model.get_layer("predictions")
    assert out_layer.activation is getattr(keras.activations, activation)
    assert clf.head.output_shape == (None, units)
    assert clf.head.input_shape == (None, clf.backbone.output_shape[-1])
    # the head shares the output layer with the full model (two-stage training relies on it)
    assert clf.head.get_layer("predictions") is out_layer
    probs = np.asarray(clf.model.predict(np.zeros((2, 64, 64, 3), "float32"), verbose=0))
    assert probs.shape == (2, units)
    assert np.all((probs >= 0) & (probs <= 1))
    if units > 1:
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_augmentation_is_part_of_the_model_only_when_asked():
    with_aug = build_classifier(get_spec("cnn"), 3, 64, "flip", seed=0).model
    without = build_classifier(get_spec("cnn"), 3, 64, "none", seed=0).model
    assert "augmentation" in [layer.name for layer in with_aug.layers]
    assert "augmentation" not in [layer.name for layer in without.layers]


@pytest.mark.parametrize(
    "name, size, features",
    [("mobilenet_v2", 96, 1280), ("efficientnet_b0", 64, 1280), ("resnet50", 64, 2048)],
)
def test_keras_application_backbone_accepts_a_batch(name, size, features):
    backbone = build_keras_application(name, size, weights=None)
    out = backbone.predict(
        np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32"), verbose=0
    )
    assert out.shape == (2, features)
    assert np.all(np.isfinite(out))
    mode = KERAS_APPLICATIONS[name][1]
    preprocess = [layer for layer in backbone.layers if isinstance(layer, ImagenetPreprocess)]
    assert [p.mode for p in preprocess] == ([mode] if mode else [])


def batchnorm_layers(model):
    return [
        layer for layer in iter_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]


@pytest.mark.parametrize("name", ["cnn", "mobilenet_v2"])
def test_unfreezing_a_backbone_keeps_batchnorm_frozen(name):
    backbone = (
        get_spec("cnn").builder(64)
        if name == "cnn"
        else build_keras_application(name, 96, weights=None)
    )
    bns = batchnorm_layers(backbone)
    assert bns
    freeze_below(backbone, None)
    assert backbone.trainable_weights == []
    freeze_below(backbone, 1)  # every layer after the input
    assert all(not bn.trainable for bn in bns)
    assert all(not bn.trainable_weights for bn in bns)
    convs = [layer for layer in iter_layers(backbone) if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(c.trainable for c in convs)
    assert backbone.trainable_weights  # the rest is unfrozen


def test_unfreezing_the_builtin_lite0_keeps_batchnorm_frozen():
    backbone = get_spec("efficientnet_lite0").builder(64)
    freeze_below(backbone, 1)  # every layer after the input
    bns = batchnorm_layers(backbone)
    assert bns and all(not bn.trainable for bn in bns)
    assert len(backbone.trainable_weights) > 0


def test_unknown_model_name_lists_known_names():
    with pytest.raises(ConfigError) as info:
        get_spec("resnet_50")
    message = str(info.value)
    assert "`model`" in message and "'resnet_50'" in message
    for name in ALL_MODELS:
        assert name in message


def test_nonexistent_keras_file_is_a_model_error(tmp_path):
    spec = get_spec(str(tmp_path / "nope.keras"))
    with pytest.raises(ModelError, match=r"backbone file '.*nope.keras' does not exist"):
        build_classifier(spec, 2, 64, "none", seed=0)


def test_unreadable_keras_file_is_a_model_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_text("not a zip")
    with pytest.raises(
        ModelError, match=r"^cannot load the backbone '.*broken.keras': it is not a Keras model"
    ):
        load_backbone_file(path)


def test_keras_file_backbone_with_a_feature_map_is_pooled(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    path = tmp_path / "tiny.keras"
    keras.Model(inputs, x).save(path)
    backbone = load_backbone_file(path)
    assert backbone.output_shape == (None, 4)
    clf = build_classifier(get_spec(str(path)), 3, 32, "none", seed=0)
    assert clf.model.output_shape == (None, 3)


def test_keras_file_backbone_with_a_sequence_output_is_rejected(tmp_path):
    inputs = keras.Input((8, 3))
    path = tmp_path / "seq.keras"
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(path)
    with pytest.raises(ModelError, match=r"expected \(batch, features\) or a feature map"):
        load_backbone_file(path)


def test_offline_download_failure_says_what_to_do(monkeypatch):
    def no_network(*args, **kwargs):
        raise Exception(
            "URL fetch failure on https://storage.googleapis.com/tensorflow/"
            "keras-applications/mobilenet_v2/x.h5: "
            "None -- [Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(keras.applications, "MobileNetV2", no_network)
    with pytest.raises(ModelError) as info:
        build_keras_application("mobilenet_v2", 96)
    message = str(info.value)
    assert "'mobilenet_v2'" in message
    assert "URL fetch failure" in message  # the reason is kept
    assert "efficientnet_lite0" in message
    assert "~/.keras/models/" in message
    assert "\n" not in message
    with pytest.raises(ModelError, match="efficientnet_lite0"):  # through the registry too
        build_classifier(get_spec("mobilenet_v2"), 2, 96, "none", seed=0)


@pytest.mark.parametrize(
    "name, sides, expected",
    [
        ("cnn", [40] * 5, 64),  # below the range: raised to min_size
        (
            "cnn",
            [100, 100, 90],
            96,
        ),  # 100 -> 96 (nearest multiple of 32): no upsampling for nothing
        ("cnn", [112, 112], 128),  # halves round up
        ("cnn", [300], 128),  # never above default_size
        ("cnn", [], 128),
        ("efficientnet_lite0", [150, 150, 10], 160),
        ("efficientnet_lite0", [100] * 3, 128),
        ("efficientnet_lite0", [1000] * 3, 224),
    ],
)
def test_choose_image_size(name, sides, expected):
    assert choose_image_size(get_spec(name), sides) == expected


def test_class_probabilities():
    two = class_probabilities(np.array([[0.8], [0.1]]))
    np.testing.assert_allclose(two, [[0.2, 0.8], [0.9, 0.1]])
    three = class_probabilities(np.array([[0.2, 0.3, 0.5]]))
    np.testing.assert_allclose(three, [[0.2, 0.3, 0.5]])


def test_loss_and_metric():
    loss, metric, one_hot = loss_and_metric(2)
    assert isinstance(loss, keras.losses.BinaryCrossentropy) and not one_hot
    loss, metric, one_hot = loss_and_metric(4)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy) and not one_hot
    assert metric.name == "accuracy"
    loss, metric, one_hot = loss_and_metric(
        4, label_smoothing=0.1
    )  # sparse CE has no smoothing: one-hot labels
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and one_hot
    assert metric.name == "accuracy"


def test_imagenet_preprocess_layer():
    x = np.array([[[[0.0, 127.5, 255.0]]]], "float32")
    np.testing.assert_allclose(
        np.asarray(ImagenetPreprocess("tf")(x)), [[[[-1.0, 0.0, 1.0]]]], atol=1e-6
    )
    assert ImagenetPreprocess("caffe").get_config()["mode"] == "caffe"
    with pytest.raises(ValueError, match=r"argument `mode`.*Received: mode='bgr'"):
        ImagenetPreprocess("bgr")


def test_a_model_module_registers_through_the_decorator(tmp_path, monkeypatch):
    """timm's way: importing a module whose builder carries @register_model is all it takes."""
    from imgclf.models import registry

    (tmp_path / "my_vit_model.py").write_text(
        "from imgclf.models.registry import register_model\n"
        "@register_model('my_vit', pretrained=False, default_size=64, min_size=32, "
        "description='a test model')\n"
        "def build(image_size):\n"
        "    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        registry, "_REGISTRY", dict(registry._REGISTRY)
    )  # leave the real table as it was
    __import__("my_vit_model")
    assert "my_vit" in [spec.name for spec in list_models()]
    assert get_spec("my_vit").description == "a test model"


def test_the_registry_imports_no_model_module():
    import ast
    from pathlib import Path

    from imgclf.models import registry

    tree = ast.parse(Path(registry.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("imgclf.models")}
