"""The report's figures, each a function of plain data returning PNG bytes (and writing the file
when
given a path). All of them use :mod:`imgclf.reporting.style`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgclf.reporting.style import PALETTE, SEQUENTIAL, figure, save

__all__ = ["plot_class_counts", "plot_sample_grid", "plot_confusion_matrix", "plot_reliability"]


def _label_size(n: int) -> float:
    """Tick label size that keeps ``n`` class names legible (50+ classes get small but readable
    text)."""
    return 9 if n <= 15 else 8 if n <= 40 else 7


def plot_class_counts(
    counts: dict[str, dict[str, int]], classes: list[str], out_png: Path | None = None
) -> bytes:
    """Images per class and split, stacked horizontal bars (class names stay readable at 50+
    classes).

    Args:
        counts: split → class → number of images.
        classes: class names in label order.
        out_png: where to write the PNG, or None.
    """
    height = max(2.5, 0.28 * len(classes) + 1.2)
    with figure(size=(8, height)) as (fig, ax):
        left = np.zeros(len(classes))
        y = np.arange(len(classes))
        for colour, split in zip(PALETTE, counts, strict=False):
            values = np.array([counts[split].get(c, 0) for c in classes], float)
            ax.barh(y, values, left=left, color=colour, label=split, height=0.8)
            left += values
        ax.set_yticks(y, classes, fontsize=_label_size(len(classes)))
        ax.invert_yaxis()
        ax.set_xlabel("images")
        ax.grid(axis="y", visible=False)
        # above the bars, not over them (at 10 classes "lower right" hid the test bars)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(counts), frameon=False)
        ax.set_title("images per class and split", pad=22)
        return save(fig, out_png)


def plot_sample_grid(samples: dict[str, list[np.ndarray]], out_png: Path | None = None) -> bytes:
    """A row per class with a few of its images (up to 50 classes, then one image per class in a
    grid).

    Args:
        samples: class name → list of ``(h, w, 3)`` uint8 images.
        out_png: where to write the PNG, or None.
    """
    names = list(samples)
    per_row = max((len(v) for v in samples.values()), default=1) or 1
    if len(names) > 12:  # many classes: one image each, in a square-ish grid
        cols = int(np.ceil(np.sqrt(len(names) * 1.5)))
        cells = [(n, samples[n][0] if samples[n] else None) for n in names]
        rows = int(np.ceil(len(cells) / cols))
    else:
        cols, rows = per_row, len(names)
        cells = [
            (n, samples[n][i] if i < len(samples[n]) else None)
            for n in names
            for i in range(per_row)
        ]
    with figure(rows, cols, size=(1.4 * cols, 1.5 * rows), squeeze=False) as (fig, axes):
        for ax in axes.flat:
            ax.axis("off")
        for ax, (name, image) in zip(axes.flat, cells, strict=False):
            if image is not None:
                ax.imshow(image)
            ax.set_title(name[:18], fontsize=8)
        fig.tight_layout()
        return save(fig, out_png)


def plot_confusion_matrix(
    confusion: list[list[int]], classes: list[str], out_png: Path | None = None
) -> bytes:
    """Counts and row-normalised (recall per true class): side by side with numbers in the cells up
    to 15 classes; beyond, one above the other, colour alone, tick labels sized to stay legible at
    50+.

    Args:
        confusion: rows true, columns predicted.
        classes: class names in label order.
        out_png: where to write the PNG, or None.
    """
    from matplotlib.ticker import MaxNLocator

    cm = np.asarray(confusion, float)
    n = len(classes)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = min(14.0, max(4.5, 0.22 * n + 2.5))
    stacked = n > 15  # one above the other, each as wide as the page: cells and names stay legible
    layout = (2, 1, (side + 1, 2 * side)) if stacked else (1, 2, (2 * side + 1, side))
    with figure(layout[0], layout[1], size=layout[2]) as (fig, axes):
        for ax, values, title, fmt in (
            (axes[0], cm, "counts", "{:.0f}"),
            (axes[1], norm, "row-normalised (recall)", "{:.2f}"),
        ):
            im = ax.imshow(
                values,
                cmap=SEQUENTIAL,
                vmin=0,
                vmax=max(values.max(), 1e-9),
                interpolation="nearest",
            )
            ax.grid(False)
            ax.set_xticks(range(n), classes, rotation=90, fontsize=_label_size(n))
            ax.set_yticks(range(n), classes, fontsize=_label_size(n))
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(title)
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            if title == "counts":  # whole images (a maximum of 2 showed ticks 0.25, 0.5, …)
                bar.locator = MaxNLocator(integer=True)
                bar.update_ticks()
            if n <= 15:
                for i in range(n):
                    for j in range(n):
                        if values[i, j]:
                            light = values[i, j] < 0.6 * values.max()
                            ax.text(
                                j,
                                i,
                                fmt.format(values[i, j]),
                                ha="center",
                                va="center",
                                fontsize=8,
                                color="white" if light else "black",
                            )
        fig.tight_layout()
        return save(fig, out_png)


def plot_reliability(
    before: list[dict], after: list[dict], ece: tuple[float, float], out_png: Path | None = None
) -> bytes:
    """Reliability diagrams before and after temperature scaling: accuracy per confidence bin
    against the diagonal of perfect calibration, with each bin's share of images.

    Args:
        before: bins from :func:`imgclf.evaluation.calibration.reliability_bins`, uncalibrated.
        after: the same with the fitted temperature. ece: expected calibration error (before,
        after). out_png: where to write the PNG, or None.
    """
    with figure(1, 2, size=(10, 4.2)) as (fig, axes):
        for ax, bins, title, e in (
            (axes[0], before, "before", ece[0]),
            (axes[1], after, "after temperature scaling", ece[1]),
        ):
            total = max(1, sum(b["n"] for b in bins))
            mids = [(b["low"] + b["high"]) / 2 for b in bins]
            width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
            ax.bar(
                mids,
                [b["accuracy"] if b["n"] else 0 for b in bins],
                width=width * 0.95,
                color=PALETTE[0],
                label="accuracy",
            )
            ax.plot(
                mids,
                [b["n"] / total for b in bins],
                "o-",
                ms=3,
                lw=1,
                color=PALETTE[1],
                label="share of images",
            )
            ax.plot([0, 1], [0, 1], ls="--", color="dimgrey", lw=1, label="perfect calibration")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{title} (ECE {e:.3f})")
        # one legend under both panels: inside, it hid the share-of-images line where confidences
        # are low
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        return save(fig, out_png)
