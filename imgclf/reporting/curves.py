"""Loss and accuracy curves of a run, from its history.csv (the poster figure of the notes)."""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["plot_history"]


def plot_history(history_csv: Path, out_png: Path) -> Path | None:
    """Plot train/val loss and accuracy per epoch, stages shaded; returns the file or None if no rows."""
    if not history_csv.exists():
        return None
    with open(history_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r[name] else float("nan") for r in rows]

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, col(metric), "o-", label=f"train {metric}")
        ax.plot(epochs, col(f"val_{metric}"), "o-", label=f"val {metric}")
        stages = [r["stage"] for r in rows]
        for i, stage in enumerate(stages):
            if i == 0 or stage != stages[i - 1]:
                ax.axvline(epochs[i] - 0.5, color="grey", lw=0.8, ls="--")
                ax.text(epochs[i] - 0.4, ax.get_ylim()[1], stage, va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
