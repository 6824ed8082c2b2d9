"""``imgclf predict --format parquet --output DIR``: prediction rows as Parquet files in a folder,
for jobs of millions of images.

The rows are those of CSV/JSON output (:meth:`imgclf.serving.prediction.Prediction.to_dict`): the
columns ``path``, ``label``, ``confidence``, ``top_k`` (a list of ``{label, probability}``) and
``error``, typed (:func:`row_schema`). Every :data:`imgclf.constants.PARQUET_SHARD_ROWS` rows become
one file, ``part-00000.parquet``, ``part-00001.parquet`` …, each written whole and moved into place
in one step, so an interrupted job leaves only complete files and ``--resume`` carries on after
them.
Any Parquet reader takes the folder as one table (``pandas.read_parquet(DIR)``,
``pyarrow.dataset.dataset(DIR)``, ``ray.data.read_parquet(DIR)``).

pyarrow comes with the ``ray`` extra (``pip install 'imgclf[ray]'``) and is imported only here,
inside functions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from imgclf.atomic import atomic_write
from imgclf.constants import PARQUET_SHARD_ROWS
from imgclf.errors import ConfigError

__all__ = ["SHARD_PATTERN", "ParquetShards", "open_parquet", "read_parquet_paths", "row_schema"]

SHARD_PATTERN = "part-*.parquet"
_SHARD_NAME = re.compile(r"part-(\d+)\.parquet")


def import_pyarrow() -> Any:
    """The ``pyarrow`` module, or a one-line error saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the writer and reader used below)
    except ImportError:
        raise ConfigError(
            "--format parquet needs pyarrow, which is not installed: pip install 'imgclf[ray]'"
        ) from None
    return pyarrow


def row_schema() -> Any:
    """The Arrow schema of a prediction row, in the column order of ``Prediction.to_dict()``."""
    pa = import_pyarrow()
    top = pa.struct([("label", pa.string()), ("probability", pa.float64())])
    return pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("top_k", pa.list_(top)),
            ("error", pa.string()),
        ]
    )


class ParquetShards:
    """Write prediction dicts into ``folder`` as Parquet files of ``shard_rows`` rows each (the
    same ``write``/``close`` as :class:`imgclf.serving.output.PredictionWriter`).

    Args:
        folder: the output folder (it exists).
        first: the number of the first file written (after those a resumed job keeps).
        shard_rows: rows per file.
    """

    stream = None  # no text stream to close (PredictionWriter has one)

    def __init__(self, folder: Path, first: int = 0, shard_rows: int = PARQUET_SHARD_ROWS):
        self.folder, self.shard_rows, self.count = folder, shard_rows, 0
        self.files: list[Path] = []
        self._next, self._rows = first, []

    def write(self, rows: list[dict]) -> None:
        """Keep ``rows``; write a file whenever ``shard_rows`` of them are waiting."""
        self._rows.extend(rows)
        self.count += len(rows)
        while len(self._rows) >= self.shard_rows:
            self._flush(self.shard_rows)

    def close(self) -> None:
        """Write the rows still waiting (a last, shorter file)."""
        if self._rows:
            self._flush(len(self._rows))

    def _flush(self, n: int) -> None:
        pa = import_pyarrow()
        table = pa.Table.from_pylist(self._rows[:n], schema=row_schema())
        path = self.folder / f"part-{self._next:05d}.parquet"
        atomic_write(path, lambda tmp: pa.parquet.write_table(table, tmp))
        self.files.append(path)
        self._rows, self._next = self._rows[n:], self._next + 1


def read_parquet_paths(folder: str | Path) -> list[str]:
    """The ``path`` of every row in the folder's Parquet files (for ``--resume``).

    Args:
        folder: a folder written by :class:`ParquetShards`.
    """
    pa = import_pyarrow()
    return [
        p
        for f in sorted(Path(folder).glob(SHARD_PATTERN))
        for p in pa.parquet.read_table(f, columns=["path"]).column("path").to_pylist()
    ]


def open_parquet(path: str | Path, resume: bool) -> tuple[ParquetShards, set[str]]:
    """Open the folder ``path`` for Parquet output: (writer, paths already done).

    Args:
        path: the output folder (made if missing).
        resume: keep the files already there and skip their paths; without it a folder that already
            holds Parquet files is an error.

    Raises:
        ConfigError: ``path`` is a file, or holds Parquet files and ``resume`` is False.
    """
    import_pyarrow()
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"--format parquet writes a folder of files; --output {str(path)!r} is a file"
        )
    shards = sorted(folder.glob(SHARD_PATTERN)) if folder.is_dir() else []
    if shards and not resume:
        raise ConfigError(
            f"output folder {str(path)!r} already holds Parquet files; pass --resume to continue "
            "it, or remove them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for f in shards if (m := _SHARD_NAME.fullmatch(f.name))]
    first = max(numbers, default=-1) + 1
    return ParquetShards(folder, first), set(read_parquet_paths(folder)) if shards else set()
