"""Prediction output written as it goes — CSV, JSON or JSON Lines — and read back for ``--resume``.

Every row is flushed when written, so an interrupted run over 100,000 images keeps what it did.
``top_k`` has one shape in every format: a list of ``{"label": …, "probability": …}`` objects, the
CSV's ``top_k`` cell holding that list as JSON, so any class name — with ``:``, ``;``, commas or
quotes — parses back with ``json.loads``. A JSON file is an array with one object per line; a run
killed before it could close the array leaves every finished line readable.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TextIO

from imgclf.errors import ConfigError, DataError, invalid_value

__all__ = [
    "FORMATS",
    "CSV_COLUMNS",
    "PredictionWriter",
    "format_of",
    "read_done",
    "csv_row",
    "parse_csv_row",
    "format_table",
]

FORMATS = ("csv", "json", "jsonl")
CSV_COLUMNS = ["path", "label", "confidence", "top_k", "error"]


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The output format: ``fmt`` if given, else from the file's extension.

    Args:
        path: the output file.
        fmt: ``csv``, ``json`` or ``jsonl``, or None to go by the extension.
    """
    fmt = fmt or Path(path).suffix.lower().lstrip(".")
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise invalid_value(
            "format", fmt or str(path), "csv, json or jsonl (or an --output file ending in one)"
        )
    return fmt


def csv_row(d: dict) -> list[str]:
    """A prediction's ``to_dict()`` as a CSV row (``top_k`` as JSON, the same list of objects as
    in JSON and JSON Lines output).

    Args:
        d: the prediction dict.
    """
    conf = "" if d["confidence"] is None else f"{d['confidence']:.6f}"
    top = json.dumps(
        [{"label": t["label"], "probability": round(t["probability"], 6)} for t in d["top_k"]],
        ensure_ascii=False,
    )
    return [d["path"], d["label"] or "", conf, top, d["error"] or ""]


def parse_csv_row(row: dict[str, str]) -> dict:
    """A row read by ``csv.DictReader`` back into a prediction dict.

    Args:
        row: the row, with the columns written by :func:`csv_row`.
    """
    return {
        "path": row["path"],
        "label": row["label"] or None,
        "confidence": float(row["confidence"]) if row["confidence"] else None,
        "top_k": [_top(t) for t in json.loads(row["top_k"] or "[]")],
        "error": row["error"] or None,
    }


def _top(t) -> dict:
    """A ``top_k`` entry as ``{"label", "probability"}``; older CSV files (``--resume``) hold it as
    ``[label, probability]``."""
    if isinstance(t, dict):
        return {"label": t["label"], "probability": t["probability"]}
    label, probability = t
    return {"label": label, "probability": probability}


class PredictionWriter:
    """Write prediction dicts to ``stream`` in ``fmt`` as they come; :meth:`close` ends a JSON
    array.

    Args:
        stream: an open text stream (a file, or ``sys.stdout``).
        fmt: ``csv``, ``json`` or ``jsonl``.
        append: continue an existing file (no CSV header; a JSON array re-opened).
    """

    def __init__(self, stream: TextIO, fmt: str, append: bool = False):
        self.stream, self.fmt, self.count = stream, fmt, 0
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        self._first = not append
        if not append and fmt == "csv":
            self._csv.writerow(CSV_COLUMNS)
        elif not append and fmt == "json":
            stream.write("[\n")
        stream.flush()

    def write(self, rows: list[dict]) -> None:
        """Write and flush ``rows`` (``Prediction.to_dict()`` results)."""
        for d in rows:
            if self._csv is not None:
                self._csv.writerow(csv_row(d))
            elif self.fmt == "jsonl":
                self.stream.write(json.dumps(d, ensure_ascii=False) + "\n")
            else:
                self.stream.write(
                    ("" if self._first else ",\n") + json.dumps(d, ensure_ascii=False)
                )
                self._first = False
            self.count += 1
        self.stream.flush()

    def close(self) -> None:
        """End the JSON array (other formats need nothing)."""
        if self.fmt == "json":
            self.stream.write("\n]\n")
        self.stream.flush()


def format_table(rows: list[dict]) -> str:
    """Predictions (``to_dict()`` results) as an aligned text table (``imgclf predict``'s default).

    Args:
        rows: prediction dicts with ``path``, ``label``, ``confidence``, ``top_k`` and ``error``.
    """
    width = max((len(r["path"]) for r in rows), default=4)
    lines = [f"{'path':<{width}}  {'label':<12} {'conf':>6}  top-k"]
    for r in rows:
        if r["error"]:
            lines.append(f"{r['path']:<{width}}  ERROR {r['error']}")
        else:
            top = ", ".join(f"{t['label']} {t['probability']:.2f}" for t in r["top_k"])
            lines.append(f"{r['path']:<{width}}  {r['label']:<12} {r['confidence']:6.3f}  {top}")
    return "\n".join(lines)


def _json_lines(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        line = line.strip().rstrip(",")
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a killed run may be cut short
                continue
    return rows


def read_done(path: str | Path, fmt: str) -> list[dict]:
    """The prediction dicts already in an output file (for ``--resume``); [] if it does not exist.

    Args:
        path: the output file.
        fmt: its format.
    """
    p = Path(path)
    if not p.exists():
        return []
    text = p.read_text(encoding="utf-8")
    if fmt != "csv":
        return _json_lines(text)
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames and reader.fieldnames != CSV_COLUMNS:
        raise DataError(
            f"{str(path)!r} is not an imgclf predict CSV (columns {reader.fieldnames}); "
            "cannot resume it"
        )
    rows = []
    for row in reader:
        try:
            rows.append(parse_csv_row(row))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue
    return rows


def open_output(path: str | Path, fmt: str, resume: bool) -> tuple[PredictionWriter, set[str]]:
    """Open ``path`` for writing predictions: (writer, paths already done).

    Args:
        path: the output file; ``-`` is stdout.
        fmt: its format.
        resume: keep the rows already there and skip their paths; without it an existing file is an
        error.
    """
    if str(path) == "-":
        return PredictionWriter(sys.stdout, fmt), set()
    p = Path(path).expanduser()
    if p.exists() and not p.is_file():  # /dev/null, a named pipe: written to, nothing to keep
        if resume:
            raise ConfigError(
                f"--resume reads back --output; {str(path)!r} is not a regular file (a device "
                "or a pipe), so there is nothing to continue"
            )
        # noqa: SIM115 (closed by the caller)
        return PredictionWriter(open(p, "w", encoding="utf-8", newline=""), fmt), set()
    done = read_done(p, fmt) if resume else []
    if p.exists() and not resume:
        raise ConfigError(
            f"output file {str(path)!r} already exists; pass --resume to continue it, or remove it"
        )
    if fmt == "json" and done:  # rewrite without the closing bracket, then keep appending
        p.write_text(
            "[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in done), encoding="utf-8"
        )
    append = bool(done) or (resume and p.exists() and p.stat().st_size > 0 and fmt != "json")
    # noqa: SIM115 (closed by the caller)
    stream = open(p, "a" if append else "w", encoding="utf-8", newline="")
    return PredictionWriter(stream, fmt, append=append), {d["path"] for d in done}
