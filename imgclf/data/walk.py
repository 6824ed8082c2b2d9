"""Walking a class folder: every visible file once, following links to folders outside the data
folder but never one back into it (``a/loop -> ..``) nor a folder already scanned, and each real
file once when links reach it twice; what is left out is reported as ``(path, reason)``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["files_under", "once"]

_LOOP = (
    "symbolic link to a folder inside the data folder (a loop or a second copy of it); not followed"
)
_AGAIN = "folder already scanned through another path (symbolic link); not scanned twice"


def files_under(
    folder: Path, root_real: str, seen: set[str]
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every visible file under ``folder``, following links to folders outside the data folder but
    never one into it (``a/loop -> ..``) nor a folder already scanned; ``seen`` holds real folder
    paths."""
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def unreadable(exc: OSError) -> None:
        skipped.append((str(exc.filename or folder), f"cannot read folder: {exc.strerror or exc}"))

    seen.add(os.path.realpath(folder))
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=unreadable):
        keep = []
        for d in sorted(n for n in dirnames if not n.startswith(".")):
            full = os.path.join(dirpath, d)
            real = os.path.realpath(full)
            if os.path.islink(full) and (_within(real, root_real) or _within(root_real, real)):
                skipped.append((full, _LOOP))
            elif real in seen:
                skipped.append((full, _AGAIN))
            else:
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found, skipped


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def once(
    candidates: list[tuple[Path, int, str | None]],
) -> tuple[list[tuple[Path, int, str | None]], list[tuple[str, str]]]:
    """Each real file once: a file reached again through a symbolic link is skipped, keeping the
    path that involves no link (else the first found)."""
    by_real: dict[str, list[int]] = {}
    for k, (path, _, _) in enumerate(candidates):
        by_real.setdefault(os.path.realpath(path), []).append(k)
    drop: dict[int, int] = {}
    for real, ks in by_real.items():
        if len(ks) > 1:
            first = next((k for k in ks if os.path.abspath(candidates[k][0]) == real), ks[0])
            drop.update({k: first for k in ks if k != first})
    kept = [c for k, c in enumerate(candidates) if k not in drop]
    skipped = [
        (
            str(candidates[k][0]),
            f"same file as {candidates[first][0]} (through a symbolic link); used once",
        )
        for k, first in sorted(drop.items())
    ]
    return kept, skipped
