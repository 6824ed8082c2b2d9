"""The checks of :class:`imgclf.config.TrainConfig`'s values, and :func:`parse_duration`: each bad
value is a :class:`~imgclf.errors.InvalidValue` naming the option, what was received and the range
really allowed. Pure Python below :mod:`imgclf.config` (which calls :func:`check_config` from
``TrainConfig.validate``), so checking options imports no data or training code."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from imgclf.errors import invalid_value
from imgclf.options import (
    CLASS_WEIGHTS,
    ENSEMBLE_MAX,
    OPTIMIZERS,
    SCHEDULES,
    check_choice,
    check_group_by,
    parse_augment,
)

__all__ = ["MIXED_PRECISION", "check_config", "parse_duration"]

MIXED_PRECISION = ("auto", "on", "off")  # --mixed-precision (imgclf.training.distribution)

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """'90s', '5m', '1.5h' or plain seconds → seconds (more than 0).

    Args:
        text: the duration (``--time``).
    """
    raw = str(text).strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "s"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise invalid_value("time_budget", text, "a duration such as 90s, 5m or 1h") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise invalid_value(
            "time_budget", text, "a duration such as 90s, 5m or 1h (it must be more than 0)"
        )
    return seconds


def check_config(cfg: Any) -> None:
    """Check every value of a ``TrainConfig``; raise the first :class:`InvalidValue`.

    Args:
        cfg: the configuration.
    """
    if not cfg.data:
        raise invalid_value("data", cfg.data, "a path to a folder of images")
    _check_counts(cfg)
    _check_optimisation(cfg)
    _check_split(cfg)
    _check_time_budget(cfg)
    if cfg.name is not None and (not cfg.name or "/" in cfg.name or cfg.name in (".", "..")):
        raise invalid_value("name", cfg.name, "a plain folder name without '/'")
    parse_augment(cfg.augment)
    _check_devices(cfg)


def _check_time_budget(cfg: Any) -> None:
    """``--time``: a duration, and none of the options whose work its plan does not cover."""
    if cfg.time_budget is None:
        return
    parse_duration(cfg.time_budget)
    outside_the_plan = [
        (
            "drop_label_issues",
            cfg.drop_label_issues,
            "--time plans the training alone, and the label check reads every training image "
            "through a second model first; run `imgclf doctor DATA --labels` apart, or train "
            "with --drop-label-issues and no --time",
        ),
        (
            "ensemble",
            cfg.ensemble if cfg.ensemble > 1 else None,
            "--time plans one model's training, and --ensemble trains several; give --time "
            "alone, or --ensemble with no --time",
        ),
    ]
    for name, value, why in outside_the_plan:
        if value:
            raise invalid_value(
                f"{name} + time_budget", (value, cfg.time_budget), f"one of the two: {why}"
            )


def _at_least(cfg: Any, names: tuple[str, ...], low: int, extra: str = "") -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise invalid_value(name, value, f"an integer >= {low}{extra}")


def _fraction(cfg: Any, name: str, interval: str, extra: str = "", what: str = "a number") -> None:
    """``interval``: '(0, 1)', '[0, 1)', '(0, 1]' or '[0, 0.5)' and the like."""
    value = getattr(cfg, name)
    lo, hi = (float(x) for x in interval[1:-1].split(","))
    above = value > lo if interval[0] == "(" else value >= lo
    below = value < hi if interval[-1] == ")" else value <= hi
    if not (above and below):
        raise invalid_value(name, value, f"{what} in {interval}{extra}")


def _check_counts(cfg: Any) -> None:
    if cfg.image_size is not None and not 32 <= cfg.image_size <= 1024:
        raise invalid_value("image_size", cfg.image_size, "an integer from 32 to 1024")
    _at_least(cfg, ("epochs", "batch_size"), 1)
    _at_least(cfg, ("head_epochs",), 1, " (pretrained models always train their new head first)")
    _at_least(cfg, ("patience", "cache_mb", "precise_bn"), 0)
    if not 0 <= cfg.seed < 2**32:
        raise invalid_value("seed", cfg.seed, "an integer from 0 to 2**32 - 1")
    if not 1 <= cfg.views <= 16:
        raise invalid_value("views", cfg.views, "an integer from 1 to 16")
    if not 1 <= cfg.ensemble <= ENSEMBLE_MAX:
        raise invalid_value("ensemble", cfg.ensemble, f"an integer from 1 to {ENSEMBLE_MAX}")


def _check_optimisation(cfg: Any) -> None:
    check_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    check_choice("fine_tune_optimizer", cfg.fine_tune_optimizer or cfg.optimizer, OPTIMIZERS)
    check_choice("lr_schedule", cfg.lr_schedule, SCHEDULES)
    check_choice("head_features", cfg.head_features, ("auto", "last", "multi"))
    if cfg.fine_tune not in ("auto", "all", "none") and not (
        cfg.fine_tune.isdigit() and int(cfg.fine_tune) > 0
    ):
        raise invalid_value(
            "fine_tune", cfg.fine_tune, "'auto', 'all', 'none' or a number of layers >= 1"
        )
    for name in ("learning_rate", "fine_tune_learning_rate"):
        _fraction(cfg, name, "(0, 10)", ", typically 1e-5 to 1e-2")
    _fraction(cfg, "backbone_lr_scale", "(0, 1]")
    _fraction(cfg, "label_smoothing", "[0, 0.5)")
    _fraction(cfg, "ema", "[0, 1)", ", e.g. 0.99 (0: off)", what="a momentum")
    for name in ("min_delta", "skip_fine_tune_loss"):
        _fraction(cfg, name, "[0, 1)")
    if cfg.stop_at_accuracy is not None:
        _fraction(cfg, "stop_at_accuracy", "(0, 1]")


def _check_split(cfg: Any) -> None:
    _fraction(cfg, "val_fraction", "(0, 1)", ": a validation split picks the best epoch")
    _fraction(cfg, "test_fraction", "[0, 1)")
    if cfg.val_fraction + cfg.test_fraction >= 0.9:
        raise invalid_value(
            "val_fraction + test_fraction",
            cfg.val_fraction + cfg.test_fraction,
            "a sum below 0.9, leaving images to train on",
        )
    if cfg.test_dir is not None and not Path(cfg.test_dir).expanduser().exists():
        raise invalid_value(
            "test_dir", cfg.test_dir, "an existing folder of labelled images (<class>/<images>)"
        )
    if cfg.class_weight not in CLASS_WEIGHTS:
        raise invalid_value("class_weight", cfg.class_weight, "one of 'none', 'auto'")
    if cfg.group_by is not None:
        check_group_by(cfg.group_by)


def _check_devices(cfg: Any) -> None:
    """``devices``: 'auto' or a whole number >= 1 (whether that many exist is checked when the
    devices are set up); ``mixed_precision``: auto, on or off."""
    devices = str(cfg.devices).strip()
    if devices != "auto" and not (devices.isdigit() and int(devices) >= 1):
        raise invalid_value("devices", cfg.devices, "'auto' or a number of devices >= 1")
    check_choice("mixed_precision", cfg.mixed_precision, MIXED_PRECISION)
