"""The allowed values of TrainConfig's options, and the parsers that check them: pure Python, below
every other imgclf module but :mod:`imgclf.errors`, so :meth:`TrainConfig.validate` checks every
option
without importing the training or data code (or TensorFlow) that later uses it."""

from __future__ import annotations

import re
from pathlib import Path

from imgclf.errors import invalid_value

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "CLASS_WEIGHTS",
    "ENSEMBLE_MAX",
    "AUGMENTATIONS",
    "MIXING",
    "check_choice",
    "parse_augment",
    "image_augment",
    "check_group_by",
]

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("cosine", "plateau", "constant")
CLASS_WEIGHTS = ("none", "auto")
ENSEMBLE_MAX = 8  # --ensemble: each member is a whole training and a forward pass per image


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else the :class:`ConfigError` naming ``name``.

    Args:
        name: the option's name, as the message shows it.
        value: what was received.
        choices: what is allowed.
    """
    if value not in choices:
        raise invalid_value(name, value, f"one of {', '.join(choices)}")
    return value


# name -> (default value, allowed range, meaning)
AUGMENTATIONS: dict[str, tuple[float | None, tuple[float, float] | None, str]] = {
    "flip": (None, None, "horizontal flip"),
    "vflip": (None, None, "vertical flip"),
    "rotate": (15.0, (0.0, 180.0), "rotation range in degrees"),
    "shift": (0.1, (0.0, 0.5), "width/height shift as a fraction of the size"),
    "zoom": (0.1, (0.0, 0.9), "zoom range as a fraction"),
    "brightness": (0.2, (0.0, 1.0), "brightness change as a fraction"),
    "contrast": (0.2, (0.0, 1.0), "contrast change as a fraction"),
    "hue": (0.1, (0.0, 1.0), "hue rotation, up to this fraction of Keras' strongest (RandomHue)"),
    "saturation": (0.5, (0.0, 1.0), "saturation change: 1 spans grey to fully saturated"),
    "grayscale": (0.2, (0.0, 1.0), "probability of a grey-scale copy of the image"),
    "blur": (0.3, (0.0, 1.0), "probability of a Gaussian blur (sigma 0.5-1.5 px)"),
    "noise": (8.0, (0.0, 64.0), "Gaussian pixel noise, standard deviation in grey levels"),
    "randaugment": (
        0.5,
        (0.0, 1.0),
        "RandAugment: 2 random operations per image at this strength (Keras' factor)",
    ),
    "mixup": (
        0.2,
        (0.0, 2.0),
        "MixUp of pairs in a batch, images and labels (alpha of the Beta distribution)",
    ),
    "cutmix": (
        1.0,
        (0.0, 2.0),
        "CutMix of pairs in a batch: a box of one pasted into the other, labels by area "
        "(Beta factor)",
    ),
}
# augmentations that mix pairs of a batch, labels included: not a layer of the model but a step of
# the
# training batches (on cached activations, of the activations: see imgclf.data.augment.mixing_layer)
MIXING = ("mixup", "cutmix")


def _describe(name: str) -> str:
    default, bounds, _ = AUGMENTATIONS[name]
    return name if bounds is None else f"{name}[=VALUE in ({bounds[0]:g}, {bounds[1]:g}]]"


_ALLOWED = "'none' or a comma list of " + ", ".join(_describe(n) for n in AUGMENTATIONS)


def parse_augment(spec: str) -> dict[str, float | None]:
    """Parse an augmentation spec into ``{name: value}``; raise a ConfigError naming the bad part.

    Args:
        spec: ``"none"`` or a comma list such as ``"flip,rotate=20,zoom=0.1"``.
    """
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
    if all(name in parsed for name in MIXING):
        raise invalid_value(
            "augment", spec, "at most one of mixup, cutmix (each mixes every batch already)"
        )
    return parsed


def image_augment(spec: str) -> str:
    """The per-image part of an augmentation spec (``spec`` without the batch-mixing tokens, as
    typed; ``"none"`` when nothing is left): what the views of the feature cache depend on.

    Args:
        spec: an ``--augment`` spec (checked by :func:`parse_augment`).
    """
    parse_augment(spec)
    parts = [
        p
        for p in (spec or "").split(",")
        if p.strip().partition("=")[0].strip().lower() not in MIXING
    ]
    kept = ",".join(parts).strip()
    return kept if parse_augment(kept) else "none"


def check_group_by(group_by: str) -> re.Pattern | Path:
    """The compiled regex, or the CSV path; a :class:`ConfigError` naming ``group_by`` if neither.

    Args:
        group_by: a regular expression, or a path to a CSV of ``path,group``.
    """
    allowed = "a regular expression, or an existing CSV file with columns path,group"
    if not group_by:
        raise invalid_value("group_by", group_by, allowed)
    if group_by.lower().endswith(".csv"):
        csv_path = Path(group_by).expanduser()
        if not csv_path.is_file():
            raise invalid_value("group_by", group_by, allowed + " (no such file)")
        return csv_path
    try:
        return re.compile(group_by)
    except re.error as exc:
        raise invalid_value("group_by", group_by, f"{allowed} (regex error: {exc})") from None
