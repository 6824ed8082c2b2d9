"""Loss, accuracy and learning rate of a run per epoch, from its history.csv (the classic training
curves): both stages marked, and the chosen epoch (lowest validation loss, the one model.keras
holds)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from imgclf.reporting.style import PALETTE, figure, save

__all__ = ["read_history", "best_epoch", "plot_history"]


def read_history(history_csv: Path) -> list[dict[str, str]]:
    """The rows of a history.csv, or [] when it is missing.

    Args:
        history_csv: the file.
    """
    if not Path(history_csv).exists():
        return []
    with open(history_csv, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(value: str) -> float:
    return float(value) if value not in ("", None) else math.nan


def best_epoch(rows: list[dict[str, str]]) -> int | None:
    """The epoch with the lowest validation loss (the checkpoint kept as model.keras), or None.

    Args:
        rows: history rows.
    """
    scored = [
        (_num(r["val_loss"]), int(r["epoch"])) for r in rows if not math.isnan(_num(r["val_loss"]))
    ]
    return min(scored)[1] if scored else None


def plot_history(history_csv: Path, out_png: Path | None) -> bytes | None:
    """Plot train/val loss and accuracy and the learning rate per epoch; returns PNG bytes (also
    written to ``out_png``) or None if there are no rows.

    Args:
        history_csv: the run's history.csv.
        out_png: where to write curves.png, or None.
    """
    from matplotlib.ticker import MaxNLocator

    rows = read_history(history_csv)
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]
    best = best_epoch(rows)
    with figure(1, 3, size=(13, 3.8)) as (fig, axes):
        for ax, metric in zip(axes, ("loss", "accuracy", "learning_rate"), strict=True):
            if metric == "learning_rate":
                ax.plot(
                    epochs,
                    [_num(r[metric]) for r in rows],
                    "o-",
                    color=PALETTE[2],
                    ms=3,
                    label="learning rate",
                )
                if all(_num(r[metric]) > 0 for r in rows):
                    ax.set_yscale("log")
            else:
                ax.plot(
                    epochs, [_num(r[metric]) for r in rows], "o-", ms=3, label=f"train {metric}"
                )
                ax.plot(
                    epochs,
                    [_num(r[f"val_{metric}"]) for r in rows],
                    "s-",
                    ms=3,
                    label=f"validation {metric}",
                )
            _mark_stages(ax, rows, epochs)
            if best is not None:
                ax.axvline(best, color=PALETTE[5], lw=1.2, ls=":", label=f"chosen epoch ({best})")
            ax.set_xlim(epochs[0] - 0.6, epochs[-1] + 0.6)
            ax.xaxis.set_major_locator(
                MaxNLocator(integer=True)
            )  # whole epochs (one epoch showed 0.4 … 1.6)
            ax.set_xlabel("epoch")
            ax.set_title(metric.replace("_", " "))
            ax.legend(loc="best")
        fig.tight_layout()
        return save(fig, out_png)


def _mark_stages(ax, rows: list[dict[str, str]], epochs: list[int]) -> None:
    stages = [r["stage"] for r in rows]
    for i, stage in enumerate(stages):
        if i == 0 or stage != stages[i - 1]:
            if i:
                ax.axvline(epochs[i] - 0.5, color="grey", lw=0.8, ls="--")
            ax.text(
                epochs[i] - 0.45,
                0.98,
                stage,
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=8,
                color="dimgrey",
                clip_on=True,
            )
