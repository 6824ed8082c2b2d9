"""Write files so that a reader never sees half of one: into a temporary name beside the target,
then ``os.replace`` (atomic on POSIX and Windows). A full disk, a read-only folder or SIGKILL in the
middle leaves the previous file — an earlier checkpoint, another run's model — as it was, and no
partial ``model.keras`` that could be passed off as a model.

Write failures become one :class:`~imgclf.errors.DataError` line (:func:`write_failure`) that says
which file, why, and what to do.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from imgclf.errors import DataError

__all__ = [
    "WRITE_ERRNOS",
    "atomic_write",
    "save_model_atomic",
    "write_failure",
    "write_text_atomic",
]

# what a full disk, a quota, a read-only mount or missing permissions raise
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)

_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or pass --out on another disk",
    errno.EDQUOT: "the disk quota is exceeded; free some space or pass --out on another disk",
    errno.EFBIG: "the file is too large for this file system; pass --out on another disk",
    errno.EROFS: "the file system is read-only; pass --out to a writable folder",
    errno.EACCES: "permission denied; pass --out to a folder you can write to",
    errno.EPERM: "permission denied; pass --out to a folder you can write to",
}


def write_failure(path: str | Path, exc: OSError, note: str = "") -> DataError:
    """The one-line error for a failed write of ``path``.

    Args:
        path: the file or folder that could not be written.
        exc: the ``OSError`` raised while writing it.
        note: appended in parentheses (e.g. what was kept).
    """
    why = _ADVICE.get(exc.errno) or (exc.strerror or str(exc))
    return DataError(f"cannot write {str(path)!r}: {why}" + (f" ({note})" if note else ""))


def _temp_name(path: Path) -> Path:
    # same folder (os.replace cannot cross file systems), hidden, same suffix (Keras insists on
    # .keras)
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp_path)``, flush it to disk and move it onto ``path`` in one step.

    Args:
        path: the file to create or replace.
        write: writes the complete content to the path it is given.

    Raises:
        DataError: a write failed for lack of space or permission (:data:`WRITE_ERRNOS`); ``path``
            is left as it was and the temporary file removed. Any other error propagates, also
            cleaned up.
    """
    path = Path(path)
    tmp = _temp_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in WRITE_ERRNOS:
            kept = "the previous file is untouched" if path.exists() else "no partial file was left"
            raise write_failure(path, exc, kept) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`).

    Args:
        path: the file to create or replace.
        text: its whole content.
    """
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_model_atomic(model, path: str | Path) -> None:
    """``model.save(path)`` atomically: a crash or a full disk leaves the previous ``path`` as it
    was.

    Args:
        model: a ``keras.Model``.
        path: the ``.keras`` file to create or replace.
    """
    atomic_write(path, lambda tmp: model.save(tmp))
