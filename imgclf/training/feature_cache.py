"""Activations of a frozen backbone prefix, computed once per image and augmented view, kept on
disk.

With the bottom of a pretrained backbone frozen, its output for an image never changes, so paying
for that forward pass every epoch (as a plain frozen-VGG16 recipe does) is waste. imgclf computes it
once per image — and once per augmented view when augmentation is on — and trains the rest on the
stored activations. Entries are keyed by backbone, cut layer, image size, augmentation and *file
content* (not path), so a second run on the same data, or on a copy of it, reuses them.

Layout: ``<cache root>/<key>/view<k>.npz`` holding ``hashes`` (n,) and ``activations`` (n, …)
float16. The root is ``$IMGCLF_CACHE`` or ``~/.cache/imgclf``.

Dependable under faults: a damaged file (empty, truncated, not a cache file) is ignored and rebuilt;
a write goes to a temporary file that replaces the entry atomically, so a reader never sees half a
file; concurrent writers of one entry (two runs on the same data) take a file lock and merge what is
on disk with their new rows, so neither loses the other's; a cache that cannot be written
(read-only, disk full) costs only reuse, never the run. The whole feature cache is kept under a size
cap by deleting the least recently used entries (:mod:`imgclf.cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgclf.cache import evict_lru, file_lock, max_cache_bytes, part_folder

__all__ = ["FeatureCache", "file_digest", "default_cache_root"]

_DAMAGED = (
    OSError,
    ValueError,
    KeyError,
    EOFError,
    zipfile.BadZipFile,
)  # what np.load raises for a bad file


def default_cache_root() -> Path:
    return part_folder("features")


def file_digest(path: str | Path) -> str:
    """Content hash of a file (BLAKE2b, 128 bit).

    Args:
        path: the file.

    Returns:
        The hash as 32 hexadecimal digits.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Look up and store activations by content hash. ``hits``/``misses`` count what the last call
    found."""

    def __init__(self, root: Path | None, key_parts: Sequence[object]):
        self.root = root
        self.key = hashlib.blake2b(repr(tuple(key_parts)).encode(), digest_size=12).hexdigest()
        self.hits = 0
        self.misses = 0
        self.write_error: str | None = None

    @staticmethod
    def digests(paths: Sequence[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(file_digest, paths))

    def _file(self, view: int) -> Path | None:
        return None if self.root is None else self.root / self.key / f"view{view}.npz"

    def _load(self, view: int) -> dict[str, np.ndarray]:
        f = self._file(view)
        if f is None or not f.exists():
            return {}
        try:
            with np.load(f) as z:
                table = dict(zip(z["hashes"].tolist(), z["activations"], strict=True))
        except _DAMAGED:  # a damaged cache file is ignored and rewritten
            return {}
        with contextlib.suppress(OSError):
            os.utime(f)  # recently used: the last to be evicted
        return table

    def _save(self, view: int, fresh: dict[str, np.ndarray]) -> None:
        """Merge ``fresh`` rows into the entry on disk under a lock, replacing the file atomically.
        A failed write (read-only cache, disk full) is remembered in ``write_error``, not raised."""
        f = self._file(view)
        if f is None:
            return
        tmp = None
        try:
            with file_lock(f.parent):
                table = {**self._load(view), **fresh}  # rows another run wrote meanwhile are kept
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=f.parent)
                with os.fdopen(fd, "wb") as fh:
                    np.savez(
                        fh, hashes=np.array(list(table)), activations=np.stack(list(table.values()))
                    )
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, f)
                tmp = None
            evict_lru(self.root, max_cache_bytes(), keep=f)
        except OSError as exc:
            self.write_error = f"feature cache not saved ({exc.strerror or exc}): {f.parent}"
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def get(
        self,
        hashes: Sequence[str],
        view: int,
        compute: Callable[[list[int]], tuple[list[int], np.ndarray]],
    ) -> tuple[list[int], np.ndarray]:
        """Activations for ``hashes``: (indices found, their rows in order). ``compute(missing)``
        returns the indices it could compute (an undecodable file drops out) and their rows."""
        table = self._load(view)
        missing = [i for i, h in enumerate(hashes) if h not in table]
        self.hits += len(hashes) - len(missing)
        if missing:
            kept, rows = compute(missing)
            self.misses += len(kept)
            fresh = {hashes[i]: row for i, row in zip(kept, rows.astype(np.float16), strict=False)}
            table.update(fresh)
            if fresh:
                self._save(view, fresh)
        present = [i for i, h in enumerate(hashes) if h in table]
        if not present:
            return [], np.zeros((0,), np.float32)
        return present, np.stack([table[hashes[i]] for i in present]).astype(np.float32)
