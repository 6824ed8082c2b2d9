"""What the network sees: a grid of training images, each with a few random views from the run's own
augmentation layers (an ``ImageDataGenerator``-style preview, from the layers that really
train)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgclf.data.decode import load_image
from imgclf.reporting.style import figure, save

__all__ = ["plot_augmentation_preview", "PREVIEW_IMAGES", "PREVIEW_VIEWS"]

PREVIEW_IMAGES = 4  # rows: training images, spread over the classes
PREVIEW_VIEWS = 5  # columns after the original: augmented views
CAPTION_PT = 11  # the report shows the figure at about its own size: captions as large as body text


def plot_augmentation_preview(
    paths: Sequence[str],
    captions: Sequence[str],
    image_size: int,
    augmentation,
    out_png: Path,
    views: int = PREVIEW_VIEWS,
) -> Path | None:
    """Row per image: the decoded original, then ``views`` outputs of ``augmentation(x,
    training=True)``. Images that cannot be decoded are left out; returns the file, or None if
    nothing could be shown.

    Args:
        paths: the training images to show, one a row.
        captions: a row label per image (e.g. its class), written left of the row; the first ": "
            starts a second line.
        image_size: side of the decoded images in pixels.
        augmentation: the augmentation model, called as ``augmentation(x, training=True)``.
        out_png: the figure file to write. views: augmented views per image. Defaults to
        ``PREVIEW_VIEWS``.
    """
    rows, labels = [], []
    for path, caption in zip(paths, captions, strict=False):
        try:
            rows.append(load_image(path, image_size))
        # noqa: BLE001  (a bad file is reported by training; the preview just skips it)
        except Exception:
            continue
        labels.append(caption)
    if not rows:
        return None
    batch = np.stack(rows).astype("float32")
    columns = [batch] + [np.asarray(augmentation(batch, training=True)) for _ in range(views)]
    with figure(len(rows), views + 1, size=(1.6 * (views + 1), 1.6 * len(rows)), squeeze=False) as (
        fig,
        axes,
    ):
        _draw(axes, rows, columns, labels)
        fig.tight_layout()
        save(fig, out_png)
    return out_png


def _wrap(caption: str, width: int = 16) -> str:
    """``class: file`` as lines of at most ``width`` characters, the class first."""
    return "\n".join(
        line for part in caption.split(": ", 1) for line in textwrap.wrap(part, width) or [""]
    )


def _draw(axes, rows, columns, labels) -> None:
    for r in range(len(rows)):
        for c, images in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(np.clip(images[r], 0, 255).astype("uint8"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title("original" if c == 0 else f"view {c}", fontsize=CAPTION_PT)
        # horizontal, left of the row, one line per part ("class: file" -> class above file)
        axes[r][0].set_ylabel(
            _wrap(labels[r]), fontsize=CAPTION_PT, rotation=0, ha="right", va="center", labelpad=6
        )
