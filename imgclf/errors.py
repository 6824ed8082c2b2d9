"""Exceptions for user mistakes: the CLI prints their message on one line, never a traceback.

Anything that is *not* an :class:`ImgclfError` is a bug in imgclf and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "ImgclfError",
    "ConfigError",
    "DataError",
    "ModelError",
    "InvalidValue",
    "invalid_value",
]


class ImgclfError(Exception):
    """Base class of every error caused by the user's input or environment."""


class ConfigError(ImgclfError, ValueError):
    """An option has a value that is not allowed."""


class DataError(ImgclfError):
    """A data folder, image or run folder cannot be used."""


class ModelError(ImgclfError):
    """A model cannot be built, loaded or given its weights."""


class InvalidValue(ConfigError):
    """A bad option value, kept in parts so that each front end can name the option as its user
    spelled it: ``--val-fraction`` on the command line (:meth:`spelled`), the keyword
    ``val_fraction`` in the Python API, the key in a ``--config`` file (:meth:`from_file`).

    Args:
        names: the option's name, or the names of options checked together (``val_fraction`` and
            ``test_fraction`` for their sum).
        received: the value given.
        allowed: what is allowed, in words.
    """

    def __init__(self, names: tuple[str, ...], received: object, allowed: str) -> None:
        self.names, self.received, self.allowed = tuple(names), received, allowed
        self.spelling: dict[str, str] = {}
        self.file: str | None = None
        self.file_keys: frozenset[str] = frozenset()
        super().__init__(self._message())

    def _message(self) -> str:
        shown = " + ".join(
            n if n in self.file_keys else self.spelling.get(n, n) for n in self.names
        )
        where = f" (in config file {self.file!r})" if self.file_keys else ""
        return (
            f"invalid value for `{shown}`{where}: received {self.received!r}; "
            f"expected {self.allowed}"
        )

    def _copy(self, **changes: object) -> InvalidValue:
        new = InvalidValue(self.names, self.received, self.allowed)
        new.spelling, new.file, new.file_keys = self.spelling, self.file, self.file_keys
        for key, value in changes.items():
            setattr(new, key, value)
        new.args = (new._message(),)
        return new

    def spelled(self, spelling: dict[str, str]) -> InvalidValue:
        """The same error naming each option as ``spelling`` maps it (``val_fraction`` →
        ``--val-fraction``); names that came from a config file keep their key.

        Args:
            spelling: option name → what the user typed for it.
        """
        return self._copy(spelling={**self.spelling, **spelling})

    def from_file(self, file: str, keys: set[str]) -> InvalidValue:
        """The same error saying that the options ``keys`` (those of :attr:`names` that were read
        from ``file``) came from that config file.

        Args:
            file: the config file's path, as given.
            keys: the option names whose value the file gave.
        """
        return self._copy(file=file, file_keys=frozenset(keys) & set(self.names))


def invalid_value(name: str, received: object, allowed: str) -> InvalidValue:
    """The one message format for a bad option: the argument, what was received, what is allowed.

    Args:
        name: the option or argument name (``"a + b"`` for two options checked together).
        received: the value given (shown with ``repr``).
        allowed: what is allowed, in words.

    Returns:
        The :class:`InvalidValue` (a :class:`ConfigError`) to raise.
    """
    return InvalidValue(tuple(n.strip() for n in name.split(" + ")), received, allowed)
