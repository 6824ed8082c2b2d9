"""What ``imgclf predict`` accepts as input: files, folders (walked recursively), globs and path
lists.

A list file (``@list.txt`` on the command line, or ``--from-file list.txt``) holds one path per
line; blank lines and lines starting with ``#`` are ignored, and relative paths are taken from the
current directory. A path named on the command line that does not exist is an error before any work
starts; a listed path that does not exist gets its own error row, so a long list is not refused for
one line.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from imgclf.data.scan import IMAGE_EXTENSIONS
from imgclf.errors import DataError

__all__ = ["expand_paths", "read_path_list"]

_GLOB_CHARS = set("*?[")


def _walk(folder: Path) -> list[str]:
    return [
        str(f)
        for f in sorted(folder.rglob("*"))
        if f.is_file()
        and f.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    ]


def read_path_list(path: str | Path) -> list[str]:
    """The paths listed in a text file, one a line (blank lines and ``#`` comments skipped).

    Args:
        path: the list file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"path list {str(path)!r} does not exist")
    lines = p.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def expand_paths(paths: Iterable[str | Path], from_file: str | Path | None = None) -> list[str]:
    """Image paths to predict, in the order given, each once.

    Args:
        paths: files (kept as given, whatever their extension), folders (walked recursively for
            image files, sorted, hidden ones skipped), globs (``photos/**/*.jpg``), or
            ``@list.txt``.
        from_file: a list file, read after ``paths``.
    """
    out: list[str] = []
    for raw in [*paths, *([f"@{from_file}"] if from_file else [])]:
        text = str(raw)
        if text.startswith("@") and not Path(text).expanduser().exists():
            out.extend(str(Path(line).expanduser()) for line in read_path_list(text[1:]))
            continue
        p = Path(text).expanduser()
        if p.is_dir():
            out.extend(_walk(p))
        elif p.exists():
            out.append(str(p))
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(str(p), recursive=True))
            if not matches:
                raise DataError(f"pattern {text!r} matches no file")
            for m in matches:
                out.extend(_walk(Path(m)) if Path(m).is_dir() else [m])
        else:
            raise DataError(f"path {text!r} does not exist")
    return list(dict.fromkeys(out))
