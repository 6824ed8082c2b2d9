"""report.html in a real browser (Debian's chromium through the ``page`` fixture): at 10 and at 50
classes the page renders with no console error, every image loads, and the screenshot is not blank.
Set IMGCLF_SCREENSHOTS=DIR to keep the full-page screenshots for a person to look at."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset
from PIL import Image

import imgclf

pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.mark.parametrize("num_classes", [10, 50])
def test_report_renders_in_chromium(page, tmp_path, num_classes):
    per_class = 10 if num_classes <= 10 else 5
    data = make_dataset(
        tmp_path / f"c{num_classes}",
        {f"class_{i:02d}": per_class for i in range(num_classes)},
        seed=num_classes,
    )
    elsewhere = (
        None  # at 10 classes, a --test-dir too: the honesty check's table and line are on the page
    )
    if num_classes <= 10:
        elsewhere = make_dataset(
            tmp_path / "elsewhere", {f"class_{i:02d}": 3 for i in range(num_classes)}, seed=99
        )
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=1,
        batch_size=16,
        augment="flip",
        out=str(tmp_path / "runs"),
        verbose=0,
        test_dir=elsewhere and str(elsewhere),
    )
    page.goto((result.run_dir / "report.html").as_uri())
    assert page.errors == []
    assert page.inner_text("h1") == result.run_dir.name
    for section in (
        "Data",
        "Training",
        "Results",
        "Mistakes",
        "Calibration",
        "Inside the network",
        "Reproducibility",
    ):
        assert page.locator("h2", has_text=section).count() == 1, section
    if elsewhere is not None:
        assert page.locator("h3", has_text="Honesty check").count() == 1
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
    )
    assert broken == 0
    png = page.screenshot(full_page=True)
    with Image.open(io.BytesIO(png)) as im:
        pixels = np.asarray(im.convert("L"), np.float32)
    assert pixels.shape[0] > 2000  # a long page, not an empty one
    assert pixels.std() > 20 and (pixels < 128).mean() > 0.02  # text and figures, not a blank page
    keep = os.environ.get("IMGCLF_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        Path(keep, f"report_{num_classes}_classes.png").write_bytes(png)
