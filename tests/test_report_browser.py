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

pytestmark = [pytest.mark.usefixtures("private_cache"), pytest.mark.browser]


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


LONG_NAMES = [
    "Eurasian_collared_dove_juvenile_photographed_in_poor_light_near_the_feeder",
    "Streptopelia-decaocto-adult-male-on-a-wire-with-a-very-long-and-unbroken-name",
]


def _gallery_page(tmp_path) -> Path:
    """A report with only the mistakes gallery, whose class names are too long for a card."""
    from imgclf.reporting.report import render
    from imgclf.reporting.style import array_data_uri

    thumb = array_data_uri(np.full((32, 32, 3), 90, np.uint8))
    gallery = [
        {
            "path": f"/data/{i}.jpg",
            "name": f"{i}.jpg",
            "true": LONG_NAMES[i % 2],
            "predicted": LONG_NAMES[(i + 1) % 2],
            "confidence": 0.9,
            "thumb": thumb,
        }
        for i in range(6)
    ]
    html = render(
        {
            "title": "gallery",
            "subtitle": "",
            "sections": ("mistakes",),
            "classes": LONG_NAMES,
            "model_name": "cnn",
            "image_size": 32,
            "mistakes": {"gallery": gallery, "total": 6, "n": 10, "cap": 120},
            "report_seconds": {},
        }
    )
    out = tmp_path / "report.html"
    out.write_text(html, encoding="utf-8")
    return out


@pytest.mark.browser
def test_long_class_names_wrap_inside_their_gallery_card(page, tmp_path):
    page.goto(_gallery_page(tmp_path).as_uri())
    assert page.errors == []
    overflowing = page.evaluate(
        """Array.from(document.querySelectorAll('.mistake')).filter(card => {
             const box = card.getBoundingClientRect();
             return card.scrollWidth > card.clientWidth + 1 ||
               Array.from(card.querySelectorAll('strong')).some(s => {
                 const r = s.getBoundingClientRect();
                 return r.right > box.right + 1 || r.left < box.left - 1;
               });
           }).length"""
    )
    assert overflowing == 0
    assert page.locator(".mistake strong", has_text=LONG_NAMES[0]).count() == 6  # in full
