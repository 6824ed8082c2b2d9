"""The imgclf cache: its root, its parts, the size cap and the one way its entries are written.

imgclf keeps three kinds of recomputable files under :func:`cache_root` (``$IMGCLF_CACHE``, default
``~/.cache/imgclf``), one folder per part (:data:`PARTS`): ``features/`` (frozen-backbone
activations, :mod:`imgclf.training.feature_cache`), ``arrays/`` (NumPy DATA written as PNGs,
:mod:`imgclf.data.arrays`) and ``engines/`` (TFLite copies of models whose run folder is read-only,
:mod:`imgclf.engines.choose`). ``imgclf cache info|clear`` calls :func:`cache_info` and
:func:`clear_cache`.

One locking scheme for every writer: an exclusive advisory lock (:func:`file_lock`, ``flock`` on
the folder itself, so no lock file is left behind) around check-then-write, and a whole entry made
in a hidden staging name and renamed into place, so a reader never sees half an entry and a killed
writer leaves only a staging name that is removed later. :func:`build_once` does both for entries
that are folders (arrays, engines); the feature cache merges rows into its files under the same
lock.

The feature cache is held under a size cap (``$IMGCLF_CACHE_MAX_GB``, default
:data:`imgclf.constants.CACHE_MAX_GB`) by deleting its least recently used files first
(:func:`evict_lru`); a file counts as used when a run reads or writes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imgclf.constants import CACHE_MAX_GB
from imgclf.errors import invalid_value

__all__ = [
    "CacheInfo",
    "PARTS",
    "build_once",
    "cache_info",
    "cache_root",
    "clear_cache",
    "evict_lru",
    "file_lock",
    "max_cache_bytes",
    "part_folder",
]

ROOT_ENV = "IMGCLF_CACHE"
MAX_ENV = "IMGCLF_CACHE_MAX_GB"
PARTS = ("features", "arrays", "engines")
STAGING = ".staging-"  # prefix of an entry being written
_STALE_TMP_SECONDS = 3600.0  # a temporary file this old was left by a killed writer


def cache_root() -> Path:
    """Where imgclf keeps what it can recompute: ``$IMGCLF_CACHE``, else ``~/.cache/imgclf``."""
    return Path(os.environ.get(ROOT_ENV) or Path.home() / ".cache" / "imgclf").expanduser()


def part_folder(part: str, root: str | Path | None = None) -> Path:
    """The folder of one part of the cache.

    Args:
        part: one of :data:`PARTS`.
        root: the cache folder; ``None`` means :func:`cache_root`.
    """
    if part not in PARTS:
        raise invalid_value("part", part, ", ".join(PARTS))
    return (Path(root) if root is not None else cache_root()) / part


@dataclass(frozen=True)
class CacheInfo:
    """What :func:`cache_info` found: the root, bytes and files per part, and the feature cache's
    cap."""

    root: Path
    sizes: dict[str, int]
    files: dict[str, int]
    max_bytes: int

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    def format(self) -> str:
        """Lines for the terminal: one per part, then the total and the cap."""
        lines = [f"imgclf cache: {self.root}"]
        for part in PARTS:
            lines.append(
                f"  {part + '/':10s} {_human(self.sizes[part]):>10s} in {self.files[part]} file(s)"
            )
        lines.append(
            f"  {'total':10s} {_human(self.total):>10s}; features/ is capped at "
            f"{_human(self.max_bytes)} (${MAX_ENV})"
        )
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def max_cache_bytes() -> int:
    """The feature cache's size cap in bytes: ``$IMGCLF_CACHE_MAX_GB`` (a number of GB; 0 keeps
    nothing), else :data:`imgclf.constants.CACHE_MAX_GB`. A value that is not a number is a
    ConfigError."""
    text = os.environ.get(MAX_ENV, "").strip()
    if not text:
        return int(CACHE_MAX_GB * 2**30)
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise invalid_value(MAX_ENV, text, "a size in GB, such as 5 or 0.5 (0 keeps nothing)")
    return int(gb * 2**30)


def _files(folder: Path) -> list[os.stat_result | None]:
    return [_stat(p) for p in folder.rglob("*")] if folder.is_dir() else []


def _stat(p: Path) -> os.stat_result | None:
    try:
        st = p.lstat()
    except OSError:  # removed meanwhile by another process
        return None
    return st if os.path.isfile(p) and not os.path.islink(p) else None


def cache_info(root: str | Path | None = None) -> CacheInfo:
    """Bytes and files in each part of the cache.

    Args:
        root: the cache folder; ``None`` means ``$IMGCLF_CACHE`` or ``~/.cache/imgclf``.
    """
    root = Path(root) if root is not None else cache_root()
    sizes, files = {}, {}
    for part in PARTS:
        stats = [s for s in _files(root / part) if s is not None]
        sizes[part], files[part] = sum(s.st_size for s in stats), len(stats)
    return CacheInfo(root, sizes, files, max_cache_bytes())


def clear_cache(root: str | Path | None = None, part: str | None = None) -> int:
    """Delete the cache (or one part of it) and return the bytes freed. Only imgclf's own folders
    under the root are removed; anything else there is left alone. A run training at that moment
    recomputes what it loses from ``features/``; one training on NumPy DATA loses its images with
    ``arrays/``.

    Args:
        root: the cache folder; ``None`` means ``$IMGCLF_CACHE`` or ``~/.cache/imgclf``.
        part: ``"features"``, ``"arrays"``, ``"engines"`` or ``None`` for all three.
    """
    if part is not None and part not in PARTS:
        raise invalid_value("part", part, f"{', '.join(PARTS)}, or nothing for all")
    info = cache_info(root)
    freed = 0
    for name in PARTS if part is None else (part,):
        shutil.rmtree(info.root / name, ignore_errors=True)
        if not (info.root / name).exists():
            freed += info.sizes[name]
    return freed


@contextlib.contextmanager
def file_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` (created if needed) between processes; the lock
    is on the folder itself, so it leaves no lock file behind.

    Args:
        folder: the folder to lock.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def build_once(base: Path, key: str, build: Callable[[Path], None]) -> Path:
    """``base/key``, made by ``build`` if it is not there yet, once however many processes ask.

    Under :func:`file_lock` on ``base``: an entry already there is returned as it is; otherwise
    ``build(staging)`` fills a hidden staging folder, which is then renamed to ``base/key``. A build
    that raises leaves nothing behind.

    Args:
        base: the folder holding the entries (a part of the cache, or a run's ``engines/``).
        key: the entry's name. build: writes the entry's files into the folder it is given (which
        exists).
    """
    entry = base / key
    with file_lock(base):
        if entry.is_dir():
            return entry
        staging = base / f"{STAGING}{key}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            build(staging)
            staging.rename(entry)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return entry


def evict_lru(folder: Path, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used feature-cache files under ``folder`` until the rest fit in
    ``max_bytes``: shards (``shard-<id>.npy`` with its ``shard-<id>.keys.npy``, deleted together)
    and ``*.npz`` files of the older format. ``keep`` (the entry a run is using, a file or a
    folder) is never deleted. Temporary files left by a killed writer are removed too. Returns the
    deleted files.

    Args:
        folder: the feature cache (``<cache root>/features``).
        max_bytes: the cap.
        keep: a file, or a folder of files, to keep even when it alone exceeds the cap.
    """
    units: dict[Path, list] = {}  # a shard's two files are one unit: used, sized, deleted together
    now = time.time()
    found = [*folder.rglob("*.npz"), *folder.rglob("*.npy")] if folder.is_dir() else []
    for p in found:
        st = _stat(p)
        if st is None:
            continue
        if p.name.startswith(".tmp-") and now - st.st_mtime > _STALE_TMP_SECONDS:
            p.unlink(missing_ok=True)
            continue
        unit = units.setdefault(p.with_name(p.name.replace(".keys.npy", ".npy")), [0.0, 0, []])
        unit[0], unit[1] = max(unit[0], st.st_mtime), unit[1] + st.st_size
        unit[2].append(p)
    total = sum(size for _, size, _ in units.values())
    removed: list[Path] = []
    for _, size, files in sorted(units.values(), key=lambda e: e[0]):
        if total <= max_bytes:
            break
        p = files[0]
        if keep is not None and (p == keep or keep in p.parents) or p.name.startswith(".tmp-"):
            continue
        for f in files:
            with contextlib.suppress(OSError):
                f.unlink()
                removed.append(f)
        total -= size
    return removed
