"""Reading options: a ``--config`` YAML/JSON file, flags and keyword arguments, merged over the
defaults of :class:`imgclf.config.TrainConfig` in :func:`resolve_config` and nowhere else.

Override order: dataclass defaults < ``--config file.yaml`` < command-line flags / keyword
arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from imgclf.config import TrainConfig
from imgclf.constants import RUN_RECORDS
from imgclf.errors import ConfigError, InvalidValue, invalid_value

__all__ = ["config_fields", "field_type", "load_config_file", "resolve_config"]


def config_fields() -> list[dataclasses.Field]:
    """The fields that become command-line flags, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata.get("cli", True)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (keys are checked by :func:`resolve_config`).

    Args:
        path: a ``.yaml``, ``.yml`` or ``.json`` file.
    """
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


def field_type(f: dataclasses.Field) -> type:
    """``bool``, ``int``, ``float`` or ``str``: a TrainConfig field's type read from its annotation
    string (``"int | None"`` is ``int``), for the command line's flags and for coercing file values.

    Args:
        f: a field of :class:`TrainConfig`.
    """
    annotation = str(f.type)
    return next((kind for kind in (bool, int, float) if annotation.startswith(kind.__name__)), str)


def _coerce(name: str, value: Any) -> Any:
    """Bring file/keyword values to the field's type (YAML gives '1e-3' as a string, say)."""
    f = next(f for f in fields(TrainConfig) if f.name == name)
    annotation, kind = str(f.type), field_type(f)
    if value is None:
        if "None" in annotation:
            return None
        raise invalid_value(name, value, f"a value of type {annotation}")
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int and (
            isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())
        ):
            raise ValueError(value)
        if kind is float and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise invalid_value(
            name, value, f"a value of type {annotation.replace(' | None', '')}"
        ) from None


def resolve_config(config_file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults < config file < overrides; unknown keys are rejected with a suggestion.

    A bad value is an :class:`~imgclf.errors.InvalidValue` that names the option by its keyword
    (the command line renames it to the flag typed) or, for a value read from the file, by its key
    in that file.

    Args:
        config_file: a YAML or JSON file of options; None: none. Defaults to None.
        **overrides: option values (flags, keyword arguments); they win over the file.
    """
    in_file = load_config_file(config_file) if config_file else {}
    # a run's config.yaml as --config: what it records beside its options is not an option
    from_file = _known({k: v for k, v in in_file.items() if k not in RUN_RECORDS}, "config file")
    given = _known(overrides, "argument")
    file_keys = set(from_file) - set(given)
    try:
        values = {k: _coerce(k, v) for k, v in {**from_file, **given}.items()}
        return dataclasses.replace(TrainConfig(), **values).validate()
    except InvalidValue as exc:
        if file_keys & set(exc.names):
            raise exc.from_file(str(config_file), file_keys) from None
        raise


def _known(values: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` with ``-`` in keys read as ``_``; an unknown key is a ConfigError with a
    suggestion."""
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known options: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"unknown {source} option {key!r}{hint}")
        out[key] = value
    return out
