"""imgclf.data.doctor and `imgclf doctor`: every kind of bad file, duplicates, balance, sizes; train
on it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    make_dataset,
    make_textured_dataset,
    plant_copy,
    tree_hashes,
    write_every_bad_kind,
)
from PIL import Image

import imgclf
from imgclf.cli import main
from imgclf.data.balance import class_weights
from imgclf.data.doctor import diagnose
from imgclf.data.scan import scan_folder
from imgclf.errors import ConfigError
from imgclf.runs import RunFiles, read_json


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """cat 30, dog 30, rare 3 (heavy imbalance, tiny class); every bad kind in cat/; planted
    duplicates."""
    root = make_textured_dataset(
        tmp_path_factory.mktemp("messy") / "messy", {"cat": 30, "dog": 30, "rare": 3}, seed=11
    )
    write_every_bad_kind(root / "cat")
    plant_copy(
        root / "cat" / "cat_000.jpg", root / "dog" / "dog_same_as_cat.jpg"
    )  # exact, across classes
    plant_copy(
        root / "cat" / "cat_001.jpg", root / "cat" / "cat_001_bigger.jpg", "near"
    )  # near, within class
    plant_copy(
        root / "dog" / "dog_005.jpg", root / "dog" / "dog_005_copy.jpg"
    )  # exact, within class
    return root


@pytest.fixture(scope="module")
def messy_report(messy):
    return diagnose(scan_folder(messy)).to_dict()


def by_path(rows, key="reason"):
    return {Path(r["path"]).name: r[key] for r in rows}


def test_every_kind_of_unusable_file_is_reported_with_its_reason(messy_report):
    reasons = by_path(messy_report["unusable"])
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"] == "not an image (unrecognised content)"
    assert (
        reasons["truncated.jpg"].startswith("cannot decode: ")
        and "truncated" in reasons["truncated.jpg"]
    )
    assert reasons["notes.txt"] == "not an image file extension (.txt)"
    assert reasons["icon.png"] == "unsupported image format ICO"
    assert reasons["sliver.png"] == "too small: 4x30 pixels (minimum side 8)"
    assert (
        reasons["bomb.png"].startswith("decompression bomb: ")
        and "900000000 pixels" in reasons["bomb.png"]
    )
    assert len(reasons) == 7
    assert "really_a_jpeg.png" not in reasons  # a lying extension is still usable


def test_a_lying_extension_is_a_warning_and_the_file_is_used(messy_report):
    assert by_path(messy_report["warnings"], "warning") == {
        "really_a_jpeg.png": "extension .png but content is JPEG (still used; consider renaming)"
    }
    assert (
        messy_report["usable"] == 30 + 1 + 1 + 30 + 2 + 3
    )  # + lying extension, near copy, 2 copies in dog


def test_duplicates_within_and_across_classes(messy_report):
    dup = messy_report["duplicates"]
    clusters = {tuple(c["paths"]): c for c in dup["clusters"]}
    assert set(clusters) == {
        ("cat/cat_000.jpg", "dog/dog_same_as_cat.jpg"),
        ("cat/cat_001.jpg", "cat/cat_001_bigger.jpg"),
        ("dog/dog_005.jpg", "dog/dog_005_copy.jpg"),
    }
    conflict = clusters[("cat/cat_000.jpg", "dog/dog_same_as_cat.jpg")]
    assert (conflict["kind"], conflict["across_classes"], conflict["classes"]) == (
        "exact",
        True,
        ["cat", "dog"],
    )
    assert clusters[("cat/cat_001.jpg", "cat/cat_001_bigger.jpg")]["kind"] == "near"
    assert clusters[("dog/dog_005.jpg", "dog/dog_005_copy.jpg")]["across_classes"] is False
    assert (dup["exact_clusters"], dup["near_clusters"], dup["across_classes"]) == (2, 1, 1)
    assert dup["across_splits"] == 0  # no splits known yet


def test_class_balance_warns_and_suggests_weights(messy_report):
    bal = messy_report["balance"]
    assert bal["counts"] == {"cat": 32, "dog": 32, "rare": 3}
    assert any(
        w.startswith("heavy class imbalance: 'cat' has 32 images, 'rare' 3")
        for w in bal["warnings"]
    )
    assert (
        "tiny class: 'rare' has 3 usable image(s); its test metrics will be noisy"
        in bal["warnings"]
    )
    w = bal["suggested_class_weights"]
    assert w["rare"] > 5 * w["cat"] and w["cat"] == w["dog"]
    assert np.mean(list(w.values())) == pytest.approx(1.0, abs=1e-3)


def test_class_weights_are_inverse_frequency_with_mean_one():
    w = class_weights([0] * 30 + [1] * 10 + [2] * 5, 3)
    assert w[1] / w[0] == pytest.approx(3.0, rel=1e-3) and w[2] / w[0] == pytest.approx(
        6.0, rel=1e-3
    )
    assert sum(w.values()) / 3 == pytest.approx(1.0, abs=1e-3)


def test_sizes_and_modes_warn_when_they_vary_wildly(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    Image.new("L", (400, 100), 128).save(root / "a" / "wide_grey.png")
    sizes = diagnose(scan_folder(root)).to_dict()["sizes"]
    assert sizes["width"]["max"] == 400 and sizes["modes"] == {"RGB": 6, "L": 1}
    text = " | ".join(sizes["warnings"])
    assert "image sizes vary wildly: shorter side from 40 to 100 px" not in text  # 2.5x is not wild
    assert "aspect ratios vary wildly: from 1.20 to 4.00" in text
    assert "colour modes are mixed: 1 grayscale and 6 colour image(s)" in text


def test_a_clean_folder_has_no_findings(tmp_path):
    report = diagnose(scan_folder(make_textured_dataset(tmp_path / "d", {"a": 12, "b": 12})))
    assert report.summary() == []
    assert report.to_dict()["duplicates"]["clusters"] == []


def test_presplit_duplicate_across_splits_is_leakage(presplit):
    plant_copy(presplit / "train" / "cat" / "cat_000.png", presplit / "test" / "cat" / "leaked.png")
    report = diagnose(scan_folder(presplit))
    (cluster,) = report.to_dict()["duplicates"]["clusters"]
    assert cluster["across_splits"] is True and cluster["splits"] == ["test", "train"]
    assert any("across splits: LEAKAGE" in line for line in report.summary())


def test_doctor_reads_nothing_but_changes_nothing(messy):
    before = tree_hashes(messy)
    diagnose(scan_folder(messy))
    assert tree_hashes(messy) == before


# ---------------------------------------------------------------------------- CLI


def test_cli_doctor_prints_the_report_and_writes_json(messy, tmp_path, capsys):
    out_json = tmp_path / "report.json"
    code = main(["doctor", str(messy), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Unusable files — skipped, never touched (7)" in out
    assert "cat/empty.jpg: empty file (0 bytes)" in out
    assert (
        "exact, across classes cat, dog: label conflict: cat/cat_000.jpg, dog/dog_same_as_cat.jpg"
        in out
    )
    assert "heavy class imbalance" in out and "Sizes and modes" in out
    report = json.loads(out_json.read_text())
    assert report["usable"] == 67 and report["duplicates"]["exact_clusters"] == 2


def test_cli_doctor_with_a_run_reports_leakage_across_its_splits(tmp_path, capsys):
    data = make_textured_dataset(tmp_path / "d", {"cat": 6, "dog": 6})
    plant_copy(data / "cat" / "cat_000.jpg", data / "cat" / "cat_000_copy.jpg")
    run = tmp_path / "run"
    run.mkdir()
    (run / "classes.json").write_text('["cat", "dog"]')
    rows = [("cat/cat_000.jpg", "cat", "train"), ("cat/cat_000_copy.jpg", "cat", "test")]
    with open(run / "split.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label", "split"), *rows])
    code = main(["doctor", str(data), "--run", str(run)])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "exact, within class cat; across splits test/train: LEAKAGE: cat/cat_000.jpg, "
        "cat/cat_000_copy.jpg" in out
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--near-threshold", "65"],
            "invalid value for `--near-threshold`: received 65; expected an integer from 0 to 32",
        ),
        (
            ["--group-by", "(unclosed"],
            "invalid value for `--group-by`: received '(unclosed'; expected a regular expression",
        ),
        (
            ["--group-by", "missing.csv"],
            "invalid value for `--group-by`: received 'missing.csv'; expected a regular "
            "expression, or an existing CSV",
        ),
    ],
)
def test_cli_doctor_errors_are_one_line(flat2, capsys, argv, message):
    code = main(["doctor", str(flat2), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("imgclf: error: ") and message in err and "Traceback" not in err


def test_doctor_on_a_missing_folder(tmp_path, capsys):
    assert main(["doctor", str(tmp_path / "nope")]) == 1  # a data problem, not a usage mistake
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------- train


TINY = dict(
    model="cnn", image_size=32, batch_size=8, augment="none", epochs=1, verbose=0, report=False
)


def test_train_on_a_messy_folder_completes_reports_and_touches_nothing(messy, tmp_path, capsys):
    before = tree_hashes(messy)
    result = imgclf.train(
        messy, out=str(tmp_path / "runs"), class_weight="auto", **{**TINY, "verbose": 1}
    )
    out = capsys.readouterr().out
    assert tree_hashes(messy) == before  # not a byte of the input folder changed
    assert all(p.exists() for p in (messy / "cat").iterdir())
    assert "doctor: 7 unusable file(s) skipped, never touched" in out
    assert (
        "doctor: 2 exact and 1 near-duplicate cluster(s) (1 across classes: label conflicts)" in out
    )
    assert "doctor: class weights (train split, --class-weight auto): cat " in out

    report = read_json(result.run_dir / RunFiles.DATA_REPORT)
    assert {Path(r["path"]).name for r in report["skipped"]} >= {
        "truncated.jpg",
        "bomb.png",
        "icon.png",
        "sliver.png",
    }
    assert len(report["skipped"]) == 7  # the truncated JPEG is caught before the split, listed once
    doctor = report["doctor"]
    assert doctor["duplicates"]["across_splits"] == 0
    assert set(doctor["train_class_weights"]) == {"cat", "dog", "rare"}
    assert doctor["train_class_weights"]["rare"] > doctor["train_class_weights"]["cat"]
    with open(result.run_dir / RunFiles.SPLIT, newline="") as fh:
        split = {r["path"]: r["split"] for r in csv.DictReader(fh)}
    assert "cat/truncated.jpg" not in split and "cat/really_a_jpeg.png" in split
    for cluster in doctor["duplicates"]["clusters"]:
        assert len({split[p] for p in cluster["paths"]}) == 1, cluster


def test_train_rejects_a_bad_class_weight(flat2, tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `class_weight`: received 'balanced'; expected one of 'none', "
        r"'auto'",
    ):
        imgclf.train(flat2, out=str(tmp_path / "runs"), class_weight="balanced", **TINY)


def test_public_api_doctor_matches_the_cli_checks(messy, messy_report):
    report = imgclf.doctor(messy)
    assert report.to_dict()["unusable"] == messy_report["unusable"]
    assert report.to_dict()["balance"]["counts"] == {"cat": 32, "dog": 32, "rare": 3}
    assert "Class balance" in report.format()
