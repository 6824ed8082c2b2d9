"""The one look of every imgclf figure: sizes, fonts and a colour-blind-safe palette (Okabe–Ito),
and the helpers that turn a figure into a PNG file or an embeddable data URI."""

from __future__ import annotations

import base64
import io
import warnings
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "PALETTE",
    "SEQUENTIAL",
    "DIVERGING",
    "FONT_FILES",
    "figure",
    "font_families",
    "save",
    "png_data_uri",
    "array_data_uri",
]

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
SEQUENTIAL = "viridis"  # perceptually uniform, colour-blind-safe, prints in grey
DIVERGING = "cividis"
DPI = 110

# Fonts tried in order for each character (matplotlib's font fallback), so that class names in any
# script render: DejaVu Sans (matplotlib's own: Latin, Greek, Cyrillic, Arabic, Hebrew), then Noto
# for CJK and other scripts and Symbola for emoji — Debian's fonts-noto-core, fonts-noto-cjk and
# fonts-symbola (the Makefile installs them). Those not installed are left out; a character none
# has is drawn as a box, without matplotlib's "Glyph … missing" warning.
FONT_FILES = {
    "DejaVu Sans": "DejaVuSans.ttf",
    "Noto Sans CJK JP": "NotoSansCJK-Regular.ttc",
    "Noto Sans Arabic": "NotoSansArabic-Regular.ttf",
    "Noto Sans Hebrew": "NotoSansHebrew-Regular.ttf",
    "Noto Sans Devanagari": "NotoSansDevanagari-Regular.ttf",
    "Noto Sans Bengali": "NotoSansBengali-Regular.ttf",
    "Noto Sans Tamil": "NotoSansTamil-Regular.ttf",
    "Noto Sans Thai": "NotoSansThai-Regular.ttf",
    "Noto Sans Georgian": "NotoSansGeorgian-Regular.ttf",
    "Noto Sans Armenian": "NotoSansArmenian-Regular.ttf",
    "Noto Sans Ethiopic": "NotoSansEthiopic-Regular.ttf",
    "Noto Sans Khmer": "NotoSansKhmer-Regular.ttf",
    "Noto Sans Symbols": "NotoSansSymbols-Regular.ttf",
    "Noto Sans Symbols2": "NotoSansSymbols2-Regular.ttf",
    "Symbola": "Symbola_hint.ttf",
}
_families: list[str] = []

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


def font_families() -> list[str]:
    """The families of :data:`FONT_FILES` that are installed, in order. Fonts installed after
    matplotlib built its font cache are found by file name and added (once per process)."""
    if _families:
        return _families
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    wanted = {name: family for family, name in FONT_FILES.items() if family not in known}
    if wanted:
        for path in font_manager.findSystemFonts():
            if Path(path).name in wanted:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable font: do without
                    continue
        known = {f.name for f in font_manager.fontManager.ttflist}
    _families.extend(family for family in FONT_FILES if family in known)
    return _families


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

    style = {**_RC, "axes.prop_cycle": cycler(color=PALETTE), "font.family": font_families()}
    with plt.rc_context(style), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
        fig, axes = plt.subplots(nrows, ncols, figsize=size, **kwargs)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def save(fig, path: Path | None = None) -> bytes:
    """The figure as PNG bytes, also written to ``path`` when given.

    Args:
        fig: a matplotlib figure.
        path: where to write the PNG, or None.
    """
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
