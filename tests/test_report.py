"""report.html and the run files behind it: contents, not existence. Every section is there, every
embedded image decodes, nothing points outside the file, the numbers are metrics.json's, the
mistakes gallery is exactly the misclassified test images, predictions.csv reproduces the accuracy,
and class
names are shown as text, never as HTML."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset
from PIL import Image

import imgclf
from imgclf.cli import main
from imgclf.reporting.report import SECTIONS

pytestmark = pytest.mark.usefixtures("private_cache")

ODD = "<i>bee & co"  # a class name that is also HTML


class _Page(HTMLParser):
    """The parts of the page the tests look at: section ids, image sources, links, data
    attributes."""

    def __init__(self):
        super().__init__()
        self.ids, self.images, self.links, self.metrics, self.mistakes, self.tags = (
            [],
            [],
            [],
            {},
            [],
            set(),
        )
        self._metric = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.ids.append(a.get("id"))
        if tag == "img":
            self.images.append(a["src"])
        if "href" in a:
            self.links.append(a["href"])
        if "data-path" in a:
            self.mistakes.append(a["data-path"])
        self._metric = a.get("data-metric")

    def handle_data(self, data):
        if self._metric and data.strip():
            self.metrics[self._metric] = data.strip()
            self._metric = None


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    data = make_dataset(
        base / "bugs", {"ant": 14, ODD: 14, "cow": 14, "doe": 14}, fmt="jpg", seed=11
    )
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=2,
        batch_size=8,
        augment="flip",
        out=str(base / "runs"),
        verbose=0,
    )
    html = (result.run_dir / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return result, html, page


def test_every_section_is_there_and_every_image_decodes(reported_run):
    result, html, page = reported_run
    assert page.ids == list(SECTIONS)
    assert (
        len(page.images) >= 7
        # counts, samples, augmentation, curves, confusion, reliability, feature maps, grad-cam,
        # thumbnails
    )
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.size[0] > 10 and im.size[1] > 10
    for name in (
        "curves.png",
        "confusion_matrix.png",
        "class_counts.png",
        "samples.png",
        "reliability.png",
        "grad_cam.png",
        "feature_maps.png",
    ):
        with Image.open(result.run_dir / name) as im:
            assert im.format == "PNG"


def test_the_grad_cam_caption_names_its_method_and_layer(reported_run):
    from imgclf.reporting.explain import CAM_METHOD, CAM_METHODS, cam_layer, split_model

    result, html, _ = reported_run
    run = imgclf.load_run(result.run_dir)
    layer = cam_layer(split_model(run.model)[0], run.image_size)
    assert layer == "block2_relu"  # cnn at 32 px: the last map (8x8) at least 4 wide, pooling aside
    assert f'<code class="cam-layer">{layer}</code>' in html
    assert (
        f'<span class="cam-method">{CAM_METHODS[CAM_METHOD].replace("&", "&amp;")}</span>' in html
    )


def test_nothing_points_outside_the_file(reported_run):
    _, html, page = reported_run
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert not re.search(r"(https?:)?//[a-z0-9]", text, re.I)
    assert (
        "<script" not in html.lower()
        and "<link" not in html.lower()
        and "@import" not in html
        and "url(" not in html
    )
    assert all(link.startswith("#") for link in page.links)


def test_class_names_are_text_not_html(reported_run):
    _, html, page = reported_run
    assert ODD not in html  # never raw
    assert "&lt;i&gt;bee &amp; co" in html
    assert "i" not in page.tags  # the name did not become an <i> element


def test_numbers_shown_are_those_of_metrics_json(reported_run):
    result, _, page = reported_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    stats = metrics["statistics"]
    assert {"accuracy", "top3_accuracy", "balanced_accuracy", "macro_f1"} <= stats.keys()
    assert stats["accuracy"]["value"] == pytest.approx(metrics["accuracy"])
    for name, s in stats.items():
        for key, suffix in (("value", ""), ("low", "_low"), ("high", "_high")):
            assert page.metrics[name + suffix] == f"{s[key]:.4f}", name + suffix
        assert s["low"] <= s["value"] <= s["high"]
    calibration = json.loads((result.run_dir / "calibration.json").read_text())
    assert page.metrics["temperature"] == f"{calibration['temperature']:.4f}"
    assert page.metrics["test_ece_before"] == f"{calibration['test_ece_before']:.4f}"


def _predictions(run_dir):
    with open(run_dir / "predictions.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_predictions_csv_reproduces_the_accuracy(reported_run):
    result, _, _ = reported_run
    rows = _predictions(result.run_dir)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert len(rows) == metrics["n"]
    classes = json.loads((result.run_dir / "classes.json").read_text())
    for r in rows:
        probs = [float(r[f"prob_{c}"]) for c in classes]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert r["predicted_label"] == classes[int(np.argmax(probs))]
    accuracy = np.mean([r["true_label"] == r["predicted_label"] for r in rows])
    assert accuracy == pytest.approx(metrics["accuracy"])


def test_the_mistakes_gallery_is_exactly_the_misclassified_test_images(reported_run):
    result, _, page = reported_run
    rows = _predictions(result.run_dir)
    wrong = {r["path"] for r in rows if r["true_label"] != r["predicted_label"]}
    assert sorted(page.mistakes) == sorted(wrong)
    assert page.metrics["mistakes"] == str(len(wrong))
    confidence = {
        r["path"]: max(float(v) for k, v in r.items() if k.startswith("prob_")) for r in rows
    }
    shown = [confidence[p] for p in page.mistakes]
    assert shown == sorted(shown, reverse=True)  # most confident first


def test_calibration_changes_probabilities_but_not_labels(reported_run):
    result, _, _ = reported_run
    from imgclf.evaluation.calibration import read_temperature
    from imgclf.evaluation.inference import apply_temperature
    from imgclf.evaluation.predictions import read_predictions

    run = imgclf.load_run(result.run_dir)
    t = read_temperature(result.run_dir)
    calibration = json.loads((result.run_dir / "calibration.json").read_text())
    assert t == (calibration["fitted_temperature"] if calibration["kept"] else 1.0)
    if not calibration[
        "kept"
    ]:  # the fitted T raised the validation ECE; what it would have done still shows
        assert calibration["val_ece_after"] >= calibration["val_ece_before"]
        t = calibration["fitted_temperature"]
        table = read_predictions(result.run_dir / "predictions.csv", run.classes)
        raw, table.probs = table.probs, apply_temperature(table.probs, t)
        assert not np.allclose(raw, table.probs, atol=1e-3)
        assert (table.probs.argmax(axis=1) == raw.argmax(axis=1)).all()
        return
    table = read_predictions(result.run_dir / "predictions.csv", run.classes)
    raw = apply_temperature(table.probs, 1.0 / t)  # undo the scaling stored in predictions.csv
    assert not np.allclose(raw, table.probs, atol=1e-3)
    assert (raw.argmax(axis=1) == table.predicted).all()


def test_report_command_rebuilds_the_report(reported_run, capsys):
    result, html, _ = reported_run
    (result.run_dir / "report.html").unlink()
    (result.run_dir / "confusion_matrix.png").unlink()
    assert main(["report", str(result.run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(result.run_dir / "report.html")
    again = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert re.sub(r"report took [0-9.]+ s", "", again).count('id="') == re.sub(
        r"report took [0-9.]+ s", "", html
    ).count('id="')
    assert (result.run_dir / "confusion_matrix.png").is_file()


def test_the_report_of_a_run_written_before_later_metrics_fields(reported_run, tmp_path, capsys):
    """A run folder from an earlier imgclf (metrics.json without statistics, absent_classes,
    honesty,
    confused_pairs) still gets its report, not a template error."""
    import shutil

    result, _, _ = reported_run
    old = tmp_path / "old_run"
    shutil.copytree(result.run_dir, old)
    metrics = json.loads((old / "metrics.json").read_text())
    for key in ("statistics", "absent_classes", "honesty", "confused_pairs"):
        metrics.pop(key, None)
    (old / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(old)]) == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    assert 'id="results"' in (old / "report.html").read_text(encoding="utf-8")


def test_timings_hold_the_command_and_the_stages(reported_run):
    result, html, _ = reported_run
    timings = json.loads((result.run_dir / "timings.json").read_text())
    assert timings["command"]
    assert {"training", "test", "report"} <= timings["stages"].keys()
    assert "Command line" in html and "split.csv SHA-256" in html


def test_a_fitted_temperature_is_kept_only_if_it_lowers_the_validation_ece():
    from imgclf.evaluation.calibration import calibrate

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    # over-confident: 70 % right, always ~0.97 sure → T > 1 helps NLL and ECE alike
    logits = rng.normal(0, 1, (400, 4))
    right = rng.random(400) < 0.7
    top = np.where(right, labels, (labels + 1) % 4)
    logits[np.arange(400), top] += 5.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cal = calibrate(probs, labels, probs, labels)
    assert cal["kept"] and cal["temperature"] == cal["fitted_temperature"] > 1.0
    assert cal["val_ece_after"] < cal["val_ece_before"]
    # right on 396 of 400 at 0.99 (calibrated), 4 mistakes at 0.999999: NLL wants T > 1 for the
    # mistakes,
    # which lowers every right answer's confidence below its 0.99 accuracy and so raises the ECE
    sure = np.full((400, 4), 0.01 / 3)
    sure[np.arange(400), labels] = 0.99
    for i in range(4):
        sure[i] = 1e-6 / 3
        sure[i, (labels[i] + 1) % 4] = 1 - 1e-6
    cal = calibrate(sure, labels, sure, labels)
    assert not cal["kept"] and cal["temperature"] == 1.0 and cal["fitted_temperature"] > 1.0
    assert cal["val_ece_after"] > cal["val_ece_before"]


def test_report_out_writes_the_report_and_figures_elsewhere_and_leaves_the_run(
    reported_run, tmp_path, capsys
):
    from helpers import tree_hashes

    result, _, _ = reported_run
    before = tree_hashes(result.run_dir)
    out = tmp_path / "elsewhere" / "report"
    assert main(["report", str(result.run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    assert tree_hashes(result.run_dir) == before  # the run folder is only read
    for name in ("report.html", "confusion_matrix.png", "curves.png", "samples.png"):
        assert (out / name).is_file(), name
    assert 'id="mistakes"' in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.subprocess
def test_report_on_a_read_only_run_says_to_pass_out_and_out_works(reported_run, tmp_path):
    """A real read-only mount of the run (a private mount namespace): the error's advice, --out, is
    a flag `report` has, and following it works."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("needs `unshare -rm` (a private mount namespace) for a read-only mount")
    result, _, _ = reported_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run)
    (run / "report.html").unlink()
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def report(*extra):
        argv = [sys.executable, "-m", "imgclf", "report", str(run), *extra]
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, "sh", str(run), *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    done = report()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"imgclf: error: cannot write '{run}/")
    assert lines[0].endswith("': the file system is read-only; pass --out to a writable folder")
    done = report("--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "report.html").is_file()
