"""Rows of activations in sharded ``.npy`` files, read a batch at a time through memory maps.

A shard is two files written side by side: ``shard-<id>.npy`` (the rows, ``(k, …)``, at most
:data:`imgclf.constants.SHARD_ROWS` of them) and ``shard-<id>.keys.npy`` (``(k,)`` content hashes of
the images the rows belong to). The keys file is written last, so a shard whose keys are readable
is whole; a shard whose rows do not match its keys (truncated, damaged, half evicted) is not read.

:class:`ShardedRows` names, for each of n images, the shard and row holding it. Nothing is loaded
up front: :meth:`ShardedRows.take` reads just the batch's rows from the shards, one positioned read
(``os.pread``) per row at the offset the ``.npy`` header gives, so a process holds one batch of rows
however many images there are. (Reading through ``np.load(mmap_mode="r")`` gives the same rows,
and :meth:`ShardedRows.memmaps` does, but a map kept open keeps every page it touched resident, and
mapping a shard per batch costs ~20× more than the reads.) The files stay open while rows use
them, so a shard evicted meanwhile by another run's size cap is still read whole.

Several workers each read their own part: ``rows.part(i, n)`` keeps the images of every n-th shard
from the i-th on (shard i of n), so n workers (hosts, ``tf.distribute`` input pipelines) together
read each shard once and never the same one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
import weakref
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


class _Shards:
    """The shard files of some rows, opened on first use and closed with this object: per file
    its descriptor, the offset of row 0, the stored dtype and the shape of a row."""

    def __init__(self, files: Sequence[Path | np.ndarray]):
        self.files = list(files)
        self.open: dict[int, tuple[int, int, np.dtype, tuple[int, ...]]] = {}
        weakref.finalize(self, _close, self.open)

    def layout(self, s: int) -> tuple[int, int, np.dtype, tuple[int, ...]]:
        if s not in self.open:
            with open(self.files[s], "rb") as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(fh)
                offset = fh.tell()
            self.open[s] = (os.open(self.files[s], os.O_RDONLY), offset, dtype, tuple(shape[1:]))
        return self.open[s]

    def rows(self, s: int, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` of shard ``s`` (its stored dtype)."""
        source = self.files[s]
        if isinstance(source, np.ndarray):
            return source[rows]
        fd, offset, dtype, shape = self.layout(s)
        size = dtype.itemsize * int(np.prod(shape))
        data = b"".join(os.pread(fd, size, offset + int(r) * size) for r in rows)
        if len(data) != size * len(rows):
            raise OSError(f"feature cache shard {self.files[s]} is shorter than its keys")
        return np.frombuffer(data, dtype).reshape(len(rows), *shape)


def _close(open_files: dict) -> None:
    for fd, *_ in open_files.values():
        with contextlib.suppress(OSError):
            os.close(fd)


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
        files: Sequence[Path | np.ndarray] | _Shards,
        shard: np.ndarray,
        row: np.ndarray,
        item_shape: tuple[int, ...],
        dtype=np.float32,
        owners: Sequence[object] = (),
    ):
        self.shards = files if isinstance(files, _Shards) else _Shards(files)
        self.files = self.shards.files
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
            out[at] = self.shards.rows(int(s), self.row[idx[at]])
        return out

    def __array__(self, dtype=None, copy=None):
        whole = self.take(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype)

    def memmaps(self) -> list[np.ndarray]:
        """The shards, memory-mapped (read-only), in :attr:`files` order."""
        return [f if isinstance(f, np.ndarray) else np.load(f, mmap_mode="r") for f in self.files]

    def part(self, i: int, n: int) -> ShardedRows:
        """The rows of worker ``i`` of ``n``: those in shards i, i+n, i+2n, … (shard i of n)."""
        if not 0 <= i < n:
            raise ValueError(f"worker {i} of {n}: expected 0 <= i < n")
        keep = self.shard % n == i
        return self.subset(np.flatnonzero(keep))

    def subset(self, idx: np.ndarray) -> ShardedRows:
        """Rows ``idx`` (on the same shards; nothing is read)."""
        return ShardedRows(
            self.shards, self.shard[idx], self.row[idx], self.shape[1:], self.dtype, self.owners
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
