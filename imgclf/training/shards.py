"""Rows of activations in sharded ``.npy`` files, read a batch at a time through memory maps.

A shard is two files written side by side: ``shard-<id>.npy`` (the rows, ``(k, …)``, at most
:data:`imgclf.config.SHARD_ROWS` of them) and ``shard-<id>.keys.npy`` (``(k,)`` content hashes of
the images the rows belong to). The keys file is written last, so a shard whose keys are readable
is whole; a shard whose rows do not match its keys (truncated, damaged, half evicted) is not read.

:class:`ShardedRows` names, for each of n images, the shard and row holding it. Nothing is loaded
up front: :meth:`ShardedRows.take` maps the shards a batch touches (``np.load(mmap_mode="r")``),
copies the batch's rows out and drops the maps, so a process holds one batch of rows however many
images there are (a map kept open would keep every page it touched resident).

Several workers each read their own part: ``rows.part(i, n)`` keeps the images of every n-th shard
from the i-th on (shard i of n), so n workers (hosts, ``tf.distribute`` input pipelines) together
read each shard once and never the same one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["ShardedRows", "read_keys", "write_shard"]

KEYS = ".keys.npy"


def write_shard(folder: Path, keys: Sequence[str], rows: np.ndarray) -> Path:
    """Write one shard (rows first, then keys, each to a temporary name replaced atomically).

    Args:
        folder: where (created if needed). keys: the rows' content hashes. rows: ``(len(keys), …)``.

    Returns:
        The rows file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"shard-{uuid.uuid4().hex[:16]}"
    for path, array in ((Path(f"{stem}.npy"), rows), (Path(f"{stem}{KEYS}"), np.array(keys))):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, array)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return Path(f"{stem}.npy")


def read_keys(folder: Path) -> list[tuple[Path, list[str]]]:
    """The whole shards in ``folder``, oldest first: (rows file, its keys). A damaged shard is left
    out and its files are removed (best effort), so its images are computed again."""
    found = []
    keys_files = sorted(folder.glob(f"shard-*{KEYS}"), key=_mtime) if folder.is_dir() else []
    for keys_file in keys_files:
        rows_file = keys_file.with_name(keys_file.name[: -len(KEYS)] + ".npy")
        try:
            keys = np.load(keys_file).tolist()
            rows = np.load(rows_file, mmap_mode="r")
            whole = len(rows) == len(keys)
            del rows
        except (OSError, ValueError, EOFError):
            whole = False
        if not whole:
            for f in (keys_file, rows_file):
                with contextlib.suppress(OSError):
                    f.unlink()
            continue
        found.append((rows_file, keys))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class ShardedRows:
    """n rows, each in some shard: ``files[shard[i]]`` row ``row[i]`` is row i. Read with
    :meth:`take`; ``np.asarray(rows)`` reads them all (tests, small sets).

    Args:
        files: the shards' rows files (or in-memory arrays, where no disk could take them).
        shard, row: where each of the n rows is (int arrays).
        item_shape: the shape of one row. dtype: what :meth:`take` returns (rows are stored in
        the shards' own dtype, float16 for activations, and converted). owners: objects kept
        alive with the rows (a ``TemporaryDirectory`` holding the files).
    """

    def __init__(
        self,
        files: Sequence[Path | np.ndarray],
        shard: np.ndarray,
        row: np.ndarray,
        item_shape: tuple[int, ...],
        dtype=np.float32,
        owners: Sequence[object] = (),
    ):
        self.files = list(files)
        self.shard = np.asarray(shard, np.int64)
        self.row = np.asarray(row, np.int64)
        self.shape = (len(self.shard), *item_shape)
        self.dtype = np.dtype(dtype)
        self.owners = list(owners)  # what must live while the files are read (a temporary folder)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, idx: Iterable[int] | np.ndarray) -> np.ndarray:
        """Rows ``idx`` in that order, as a new in-memory array of :attr:`dtype`."""
        idx = np.asarray(idx, np.int64).reshape(-1)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        shards = self.shard[idx]
        for s in np.unique(shards):
            at = np.flatnonzero(shards == s)
            source = self.files[s]
            mapped = source if isinstance(source, np.ndarray) else np.load(source, mmap_mode="r")
            out[at] = mapped[self.row[idx[at]]]
            del mapped  # unmapped: its pages no longer count as this process's memory
        return out

    def __array__(self, dtype=None, copy=None):
        whole = self.take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def memmaps(self) -> list[np.memmap]:
        """The shards, memory-mapped (read-only), in :attr:`files` order."""
        return [f if isinstance(f, np.ndarray) else np.load(f, mmap_mode="r") for f in self.files]

    def part(self, i: int, n: int) -> ShardedRows:
        """The rows of worker ``i`` of ``n``: those in shards i, i+n, i+2n, … (shard i of n)."""
        if not 0 <= i < n:
            raise ValueError(f"worker {i} of {n}: expected 0 <= i < n")
        keep = self.shard % n == i
        return self.subset(np.flatnonzero(keep))

    def subset(self, idx: np.ndarray) -> ShardedRows:
        """Rows ``idx`` (a view on the same shards; nothing is read)."""
        return ShardedRows(
            self.files, self.shard[idx], self.row[idx], self.shape[1:], self.dtype, self.owners
        )

    @staticmethod
    def concat(parts: Sequence[ShardedRows]) -> ShardedRows:
        """The rows of ``parts`` one after the other (e.g. the views of a training set)."""
        files: list[Path | np.ndarray] = []
        shard, row, owners = [], [], []
        for p in parts:
            owners.extend(p.owners)
            shard.append(p.shard + len(files))
            row.append(p.row)
            files.extend(p.files)
        first = parts[0]
        return ShardedRows(
            files, np.concatenate(shard), np.concatenate(row), first.shape[1:], first.dtype, owners
        )
