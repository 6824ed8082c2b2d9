"""Pretrained backbones: the built-in EfficientNet-Lite0 (offline), keras.applications by name
(ImageNet weights downloaded on first use), and any .keras file."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import keras

from imgclf.errors import ModelError
from imgclf.models.layers import ImagenetPreprocess
from imgclf.models.loading import load_model_file
from imgclf.models.registry import ModelSpec, register_file_backbone, register_model

__all__ = ["BUILTIN_WEIGHTS", "file_backbone_spec", "load_backbone_file"]

BUILTIN_WEIGHTS = Path(__file__).parent / "weights" / "efficientnet_lite0_imagenet_notop.keras"


def load_backbone_file(path: str | Path) -> keras.Model:
    """Load a .keras model as a feature extractor (pooled if it ends in a feature map).

    Args:
        path: the ``.keras`` file.
    """
    p = Path(path)
    if p.is_dir():
        raise ModelError(
            f"--model {str(path)!r} is a folder; expected a .keras file or a model name "
            "(`imgclf models`)"
        )
    if not p.is_file():
        raise ModelError(f"backbone file {str(path)!r} does not exist")
    model = load_model_file(p, "backbone", compile=False)  # safe mode; one line for a bad file
    if len(model.output.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="backbone_pool")(model.output)
        model = keras.Model(model.input, x, name=f"{model.name}_pooled")
    elif len(model.output.shape) != 2:
        raise ModelError(
            f"backbone {str(path)!r} outputs shape {model.output.shape}; expected (batch, "
            "features) or a feature map"
        )
    return model


register_model(
    "efficientnet_lite0",
    pretrained=True,
    default_size=224,
    min_size=128,
    description="EfficientNet-Lite0, ImageNet-pretrained, built in (works offline); what --model "
    "auto picks for most photos",
    fine_tune_from="block8_expand_conv",  # blocks 8-15 + head_conv; measured in docs/benchmarks.md
)(lambda image_size: load_backbone_file(BUILTIN_WEIGHTS))


@register_file_backbone
def file_backbone_spec(path: str) -> ModelSpec:
    """The spec of a ``.keras`` backbone file given as ``--model PATH``.

    Args:
        path: the ``.keras`` file; it is loaded when the model is built.
    """
    return ModelSpec(
        name=str(path),
        builder=lambda image_size: load_backbone_file(path),
        pretrained=True,
        default_size=224,
        min_size=96,
        description=f"backbone loaded from {path}",
    )


# name: (keras.applications class, preprocessing mode or None if inside the model, trained size,
# smallest size)
KERAS_APPLICATIONS = {
    "mobilenet_v2": ("MobileNetV2", "tf", 224, 96),
    "mobilenet_v3_small": ("MobileNetV3Small", None, 224, 96),
    "mobilenet_v3_large": ("MobileNetV3Large", None, 224, 96),
    "efficientnet_b0": ("EfficientNetB0", None, 224, 96),
    "efficientnet_b1": ("EfficientNetB1", None, 240, 96),
    "efficientnet_v2_b0": ("EfficientNetV2B0", None, 224, 96),
    "resnet50": ("ResNet50", "caffe", 224, 96),
    "resnet50_v2": ("ResNet50V2", "tf", 224, 96),
    "vgg16": ("VGG16", "caffe", 224, 96),
    "vgg19": ("VGG19", "caffe", 224, 96),
    "densenet121": ("DenseNet121", "torch", 224, 96),
    "inception_v3": ("InceptionV3", "tf", 299, 96),
    "xception": ("Xception", "tf", 299, 96),
    "convnext_tiny": ("ConvNeXtTiny", None, 224, 96),
}


def build_keras_application(
    name: str, image_size: int, weights: str | None = "imagenet"
) -> keras.Model:
    class_name, mode, _, _ = KERAS_APPLICATIONS[name]
    constructor = getattr(keras.applications, class_name)
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = ImagenetPreprocess(mode, name="preprocess")(inputs) if mode else inputs
    # built on our input tensor, so the backbone is one flat model whose layers can be cut by name
    try:
        base = constructor(include_top=False, weights=weights, input_tensor=x, pooling="avg")
    except (
        Exception
    ) as exc:  # a failed download surfaces as Exception("URL fetch failure …") among others
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"cannot get the ImageNet weights of {name!r} ({reason}). keras.applications "
            "downloads them on first use, "
            "which needs a network; offline, use --model efficientnet_lite0 (built in), "
            "copy the weights file into "
            "~/.keras/models/, or pass --model PATH to a .keras backbone"
        ) from None
    return keras.Model(inputs, base.output, name=f"{name}_backbone")


for _name, (_, _, _size, _min) in KERAS_APPLICATIONS.items():
    register_model(
        _name,
        pretrained=True,
        default_size=_size,
        min_size=_min,
        offline=False,
        description=f"keras.applications {KERAS_APPLICATIONS[_name][0]}, "
        "ImageNet weights (downloaded on first use)",
    )(partial(build_keras_application, _name))
