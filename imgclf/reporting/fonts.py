"""Fonts for class names in any script: each figure's text is drawn in DejaVu Sans (matplotlib's
own: Latin, Greek, Cyrillic, Arabic, Hebrew, Armenian, Georgian) and, through matplotlib's font
fallback, in the installed fonts of :data:`FONT_FILES` that its characters need — Noto for CJK and
other scripts, Symbola for emoji (Debian's fonts-noto-core, fonts-noto-cjk and fonts-symbola; the
Makefile installs them). Only the fonts a figure needs are listed for it: each listed font costs
time on every text drawn. A character no installed font has is drawn as a box, without
matplotlib's "Glyph … missing" warning (:func:`imgclf.reporting.style.figure` silences it)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FONT_FILES", "fit_fonts", "font_families", "installed_families"]

BASE = "DejaVu Sans"
FONT_FILES = {
    BASE: "DejaVuSans.ttf",
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
_installed: list[str] = []
_coverage: dict[str, frozenset[int]] = {}


def installed_families() -> list[str]:
    """The families of :data:`FONT_FILES` that are installed, in order. Fonts installed after
    matplotlib built its font cache are found by file name and added (once per process)."""
    if _installed:
        return _installed
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
    _installed.extend(family for family in FONT_FILES if family in known)
    return _installed


def _characters(family: str) -> frozenset[int]:
    """The code points ``family``'s regular face draws."""
    if family not in _coverage:
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        props = font_manager.FontProperties(family=family)
        path = font_manager.findfont(props, fallback_to_default=False)
        _coverage[family] = frozenset(FT2Font(path).get_charmap())
    return _coverage[family]


def font_families(text: str = "") -> list[str]:
    """DejaVu Sans, then for the characters of ``text`` it lacks, the first installed family of
    :data:`FONT_FILES` that has each.

    Args:
        text: every character the figure draws.
    """
    needed = {ord(c) for c in text if not c.isspace()} - _characters(BASE)
    families = [BASE]
    for family in installed_families()[1:]:
        if not needed:
            break
        found = needed & _characters(family)
        if found:
            families.append(family)
            needed -= found
    return families


def fit_fonts(fig) -> None:
    """Give every text of ``fig`` the font families its characters need (see
    :func:`font_families`); nothing changes for text DejaVu Sans draws alone.

    Args:
        fig: a matplotlib figure, before it is saved.
    """
    from matplotlib.text import Text

    texts = fig.findobj(Text)
    families = font_families("".join(t.get_text() for t in texts))
    if len(families) > 1:
        for t in texts:
            t.set_fontfamily(families)
