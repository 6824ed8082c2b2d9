"""Class names in any script render in the report's figures: the style's font fallback covers
Chinese, Japanese, Arabic, Hebrew, Devanagari and emoji (Debian's Noto and Symbola fonts, which the
Makefile installs), and no figure warns "Glyph … missing"."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imgclf.reporting import figures
from imgclf.reporting.fonts import FONT_FILES, fit_fonts, font_families, installed_families
from imgclf.reporting.style import figure

NAMES = {
    "Chinese": "金毛寻回犬",
    "Japanese": "ねこ・カタカナ",
    "Arabic": "كلب",
    "Hebrew": "חתול",
    "Devanagari": "बिल्ली",
    "emoji": "🐱🦊🤖",
}


def _render(text: str, families: list[str] | None = None) -> np.ndarray:
    """The ink of ``text`` drawn in the figures' style (grey levels, cropped to what was drawn)."""
    with figure(size=(1.2, 1.2)) as (fig, ax):
        ax.axis("off")
        font = {"family": families} if families else {}
        ax.text(0.5, 0.5, text, fontsize=40, ha="center", va="center", fontdict=font)
        if families is None:
            fit_fonts(fig)  # what style.save does before writing a figure
        fig.canvas.draw()
        grey = np.asarray(fig.canvas.buffer_rgba())[..., :3].min(axis=2)
    ys, xs = np.nonzero(grey < 250)
    return grey[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] if len(ys) else grey[:0, :0]


def test_the_fallback_fonts_are_installed():
    missing = [family for family in FONT_FILES if family not in installed_families()]
    assert not missing, f"install Debian's fonts-noto-core fonts-noto-cjk fonts-symbola: {missing}"


# what matplotlib draws for a character no font has: Last Resort's box naming its Unicode block
MISSING = ["Last Resort High-Efficiency"]


def _missing(char: str) -> np.ndarray:
    return _render(char, MISSING)


def _looks_like(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two inks are the same picture, up to sub-pixel placement: compared at 12 x 12
    (the same box drawn twice differs by ~10 grey levels on average; a glyph and the box by 50+)."""
    from PIL import Image

    def small(x: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(x).resize((12, 12), Image.BILINEAR)).astype(float)

    return float(np.abs(small(a) - small(b)).mean()) < 30


@pytest.mark.parametrize("script", sorted(NAMES))
def test_each_character_renders_as_a_glyph_not_the_missing_box(script):
    for char in NAMES[script]:
        drawn = _render(char)
        assert drawn.size, f"{char!r} drew nothing"
        assert not _looks_like(drawn, _missing(char)), f"{char!r} ({script}): the missing box"


def test_the_missing_box_check_can_fail():
    """With matplotlib's own DejaVu Sans alone, a CJK character is drawn as the missing box (so the
    check above can fail)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        only_dejavu = _render("猫", ["DejaVu Sans"])
    assert _looks_like(only_dejavu, _missing("猫"))


def test_figures_with_names_in_any_script_warn_nothing(tmp_path):
    classes = list(NAMES.values())
    matrix = np.eye(len(classes), dtype=int).tolist()
    counts = {"train": dict.fromkeys(classes, 3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "Glyph … missing" warning fails the test
        figures.plot_confusion_matrix(matrix, classes, tmp_path / "cm.png")
        figures.plot_class_counts(counts, classes, tmp_path / "counts.png")
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_a_figure_lists_only_the_fonts_its_text_needs():
    assert font_families("cat, dog, كلب, חתול") == ["DejaVu Sans"]  # DejaVu draws them all
    assert font_families("猫 ねこ") == ["DejaVu Sans", "Noto Sans CJK JP"]
    assert font_families("🦊🤖") == ["DejaVu Sans", "Symbola"]
    assert font_families("बिल्ली") == ["DejaVu Sans", "Noto Sans Devanagari"]
