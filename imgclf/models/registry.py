"""The model registry: every model imgclf can build, with its input sizes and whether it is
pretrained.

Registration happens on import, as in timm: ``imgclf/models/__init__.py`` imports each model module
(``backbones``, ``cnn``), whose ``@register_model`` decorators fill the table; this module imports
none of them. A new ``models/vit.py`` is registered by adding its import line to the package
``__init__``.

Each entry's builder returns a *backbone*: a Keras model that takes raw RGB pixels in [0, 255]
(its preprocessing inside) and returns one feature vector per image. :mod:`imgclf.models.classifier`
puts augmentation before it and the classification head after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import invalid_value

__all__ = [
    "ModelSpec",
    "register_model",
    "register_file_backbone",
    "get_spec",
    "list_models",
    "choose_image_size",
]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[[int], object]  # image_size -> keras.Model (the backbone)
    pretrained: bool
    default_size: int  # largest size chosen automatically (the size it was trained at)
    min_size: int  # smallest size chosen automatically
    description: str
    offline: bool = True  # False: needs to download ImageNet weights the first time
    fine_tune_from: str | None = (
        None  # first layer unfrozen by --fine-tune auto; None: the last third
    )
    default_epochs: int = 8  # main-stage epochs when --epochs is not given


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    pretrained: bool,
    default_size: int,
    min_size: int,
    description: str,
    offline: bool = True,
    fine_tune_from: str | None = None,
    default_epochs: int = 8,
):
    """Decorator: register ``builder(image_size) -> backbone`` under ``name``.

    Args:
        name: the name ``--model`` accepts.
        pretrained: whether the backbone comes with trained weights (two-stage recipe) or not.
        default_size: the largest input size chosen automatically (the size it was trained at).
        min_size: the smallest input size chosen automatically.
        description: one line for ``imgclf models``.
        offline: False when the weights are downloaded on first use. Defaults to True.
        fine_tune_from: first layer ``--fine-tune auto`` unfreezes; None: the last third. Defaults
        to None. default_epochs: main-stage epochs when ``--epochs`` is not given. Defaults to 8.
    """

    def wrap(builder: Callable[[int], object]) -> Callable[[int], object]:
        _REGISTRY[name] = ModelSpec(
            name,
            builder,
            pretrained,
            default_size,
            min_size,
            description,
            offline,
            fine_tune_from,
            default_epochs,
        )
        return builder

    return wrap


_FILE_SPEC: list[
    Callable[[str], ModelSpec]
] = []  # set by imgclf.models.backbones: a path -> its spec


def register_file_backbone(spec_for_path: Callable[[str], ModelSpec]) -> Callable[[str], ModelSpec]:
    """Register the function that makes a spec for ``--model PATH`` (a ``.keras`` backbone file).

    Args:
        spec_for_path: called with the path; returns its :class:`ModelSpec`.
    """
    _FILE_SPEC[:] = [spec_for_path]
    return spec_for_path


def list_models() -> list[ModelSpec]:
    """Every registered model, sorted by name (what ``imgclf models`` lists)."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_spec(name: str) -> ModelSpec:
    """The spec for a registry name, or for a path to a ``.keras`` backbone.

    Args:
        name: a registered model name (``imgclf models``) or a path to a ``.keras`` file.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if _FILE_SPEC and (name.endswith(".keras") or Path(name).exists()):
        return _FILE_SPEC[0](name)
    raise invalid_value(
        "model", name, f"a path to a .keras file or one of: {', '.join(sorted(_REGISTRY))}"
    )


def choose_image_size(spec: ModelSpec, sides: list[int]) -> int:
    """Input size from the data: the median image side (shorter side of each image), rounded to the
    nearest multiple of 32 (halves up) and kept within the model's range — upsampling 100 px photos
    to 224 px costs 5× the compute for no new pixels.

    Args:
        spec: the model's registry entry (its size range).
        sides: the shorter side of each image, in pixels.
    """
    if not sides:
        return spec.default_size
    median = sorted(sides)[len(sides) // 2]
    rounded = max(32, (median + 16) // 32 * 32)
    return max(spec.min_size, min(spec.default_size, rounded))
