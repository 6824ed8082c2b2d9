"""Load a ``.keras`` file — the one place imgclf does it, so every caller gets the same checks.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``). Keras
reports a truncated or foreign file as "File not found" and a ``Lambda`` layer with advice to turn
its safe mode off; :func:`load_model_file` says instead, on one line, what is wrong with the file.
It always loads in Keras' safe mode: a model file that carries Python code (a ``Lambda`` layer, a
pickled function) could run anything on this machine, so it is refused, never executed.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from imgclf.errors import ModelError

__all__ = ["load_model_file"]

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CODE_REFUSED = (
    "it contains Python code (a `Lambda` layer or a serialized function), which could "
    "run anything on this "
    "machine when loaded, so imgclf refuses it; use a model built from standard or "
    "registered layers only "
    "(every model imgclf trains is)"
)


def _check_archive(p: Path) -> str | None:
    """Why ``p`` is not a complete .keras archive, or None if it looks like one."""
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head:
        return "the file is empty (0 bytes): it was cut off while being written or copied"
    if head == _HDF5_MAGIC:
        return (
            "it is a legacy HDF5 (.h5) model; imgclf reads Keras 3 `.keras` files: load it "
            "in Keras and `model.save('x.keras')`"
        )
    if not zipfile.is_zipfile(p):
        if head.startswith(_ZIP_MAGIC):
            return (
                "the file is truncated or damaged (a .keras archive whose end is missing); "
                "copy or save it again"
            )
        return (
            "it is not a Keras model (a `.keras` file is a zip archive written by "
            "`model.save` or `imgclf train`)"
        )
    try:
        with zipfile.ZipFile(p) as archive:
            if "config.json" not in archive.namelist():
                return "it is a zip archive but not a Keras model (no config.json inside)"
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"the file is damaged ({exc}); copy or save it again"
    if damaged is not None:
        return f"the file is damaged: {damaged} inside it fails its checksum; copy or save it again"
    return None


def _reason(exc: BaseException) -> str:
    """The first sentence of a Keras loading error, without its dump of the object's config."""
    text = str(exc).strip() or type(exc).__name__
    text = text.split("Full object config", 1)[0].splitlines()[0]
    text = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return text[:300]


def load_model_file(path: str | Path, purpose: str = "model", *, compile: bool = True):
    """Load a Keras 3 ``.keras`` model in safe mode, or raise a one-line :class:`ModelError` saying
    why not.

    Args:
        path: the ``.keras`` file.
        purpose: what the file is for, named in the error (``"model"``, ``"backbone"``,
        ``"checkpoint"``). compile: also restore the compiled loss, metrics and optimizer state
        (``keras.saving.load_model``).

    Returns:
        The ``keras.Model``.

    Raises:
        ModelError: the file is missing, a folder, unreadable, empty, truncated, damaged, not a
            Keras model, or holds Python code that safe mode refuses to run.
    """
    p = Path(path).expanduser()
    where = f"cannot load the {purpose} {str(path)!r}"
    if p.is_dir():
        raise ModelError(f"{where}: it is a folder; expected a .keras file")
    if not p.is_file():
        raise ModelError(f"{where}: the file does not exist")
    try:
        why = _check_archive(p)
    except OSError as exc:
        raise ModelError(f"{where}: {exc.strerror or exc}") from None
    if why:
        raise ModelError(f"{where}: {why}")
    import keras

    import imgclf.models.layers  # noqa: F401  (registers imgclf's own layers for deserialization)

    try:
        return keras.saving.load_model(p, compile=compile, safe_mode=True)
    # noqa: BLE001 — Keras raises ValueError, TypeError, KeyError, OSError … for a bad file
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "unsafe_deserialization" in text:
            raise ModelError(f"{where}: {_CODE_REFUSED}") from None
        raise ModelError(f"{where}: it is not a model Keras can read ({_reason(exc)})") from None
