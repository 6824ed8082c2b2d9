"""End to end on real photographs: a subset of the shared sign-language-digits dataset.

Marked ``slow`` (about a minute on 2 CPU cores); deselect with ``-m "not slow"``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import imgclf
from imgclf.cli import main
from imgclf.runs import RunFiles, read_json

DATASET = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "sign-language-digits"
)
CLASSES = ["0", "1", "2", "3"]
PER_CLASS = 40

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    if not DATASET.is_dir():
        pytest.skip("shared dataset not present")
    root = tmp_path_factory.mktemp("real") / "digits"
    for name in CLASSES:
        files = sorted((DATASET / name).glob("*.JPG"))[:PER_CLASS]
        assert len(files) == PER_CLASS, f"class {name} has only {len(files)} images"
        (root / name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / name / f.name)
    return root


def test_pretrained_model_learns_real_photos(digits, tmp_path, capsys):
    result = imgclf.train(
        digits,
        model="efficientnet_lite0",
        image_size=96,
        head_epochs=15,
        epochs=1,
        batch_size=16,
        out=str(tmp_path / "runs"),
        verbose=0,
    )
    metrics = read_json(result.run_dir / RunFiles.METRICS)
    assert metrics["split"] == "test"
    assert metrics["n"] == 16  # 10 % of 40, per class
    assert metrics["accuracy"] >= 0.75, metrics  # chance is 0.25; about 1.0 is typical
    assert read_json(result.run_dir / RunFiles.DATA_REPORT)["skipped"] == []

    capsys.readouterr()
    assert main(["evaluate", str(result.run_dir), "--format", "json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    assert reported["accuracy"] == pytest.approx(metrics["accuracy"])
    assert reported["confusion_matrix"] == metrics["confusion_matrix"]
