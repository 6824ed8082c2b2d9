"""imgclf.reporting.curves: the loss/accuracy figure drawn from history.csv."""

from __future__ import annotations

import pytest
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
    png = plot_history(history, tmp_path / "curves.png")
    assert png == (tmp_path / "curves.png").read_bytes()
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100


def test_plot_history_without_rows_writes_nothing(tmp_path):
    assert plot_history(tmp_path / "missing.csv", tmp_path / "a.png") is None
    header_only = tmp_path / "history.csv"
    header_only.write_text(",".join(HISTORY_COLUMNS) + "\n")
    assert plot_history(header_only, tmp_path / "b.png") is None
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()


def test_augmentation_preview_shows_each_image_and_its_views(tmp_path):
    import keras
    from helpers import make_dataset

    from imgclf.data.augment import augmentation_layers
    from imgclf.reporting.augmentation import plot_augmentation_preview

    data = make_dataset(tmp_path / "d", {"a": 1, "b": 1}, seed=3)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")  # skipped, not fatal
    layer = keras.Sequential(augmentation_layers("flip,rotate=20", seed=1))
    out = plot_augmentation_preview(
        [*paths, str(tmp_path / "broken.jpg")],
        ["a", "b", "broken"],
        32,
        layer,
        tmp_path / "aug.png",
        views=3,
    )
    assert out == tmp_path / "aug.png"
    with Image.open(out) as im:  # 2 rows (the broken file left out) x 4 columns
        assert (
            im.format == "PNG" and abs(im.size[0] / im.size[1] - 2) < 0.03
        )  # tight bounding box: a pixel either way


def test_augmentation_preview_of_nothing_decodable_writes_nothing(tmp_path):
    from imgclf.reporting.augmentation import plot_augmentation_preview

    assert (
        plot_augmentation_preview(
            [str(tmp_path / "missing.jpg")], ["x"], 32, None, tmp_path / "a.png"
        )
        is None
    )
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/imgclf", "train", "my photos"], "imgclf train 'my photos'"),
        (["/src/imgclf/__main__.py", "train", "x"], "imgclf train x"),
        (
            ["/venv/lib/site-packages/pytest/__main__.py", "-q", "tests"],
            "python -m pytest -q tests",
        ),
        (["script.py", "--n", "3"], "python script.py --n 3"),
    ],
)
def test_the_command_line_is_shown_as_typed(monkeypatch, argv, expected):
    from imgclf.reporting.report import command_line

    monkeypatch.setattr("sys.argv", argv)
    assert command_line() == expected


LONG_NAME = "a_very_long_class_name_that_would_never_fit_under_one_picture"


def test_grad_cam_captions_wrap_full_class_names():
    from imgclf.reporting.inside import CAPTION_WIDTH, cam_caption

    caption = cam_caption(False, LONG_NAME, "short", 0.91)
    lines = caption.splitlines()
    assert len(lines) > 2 and all(len(line) <= CAPTION_WIDTH for line in lines)
    assert LONG_NAME in caption.replace("\n", "").replace(" ", "")  # the whole name, not cut
    assert lines[0].startswith("✗ true") and caption.endswith("short 0.91")


def test_grad_cam_captions_do_not_overlap(monkeypatch):
    import numpy as np

    from imgclf.reporting import inside

    boxes = []

    def measure(fig, path=None):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes.extend(ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title())
        return b""

    monkeypatch.setattr(inside, "save", measure)
    captions = [inside.cam_caption(i % 2 == 0, LONG_NAME, LONG_NAME[::-1], 0.5) for i in range(4)]
    images = np.full((4, 32, 32, 3), 128.0)
    inside.plot_grad_cam(images, np.zeros((4, 32, 32)), captions)
    assert len(boxes) == 4
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert left.x1 <= right.x0, "captions of neighbouring images overlap"
