"""Exceptions for user mistakes: the CLI prints their message on one line, never a traceback.

Anything that is *not* an :class:`ImgclfError` is a bug in imgclf and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ImgclfError", "ConfigError", "DataError", "ModelError", "invalid_value"]


class ImgclfError(Exception):
    """Base class of every error caused by the user's input or environment."""


class ConfigError(ImgclfError, ValueError):
    """An option has a value that is not allowed."""


class DataError(ImgclfError):
    """A data folder, image or run folder cannot be used."""


class ModelError(ImgclfError):
    """A model cannot be built, loaded or given its weights."""


def invalid_value(name: str, received: object, allowed: str) -> ConfigError:
    """The one message format for a bad option: the argument, what was received, what is allowed.

    Args:
        name: the option or argument name.
        received: the value given (shown with ``repr``).
        allowed: what is allowed, in words.

    Returns:
        The :class:`ConfigError` to raise.
    """
    return ConfigError(f"invalid value for `{name}`: received {received!r}; expected {allowed}")
