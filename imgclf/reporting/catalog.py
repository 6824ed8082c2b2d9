"""The runs of a folder, one :class:`RunSummary` each (``imgclf runs``): name, date, data, model,
input size, test accuracy with its 95 % Wilson interval, accuracy on separate folders
(``imgclf evaluate RUN DATA``), wall time and status, newest first.

A run's status is read by :func:`run_status` from what its folder holds, tolerant of runs written
by any version: a ``status`` in ``state.json`` when there is one; else ``metrics.json``'s
``interrupted`` flag; else (no metrics.json, or no model.keras) ``incomplete`` — still training,
killed, or stopped before its test. ``state.json`` alone (the checkpoint ``--resume`` needs) means
``interrupted``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from imgclf.evaluation.stats import wilson_interval
from imgclf.runs import RunFiles, read_json

__all__ = [
    "RunSummary",
    "STATUSES",
    "format_runs",
    "is_run",
    "list_runs",
    "read_run",
    "read_run_config",
    "run_status",
]

STATUSES = ("complete", "interrupted", "incomplete")


@dataclass
class RunSummary:
    """One run folder, as ``imgclf runs`` lists it."""

    name: str
    path: str
    date: str  # local time the run started (config.yaml written), YYYY-MM-DD HH:MM
    data: str
    model: str
    image_size: int | None
    status: str
    accuracy: float | None = None
    low: float | None = None  # 95 % Wilson interval of the test accuracy
    high: float | None = None
    n: int = 0
    external: list[dict] = field(default_factory=list)  # {"data", "accuracy", "n"} per folder
    seconds: float | None = None  # wall time of the training command
    started: float = 0.0  # POSIX time, for the order

    def to_dict(self) -> dict:
        return asdict(self)


def _json(path: Path) -> dict:
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def read_run_config(path: Path) -> dict:
    """A run's config.yaml as a dict; {} when it cannot be read (a torn or hand-edited file).

    Args:
        path: the run folder.
    """
    import yaml

    try:
        value = yaml.safe_load((path / RunFiles.CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def run_status(path: Path) -> str:
    """``complete``, ``interrupted`` or ``incomplete``: see the module's docstring.

    Args:
        path: the run folder.
    """
    resumable = (path / RunFiles.STATE).is_file()
    state = _json(path / RunFiles.STATE) if resumable else {}
    if state.get("status") in STATUSES:
        return state["status"]
    metrics = _json(path / RunFiles.METRICS)
    if metrics.get("status") in STATUSES:
        return metrics["status"]
    if not metrics or not (path / RunFiles.MODEL).is_file():
        return "interrupted" if resumable else "incomplete"
    return "interrupted" if metrics.get("interrupted") or resumable else "complete"


def _accuracy(metrics: dict) -> tuple[float | None, float | None, float | None, int]:
    if "accuracy" not in metrics:
        return None, None, None, 0
    acc, n = float(metrics["accuracy"]), int(metrics.get("n", 0))
    stat = metrics.get("statistics", {}).get("accuracy")
    low, high = (stat["low"], stat["high"]) if stat else wilson_interval(round(acc * n), n)
    return acc, low, high, n


def _external(path: Path) -> list[dict]:
    found = []
    for saved in sorted((path / RunFiles.EVALUATIONS).glob(f"*/{RunFiles.METRICS}")):
        metrics = _json(saved)
        if "accuracy" in metrics:
            data = str(metrics.get("data") or saved.parent.name)
            found.append({"data": data, "accuracy": metrics["accuracy"], "n": metrics.get("n", 0)})
    return found


def _seconds(path: Path, metrics: dict) -> float | None:
    timings = _json(path / RunFiles.TIMINGS)
    if "total_s" in timings:
        return float(timings["total_s"])
    stages = timings.get("stages") or {}
    if stages:
        return float(sum(v for v in stages.values() if isinstance(v, int | float)))
    return metrics.get("train_seconds")


def read_run(path: str | Path) -> RunSummary:
    """The summary of one run folder (one that holds a ``config.yaml``: see :func:`is_run`).

    Args:
        path: the run folder.
    """
    path = Path(path).expanduser()
    config_file = path / RunFiles.CONFIG
    config = read_run_config(path)
    metrics = _json(path / RunFiles.METRICS)
    started = config_file.stat().st_mtime
    acc, low, high, n = _accuracy(metrics)
    return RunSummary(
        name=path.name,
        path=str(path),
        date=datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M"),
        data=str(config.get("data", "")),
        model=str(config.get("model", "")),
        image_size=config.get("image_size"),
        status=run_status(path),
        accuracy=acc,
        low=low,
        high=high,
        n=n,
        external=_external(path),
        seconds=_seconds(path, metrics),
        started=started,
    )


def is_run(path: Path) -> bool:
    """Whether ``path`` is a run folder (it holds the config.yaml every run writes first).

    Args:
        path: a folder.
    """
    return (path / RunFiles.CONFIG).is_file()


def list_runs(folder: str | Path) -> list[RunSummary]:
    """Every run folder directly inside ``folder``, newest first.

    Args:
        folder: a folder of run folders (``train --out``; default ``runs``).
    """
    root = Path(folder).expanduser()
    runs = [read_run(p) for p in root.iterdir() if is_run(p)]
    return sorted(runs, key=lambda r: (-r.started, r.name))


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _row(r: RunSummary) -> list[str]:
    test = "-" if r.accuracy is None else f"{r.accuracy:.3f} [{r.low:.3f}, {r.high:.3f}] n={r.n}"
    external = "; ".join(
        f"{e['accuracy']:.3f} n={e['n']} ({Path(e['data']).name})" for e in r.external
    )
    data = "/".join(Path(r.data).parts[-2:]) if r.data else "-"
    size = f"{r.image_size}px" if r.image_size else "-"
    return [
        r.name,
        r.date,
        data,
        r.model,
        size,
        test,
        external or "-",
        _duration(r.seconds),
        r.status,
    ]


HEADER = ["name", "date", "data", "model", "size", "test accuracy [95% CI]", "external", "time"]


def format_runs(runs: list[RunSummary]) -> str:
    """A plain-text table of ``runs``, one line each (control characters in names escaped).

    Args:
        runs: the summaries, in the order to show.
    """
    from imgclf.data.scan import one_line

    rows = [[*HEADER, "status"], *([one_line(c) for c in _row(r)] for r in runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
