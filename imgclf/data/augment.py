"""Training-only augmentation in the notes' vocabulary, built from Keras preprocessing layers.

``"flip,rotate=20,shift=0.1,zoom=0.1"`` → RandomFlip, RandomRotation, RandomTranslation, RandomZoom.
Keras' random layers are identity at inference, so the saved model predicts on clean images.
"""

from __future__ import annotations

from imgclf.errors import invalid_value

__all__ = ["AUGMENTATIONS", "parse_augment", "augmentation_layers"]

# name -> (default value, allowed range, meaning)
AUGMENTATIONS: dict[str, tuple[float | None, tuple[float, float] | None, str]] = {
    "flip": (None, None, "horizontal flip"),
    "vflip": (None, None, "vertical flip"),
    "rotate": (15.0, (0.0, 180.0), "rotation range in degrees"),
    "shift": (0.1, (0.0, 0.5), "width/height shift as a fraction of the size"),
    "zoom": (0.1, (0.0, 0.9), "zoom range as a fraction"),
    "brightness": (0.2, (0.0, 1.0), "brightness change as a fraction"),
    "contrast": (0.2, (0.0, 1.0), "contrast change as a fraction"),
}

def _describe(name: str) -> str:
    default, bounds, _ = AUGMENTATIONS[name]
    return name if bounds is None else f"{name}[=VALUE in ({bounds[0]:g}, {bounds[1]:g}]]"


_ALLOWED = "'none' or a comma list of " + ", ".join(_describe(n) for n in AUGMENTATIONS)


def parse_augment(spec: str) -> dict[str, float | None]:
    """Parse an augmentation spec into ``{name: value}``; raise a ConfigError naming the bad part."""
    spec = (spec or "").strip()
    if spec.lower() in ("", "none", "off", "false"):
        return {}
    parsed: dict[str, float | None] = {}
    for part in spec.split(","):
        name, _, raw = part.strip().partition("=")
        name = name.strip().lower()
        if name not in AUGMENTATIONS:
            raise invalid_value("augment", part.strip(), _ALLOWED)
        default, bounds, _ = AUGMENTATIONS[name]
        if default is None:
            if raw:
                raise invalid_value("augment", part.strip(), f"'{name}' without a value")
            parsed[name] = None
            continue
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise invalid_value("augment", part.strip(), f"{name}=NUMBER") from None
        lo, hi = bounds  # type: ignore[misc]
        if not lo < value <= hi:
            raise invalid_value("augment", part.strip(), f"{name} in ({lo:g}, {hi:g}]")
        parsed[name] = value
    return parsed


def augmentation_layers(spec: str, seed: int) -> list:
    """The Keras layers for ``spec`` (empty list for 'none'). Applied to raw [0, 255] pixels."""
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
