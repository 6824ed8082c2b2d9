"""The Python API's plumbing, kept free of TensorFlow: the typed options of :func:`imgclf.train`,
how a ``config`` argument and keyword overrides become one :class:`~imgclf.config.TrainConfig`, and
the runs that :func:`imgclf.predict` and :func:`imgclf.evaluate` keep open between calls.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from imgclf.config import TrainConfig
from imgclf.config_files import resolve_config
from imgclf.errors import invalid_value

if TYPE_CHECKING:
    from imgclf.serving.predictor import Run

__all__ = ["TrainOptions", "train_config", "open_run", "OPEN_RUNS"]

OPEN_RUNS = 4  # runs imgclf.predict / imgclf.evaluate keep loaded (least recently used dropped)


class TrainOptions(TypedDict, total=False):
    """The keyword overrides of :func:`imgclf.train`: the fields of :class:`TrainConfig` but
    ``data`` (their defaults and meaning are there, and in ``imgclf train --help``)."""

    model: str
    image_size: int | None
    epochs: int | None
    head_epochs: int
    batch_size: int
    learning_rate: float
    fine_tune_learning_rate: float
    backbone_lr_scale: float
    fine_tune: str
    fine_tune_from: str | None
    views: int
    feature_cache: bool
    optimizer: str
    fine_tune_optimizer: str | None
    lr_schedule: str
    label_smoothing: float
    ema: float
    stop_at_accuracy: float | None
    time_budget: str | None
    tensorboard: bool
    report: bool
    deterministic: bool
    augment: str
    precise_bn: int
    patience: int
    min_delta: float
    skip_fine_tune_loss: float
    seed: int
    val_fraction: float
    test_fraction: float
    out: str
    name: str | None
    cache_mb: int
    group_by: str | None
    duplicates_together: bool
    class_weight: str
    test_dir: str | None
    drop_label_issues: bool
    ensemble: int
    devices: str
    mixed_precision: str
    allow_missing_test_classes: bool
    head_features: str


def train_config(
    data: str | Path, config: TrainConfig | str | Path | None, overrides: dict
) -> TrainConfig:
    """The options of one :func:`imgclf.train` call: defaults < ``config`` < ``overrides``.

    Args:
        data: the data folder (or arrays); it wins over ``config``'s ``data``.
        config: a :class:`TrainConfig`, a YAML/JSON file of options, or None.
        overrides: keyword options; an unknown name is a ``ConfigError`` with a suggestion.

    Returns:
        The validated :class:`TrainConfig`.

    >>> from imgclf.config import TrainConfig
    >>> train_config("photos", TrainConfig(epochs=3), {"batch_size": 8}).epochs
    3
    >>> train_config("photos", None, {"epoch": 3})
    Traceback (most recent call last):
    imgclf.errors.ConfigError: unknown argument option 'epoch'; did you mean 'epochs'?
    """
    if isinstance(config, TrainConfig):
        given = {k: v for k, v in dataclasses.asdict(config).items() if k != "data"}
        return resolve_config(None, **{**given, **overrides, "data": str(data)})
    if config is not None and not isinstance(config, str | Path):
        raise invalid_value(
            "config", config, "a TrainConfig, the path of a .yaml/.json file of options, or None"
        )
    return resolve_config(config, **{**overrides, "data": str(data)})


_OPEN: OrderedDict[tuple, Run] = OrderedDict()


def open_run(path: str | Path, engine: str) -> Run:
    """The :class:`Run` of ``path``, loaded once and kept for the next call (at most
    :data:`OPEN_RUNS` of them; a run whose model file changed is opened again).

    Args:
        path: the run folder.
        engine: ``auto``, ``tflite`` or ``keras``.

    Returns:
        The same :class:`Run` object as the previous call's for the same run and engine.
    """
    from imgclf.run import load_run
    from imgclf.runs import RunFiles

    model = Path(path).resolve() / RunFiles.MODEL
    key = (str(model.parent), engine, model.stat().st_mtime_ns if model.is_file() else None)
    if key not in _OPEN:
        _OPEN[key] = load_run(path, engine)
        while len(_OPEN) > OPEN_RUNS:
            _OPEN.popitem(last=False)
    _OPEN.move_to_end(key)
    return _OPEN[key]
