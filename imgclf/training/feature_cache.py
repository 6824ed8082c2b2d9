"""Activations of a frozen backbone prefix, computed once per image and augmented view, kept on
disk in shards and read a batch at a time.

With the bottom of a pretrained backbone frozen, its output for an image never changes, so paying
for that forward pass every epoch (as a plain frozen-VGG16 recipe does) is waste. imgclf computes it
once per image — and once per augmented view when augmentation is on — and trains the rest on the
stored activations. Entries are keyed by backbone, cut layer, image size, augmentation and *file
content* (not path), so a second run on the same data, or on a copy of it, reuses them.

Layout: ``<cache root>/<key>/view<k>/shard-<id>.npy`` (at most :data:`imgclf.constants.SHARD_ROWS`
rows of float16 activations) beside ``shard-<id>.keys.npy`` (their images' content hashes); see
:mod:`imgclf.training.shards`. A lookup returns a :class:`~imgclf.training.shards.ShardedRows`
that reads rows through memory maps when a batch needs them, so activations larger than memory are
never all in RAM. The root is ``$IMGCLF_CACHE`` or ``~/.cache/imgclf``. The key carries a format
version (:data:`FORMAT`): a cache written in an older format (``view<k>.npz``) is never read, only
rebuilt beside it, and the old files leave by the size cap.

Dependable under faults: a damaged shard (empty, truncated, not a cache file) is ignored, removed
and its rows computed again; a shard is written to temporary names replaced atomically (rows first,
keys last), so a reader never sees half a shard; concurrent writers of one entry (two runs on the
same data) each add their own shards, so neither loses the other's; a cache that cannot be written
(read-only, disk full) costs only reuse, never the run (the rows go to a temporary folder, or stay
in memory). With no cache (``--no-feature-cache``) the shards live in a temporary folder removed
with the :class:`FeatureCache`. The whole feature cache is kept under a size cap by deleting the
least recently used files (:mod:`imgclf.cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgclf.cache import evict_lru, file_lock, max_cache_bytes, part_folder
from imgclf.constants import SHARD_ROWS
from imgclf.training.shards import ShardedRows, read_keys, write_shard

__all__ = ["FORMAT", "FeatureCache", "file_digest", "default_cache_root"]

FORMAT = "shards-1"  # part of every key: entries of another format are never read
Chunks = tuple[list[int], np.ndarray] | Iterable[tuple[list[int], np.ndarray]]


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
    """Look up and store activations by content hash. ``hits``/``misses`` count what the last calls
    found and computed.

    Args:
        root: the feature cache folder, or None to keep nothing (a temporary folder is used).
        key_parts: what the activations depend on (backbone, cut, size, augmentation, seed).
    """

    def __init__(self, root: Path | None, key_parts: Sequence[object]):
        self.root = root
        parts = (FORMAT, *key_parts)
        self.key = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
        self.hits = 0
        self.misses = 0
        self.write_error: str | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None

    @staticmethod
    def digests(paths: Sequence[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(file_digest, paths))

    def _temporary(self, view: int) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="imgclf-features-")
        return Path(self._scratch.name) / f"view{view}"

    def _folder(self, view: int) -> Path:
        if self.root is None:
            return self._temporary(view)
        return self.root / self.key / f"view{view}"

    def _index(self, folder: Path) -> tuple[list, dict[str, tuple[int, int]]]:
        """The shards in ``folder`` and where each hash is (the first shard holding it wins)."""
        files: list = []
        where: dict[str, tuple[int, int]] = {}
        for rows_file, keys in read_keys(folder):
            for r, h in enumerate(keys):
                where.setdefault(h, (len(files), r))
            for f in (rows_file, rows_file.with_suffix(".keys.npy")):
                with contextlib.suppress(OSError):
                    os.utime(f)  # recently used: the last to be evicted
            files.append(rows_file)
        return files, where

    def _store(self, view: int, keys: list[str], rows: np.ndarray):
        """Write one shard; on failure, remember why and keep the rows elsewhere. Returns what
        :class:`ShardedRows` reads them from (a file, or the array itself)."""
        folder = self._folder(view)
        try:
            with file_lock(folder):
                return write_shard(folder, keys, rows)
        except OSError as exc:
            if self.write_error is None:
                self.write_error = f"feature cache not saved ({exc.strerror or exc}): {folder}"
        if self.root is not None:
            with contextlib.suppress(OSError):  # the rows still stream, from a temporary folder
                return write_shard(self._temporary(view), keys, rows)
        return rows  # no disk at all: these rows stay in memory

    def get(
        self,
        hashes: Sequence[str],
        view: int,
        compute: Callable[[list[int]], Chunks],
    ) -> tuple[list[int], ShardedRows]:
        """Activations for ``hashes``: (indices found, their rows in that order).

        Args:
            hashes: content hashes of the images. view: 0 for the images as they are, k > 0 for
            the k-th augmented copy. compute: ``compute(missing)`` gives ``(indices, rows)`` of
            what it could compute (an undecodable file drops out), whole or in chunks (an
            iterable of such pairs), so that no more than a chunk is ever in memory.
        """
        folder = self._folder(view)
        files, where = self._index(folder)
        missing = [i for i, h in enumerate(hashes) if h not in where]
        self.hits += len(hashes) - len(missing)
        item_shape: tuple[int, ...] | None = None
        if missing:
            chunks = compute(missing)
            for kept, rows in [chunks] if isinstance(chunks, tuple) else chunks:
                for at in range(0, len(kept), SHARD_ROWS):
                    part = kept[at : at + SHARD_ROWS]
                    keys = [hashes[i] for i in part]
                    files.append(self._store(view, keys, rows[at : at + SHARD_ROWS].astype("f2")))
                    where.update((h, (len(files) - 1, r)) for r, h in enumerate(keys))
                    self.misses += len(part)
                    item_shape = rows.shape[1:]
            if self.root is not None and self.write_error is None:
                evict_lru(self.root, max_cache_bytes(), keep=self.root / self.key)
        present = [i for i, h in enumerate(hashes) if h in where]
        at = np.array([where[hashes[i]] for i in present], np.int64).reshape(-1, 2)
        if item_shape is None and present:
            item_shape = _item_shape(files[at[0, 0]])
        return present, ShardedRows(files, at[:, 0], at[:, 1], item_shape or (), np.float32)


def _item_shape(source) -> tuple[int, ...]:
    rows = source if isinstance(source, np.ndarray) else np.load(source, mmap_mode="r")
    return tuple(rows.shape[1:])
