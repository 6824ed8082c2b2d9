"""The one look of every imgclf figure: sizes, fonts and a colour-blind-safe palette (Okabe–Ito),
and the helpers that turn a figure into a PNG file or an embeddable data URI."""

from __future__ import annotations

import base64
import io
import warnings
from contextlib import contextmanager
from pathlib import Path

from imgclf.reporting.fonts import fit_fonts

__all__ = [
    "PALETTE",
    "SEQUENTIAL",
    "DIVERGING",
    "figure",
    "save",
    "png_data_uri",
    "array_data_uri",
]

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
SEQUENTIAL = "viridis"  # perceptually uniform, colour-blind-safe, prints in grey
DIVERGING = "cividis"
DPI = 110

_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (8, 4), **kwargs):
    """``(fig, axes)`` in the imgclf style; the figure is closed on exit.

    Args:
        nrows: rows of axes.
        ncols: columns of axes.
        size: figure size in inches.
        **kwargs: passed to ``plt.subplots``.
    """
    plt = _pyplot()
    from cycler import cycler

    with (
        plt.rc_context({**_RC, "axes.prop_cycle": cycler(color=PALETTE)}),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        fig, axes = plt.subplots(nrows, ncols, figsize=size, **kwargs)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def save(fig, path: Path | None = None) -> bytes:
    """The figure as PNG bytes, also written to ``path`` when given; its text is drawn in the fonts
    its characters need (:func:`imgclf.reporting.fonts.fit_fonts`).

    Args:
        fig: a matplotlib figure.
        path: where to write the PNG, or None.
    """
    fit_fonts(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` for an ``<img src>``.

    Args:
        png: PNG bytes.
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def array_data_uri(pixels) -> str:
    """A data URI of an ``(h, w, 3)`` uint8 image (thumbnails in galleries).

    Args:
        pixels: RGB pixels in [0, 255].
    """
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(pixels), 0, 255).astype("uint8")).save(buf, format="PNG")
    return png_data_uri(buf.getvalue())
