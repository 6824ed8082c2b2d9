"""One HTML page that sets runs side by side (``imgclf runs --compare A B …``): their metrics
with intervals, validation curves overlaid, the options where their configs differ, and per-class
F1 with its differences — rendered from a Jinja2 template with autoescape on (run and class names
are user input), figures embedded, so the page works offline."""

from __future__ import annotations

import math
from pathlib import Path

from imgclf.reporting.catalog import RunSummary, read_run, read_run_config
from imgclf.reporting.curves import read_history
from imgclf.reporting.style import PALETTE, figure, png_data_uri, save
from imgclf.reporting.templating import render
from imgclf.runs import RunFiles, read_json

__all__ = ["compare_runs", "comparison_context", "plot_overlaid_curves"]


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def plot_overlaid_curves(histories: dict[str, list[dict]], out_png: Path | None = None) -> bytes:
    """Validation accuracy and loss per epoch of several runs, one colour (and line style) each.

    Args:
        histories: run name → its history.csv rows.
        out_png: where to write the PNG, or None.
    """
    styles = ["-", "--", ":", "-."]
    with figure(1, 2, size=(11, 4)) as (fig, axes):
        for k, (name, rows) in enumerate(histories.items()):
            epochs = [int(r["epoch"]) for r in rows]
            look = {"color": PALETTE[k % len(PALETTE)], "linestyle": styles[k // len(PALETTE) % 4]}
            axes[0].plot(epochs, [_num(r.get("val_accuracy")) for r in rows], label=name, **look)
            axes[1].plot(epochs, [_num(r.get("val_loss")) for r in rows], label=name, **look)
        for ax, title in zip(axes, ("validation accuracy", "validation loss"), strict=True):
            ax.set_title(title)
            ax.set_xlabel("epoch")
        axes[0].legend(loc="lower right", fontsize=8)
        return save(fig, out_png)


def _config_differences(configs: list[dict]) -> tuple[list[dict], int]:
    """Options whose values differ between the runs, and how many are the same in all."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    rows = []
    for key in keys:
        values = [c.get(key) for c in configs]
        if any(v != values[0] for v in values):
            rows.append({"key": key, "values": ["-" if v is None else str(v) for v in values]})
    return rows, len(keys) - len(rows)


def _f1_rows(metrics: list[dict]) -> list[dict]:
    """Per-class F1 of each run, and the change from the first run to the last, largest first."""
    classes = list(dict.fromkeys(c for m in metrics for c in m.get("per_class", {})))
    rows = []
    for c in classes:
        values = [m.get("per_class", {}).get(c, {}).get("f1") for m in metrics]
        known = [v for v in values if v is not None]
        spread = max(known) - min(known) if len(known) > 1 else 0.0
        delta = values[-1] - values[0] if None not in (values[0], values[-1]) else None
        rows.append({"class": c, "values": values, "delta": delta, "spread": spread})
    return sorted(rows, key=lambda r: (-r["spread"], r["class"]))


def _load(path: Path) -> tuple[RunSummary, dict, dict, list[dict]]:
    summary = read_run(path)
    config = read_run_config(path)
    metrics_file = path / RunFiles.METRICS
    metrics = read_json(metrics_file) if metrics_file.is_file() else {}
    return summary, config, metrics, read_history(path / RunFiles.HISTORY)


def comparison_context(paths: list[Path]) -> dict:
    """What the compare template shows, from the run folders ``paths`` (in that order).

    Args:
        paths: two or more run folders.
    """
    loaded = [_load(p) for p in paths]
    summaries = [s for s, _, _, _ in loaded]
    names = [
        s.name if [t.name for t in summaries].count(s.name) == 1 else s.path for s in summaries
    ]
    differences, same = _config_differences([c for _, c, _, _ in loaded])
    histories = {n: h for n, (_, _, _, h) in zip(names, loaded, strict=True) if h}
    runs = []
    for name, (summary, _, metrics, _) in zip(names, loaded, strict=True):
        macro = metrics.get("statistics", {}).get("macro_f1") or {}
        runs.append(
            {
                **summary.to_dict(),
                "label": name,
                "macro_f1": metrics.get("macro_f1"),
                "macro_low": macro.get("low"),
                "macro_high": macro.get("high"),
                "classes": len(metrics.get("classes", [])),
            }
        )
    return {
        "runs": runs,
        "config_differences": differences,
        "config_same": same,
        "f1": _f1_rows([m for _, _, m, _ in loaded]),
        "curves": png_data_uri(plot_overlaid_curves(histories)) if histories else None,
    }


def compare_runs(paths: list[str | Path], out: str | Path) -> Path:
    """Write the comparison page of the runs ``paths`` to ``out``.

    Args:
        paths: two or more run folders (each holding a config.yaml).
        out: the HTML file to write (its folder is created if needed).

    Returns:
        The path written.
    """
    folders = [Path(p).expanduser() for p in paths]
    html = render("compare.html.j2", **comparison_context(folders))
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target
