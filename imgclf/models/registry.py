"""The model registry: every model imgclf can build, with its input sizes and whether it is pretrained.

Each entry's builder returns a *backbone*: a Keras model that takes raw RGB pixels in [0, 255]
(its preprocessing inside) and returns one feature vector per image. :mod:`imgclf.models.classifier`
puts augmentation before it and the classification head after it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import ConfigError

__all__ = ["ModelSpec", "register_model", "get_spec", "list_models", "choose_image_size"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[[int], object]  # image_size -> keras.Model (the backbone)
    pretrained: bool
    default_size: int  # largest size chosen automatically (the size it was trained at)
    min_size: int  # smallest size chosen automatically
    description: str
    offline: bool = True  # False: needs to download ImageNet weights the first time
    fine_tune_from: str | None = None  # first layer unfrozen by --fine-tune auto; None: the last third
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
    """Decorator: register ``builder(image_size) -> backbone`` under ``name``."""

    def wrap(builder: Callable[[int], object]) -> Callable[[int], object]:
        _REGISTRY[name] = ModelSpec(
            name, builder, pretrained, default_size, min_size, description, offline, fine_tune_from, default_epochs
        )
        return builder

    return wrap


def _ensure_loaded() -> None:
    from imgclf.models import backbones, cnn  # noqa: F401  (registration happens on import)


def list_models() -> list[ModelSpec]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_spec(name: str) -> ModelSpec:
    """The spec for a registry name, or for a path to a ``.keras`` backbone."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.endswith(".keras") or Path(name).exists():
        from imgclf.models.backbones import file_backbone_spec

        return file_backbone_spec(name)
    raise ConfigError(
        f"invalid value for `model`: received {name!r}; expected a path to a .keras file or one of: {', '.join(sorted(_REGISTRY))}"
    )


def choose_image_size(spec: ModelSpec, sides: list[int]) -> int:
    """Input size from the data: the median image side (shorter side of each image), rounded to the
    nearest multiple of 32 (halves up) and kept within the model's range — upsampling 100 px photos to
    224 px costs 5× the compute for no new pixels."""
    if not sides:
        return spec.default_size
    median = sorted(sides)[len(sides) // 2]
    rounded = max(32, (median + 16) // 32 * 32)
    return max(spec.min_size, min(spec.default_size, rounded))
