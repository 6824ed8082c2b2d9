"""The single source of defaults: one dataclass feeds the CLI, the Python API and the saved run.

Override order, applied in :func:`resolve_config` and nowhere else:
dataclass defaults < ``--config file.yaml`` < command-line flags / keyword arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imgclf.errors import ConfigError, invalid_value

__all__ = ["TrainConfig", "resolve_config", "config_fields", "load_config_file"]


def _opt(default: Any, help: str, *, cli: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli})


@dataclass
class TrainConfig:
    """Everything that decides how a run is trained. Saved as ``config.yaml`` in every run."""

    data: str = _opt("", "folder of class sub-folders, or with train/ and val/ (or validation/) and optional test/", cli=False)
    model: str = _opt(
        "efficientnet_lite0",
        "model name from the registry (`imgclf models`) or a path to a .keras backbone",
    )
    image_size: int | None = _opt(
        None, "square input size in pixels; default: chosen from the data's image sizes and the model's range"
    )
    epochs: int = _opt(12, "maximum epochs of the main stage (fine-tuning for pretrained models, all training for cnn)")
    head_epochs: int = _opt(30, "maximum epochs of the frozen-backbone head stage (pretrained models; runs on cached features)")
    batch_size: int = _opt(32, "images per training step")
    learning_rate: float = _opt(1e-3, "learning rate of the head stage and of from-scratch models")
    fine_tune_learning_rate: float = _opt(3e-4, "peak learning rate when the pretrained backbone is unfrozen (cosine decay)")
    fine_tune: bool = _opt(True, "unfreeze the pretrained backbone after the head stage (BatchNorm stays frozen)")
    augment: str = _opt(
        "flip,rotate=10,zoom=0.1",
        "training-only augmentation: 'none' or a comma list of flip, vflip, rotate=DEG, zoom=F, shift=F, "
        "brightness=F, contrast=F",
    )
    patience: int = _opt(4, "epochs without validation improvement before early stopping")
    seed: int = _opt(42, "random seed of the split, shuffling and weight initialisation")
    val_fraction: float = _opt(0.2, "fraction of each class held out for validation (model selection)")
    test_fraction: float = _opt(0.1, "fraction of each class held out for the final test; never seen in training")
    out: str = _opt("runs", "folder that receives run folders")
    name: str | None = _opt(None, "run folder name; default: the data folder's name; never overwrites (name2, name3, …)")
    cache_mb: int = _opt(4096, "memory budget for caching decoded images (MiB); 0 disables the cache")

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the first bad one."""
        if not self.data:
            raise invalid_value("data", self.data, "a path to a folder of images")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            raise invalid_value("image_size", self.image_size, "an integer from 32 to 1024")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise invalid_value(name, getattr(self, name), "an integer >= 1")
        if not 0 <= self.seed < 2**32:
            raise invalid_value("seed", self.seed, "an integer from 0 to 2**32 - 1")
        if self.head_epochs < 1:
            raise invalid_value("head_epochs", self.head_epochs, "an integer >= 1 (pretrained models always train their new head first)")
        for name in ("patience", "cache_mb"):
            if getattr(self, name) < 0:
                raise invalid_value(name, getattr(self, name), "an integer >= 0")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if not 0 < getattr(self, name) < 10:
                raise invalid_value(name, getattr(self, name), "a number > 0 (typically 1e-5 to 1e-2)")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise invalid_value(name, getattr(self, name), "a fraction in [0, 1)")
        if self.val_fraction <= 0:
            raise invalid_value("val_fraction", self.val_fraction, "a fraction > 0: a validation split picks the best epoch")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise invalid_value(
                "val_fraction + test_fraction", self.val_fraction + self.test_fraction, "a sum below 0.9, leaving images to train on"
            )
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise invalid_value("name", self.name, "a plain folder name without '/'")
        from imgclf.data.augment import parse_augment  # local: keeps config importable without TensorFlow

        parse_augment(self.augment)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_fields() -> list[dataclasses.Field]:
    """The fields that become command-line flags, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("cli", True)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (keys are checked by :func:`resolve_config`)."""
    p = Path(path)
    if not p.is_file():
        raise invalid_value("config", str(path), "an existing .yaml, .yml or .json file")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            loaded = json.loads(text)
        else:
            import yaml

            loaded = yaml.safe_load(text)
    except Exception as exc:  # the parsers raise many types; all mean "not valid"
        raise ConfigError(f"cannot read config file {str(p)!r}: {exc}".splitlines()[0]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise invalid_value("config", str(path), "a file holding a mapping of option: value")
    return loaded


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Bring file/keyword values to the field's type (YAML gives '1e-3' as a string, say)."""
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    kind = str(kinds[name])
    if value is None:
        if "None" in kind:
            return None
        raise invalid_value(name, value, f"a value of type {kind}")
    try:
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise invalid_value(name, value, f"a value of type {kind.replace(' | None', '')}") from None


def resolve_config(config_file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < config file < overrides; unknown keys are rejected with a suggestion."""
    known = {f.name for f in fields(TrainConfig)}
    merged: dict[str, Any] = {}
    for source, values in (("config file", load_config_file(config_file) if config_file else {}), ("argument", overrides)):
        for key, value in values.items():
            key = key.replace("-", "_")
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known options: {', '.join(sorted(known))}"
                raise ConfigError(f"unknown {source} option {key!r}{hint}")
            merged[key] = value
    defaults = TrainConfig()
    values = {k: _coerce(k, v, getattr(defaults, k)) for k, v in merged.items()}
    return dataclasses.replace(defaults, **values).validate()
