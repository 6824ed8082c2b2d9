"""imgclf.reporting.curves: the loss/accuracy figure drawn from history.csv."""

from __future__ import annotations

from PIL import Image

from imgclf.reporting.curves import plot_history
from imgclf.training.callbacks import HISTORY_COLUMNS


def test_plot_history_writes_a_png(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text(
        ",".join(HISTORY_COLUMNS) + "\n"
        "head,1,0.9,0.5,0.8,0.6,0.001,1.0\n"
        "head,2,0.7,0.6,0.7,0.7,0.001,1.0\n"
        "fine_tune,3,0.5,0.8,,,0.0003,2.0\n"  # empty cells (no validation) are allowed
    )
    out = plot_history(history, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100


def test_plot_history_without_rows_writes_nothing(tmp_path):
    assert plot_history(tmp_path / "missing.csv", tmp_path / "a.png") is None
    header_only = tmp_path / "history.csv"
    header_only.write_text(",".join(HISTORY_COLUMNS) + "\n")
    assert plot_history(header_only, tmp_path / "b.png") is None
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()
