"""``imgclf train DATA --drop-label-issues`` (issue 21 item 5): the training and validation images
whose label is likely wrong are left out of the run, listed in its label_issues.csv and report; the
test images are never checked. One run (module scope) on a planted set like test_label_issues.py's,
only larger (480 clean generated pictures, 5 % of their labels flipped), trained with the small cnn:
the finder reads Lite0's features whatever the run's model."""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import pytest
from helpers import make_distinct_dataset
from test_label_issues import _flip

from imgclf.cli import main
from imgclf.data.scan import ImageItem
from imgclf.data.split import SPLITS
from imgclf.training import label_cleaning
from imgclf.training.label_cleaning import KEEP_PER_CLASS, _kept_per_class
from imgclf.training.label_issues import LabelIssue, LabelIssues

CLASSES = {f"c{k}": 80 for k in range(6)}  # 480 images: ~17 flipped ones in the train split


@pytest.fixture(scope="module")
def dropped(tmp_path_factory):
    """One ``train --drop-label-issues`` on a flipped set: (data, run, flipped, stdout, code)."""
    tmp = tmp_path_factory.mktemp("drop")
    data = make_distinct_dataset(tmp / "data", CLASSES, fmt="png", seed=3)
    flipped = _flip(data, 0.05, seed=1)
    argv = ["train", str(data), "--drop-label-issues", "--model", "cnn", "--image-size", "32"]
    argv += ["--epochs", "1", "--out", str(tmp / "runs"), "--name", "flipped"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(tmp / "cache"))
        log = tmp / "stdout.txt"
        with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
            code = main(argv)
    return {
        "data": data,
        "run": tmp / "runs" / "flipped",
        "flipped": flipped,
        "stdout": log.read_text(encoding="utf-8"),
        "code": code,
    }


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _split(run: Path) -> dict[str, str]:
    """split.csv: every image's absolute path → its split."""
    return {
        str(run.parent.parent / "data" / r["path"]): r["split"] for r in _csv(run / "split.csv")
    }


def test_the_flipped_images_are_left_out_with_recall_and_precision_of_80_percent(dropped):
    assert dropped["code"] == 0, dropped["stdout"]
    left_out = {r["path"] for r in _csv(dropped["run"] / "label_issues.csv")}
    split = _split(dropped["run"])
    every = {str(p) for p in dropped["data"].glob("*/*")}
    assert left_out and not left_out & split.keys()  # gone from the split the run used
    assert every - split.keys() == left_out  # and nothing else is missing
    # the flipped images that were checked: those not in the test split
    flipped_checked = dropped["flipped"] - {p for p, s in split.items() if s == "test"}
    hits = left_out & flipped_checked
    assert len(hits) >= 0.8 * len(flipped_checked), (left_out, flipped_checked)
    assert len(hits) >= 0.8 * len(left_out), (left_out, flipped_checked)


def test_the_test_split_never_reaches_the_finder(monkeypatch):
    seen = []

    def flag_all(items, classes, image_size=128, **kw):
        seen.extend(items)
        issues = [LabelIssue(i.path, classes[i.label], classes[1 - i.label], 0.9) for i in items]
        return LabelIssues(issues, len(items), classes, 5, 0.0, image_size)

    monkeypatch.setattr(label_cleaning, "find_label_issues", flag_all)
    items = [ImageItem(f"/x/{s}{k}{n}.png", k, s) for s in SPLITS for k in (0, 1) for n in range(8)]
    kept, found, left_out = label_cleaning.drop_label_issues(items, ["a", "b"], 0, False)
    assert {i.split for i in seen} == {"train", "val"}
    assert [i for i in kept if i.split == "test"] == [i for i in items if i.split == "test"]
    # every checked image flagged: each class keeps KEEP_PER_CLASS of its 16 checked ones
    assert len(found.issues) == 2 * (16 - KEEP_PER_CLASS) == sum(left_out.values())
    assert len(kept) == len(items) - len(found.issues)


def test_the_terminal_the_data_report_and_the_report_say_so(dropped):
    n = len(_csv(dropped["run"] / "label_issues.csv"))
    line = next(x for x in dropped["stdout"].splitlines() if x.startswith("label issues:"))
    assert f"label issues: {n} of " in line and "the test images are kept" in line
    report = json.loads((dropped["run"] / "data_report.json").read_text(encoding="utf-8"))
    left_out = report["doctor"]["label_issues"]["left_out"]
    assert sum(left_out.values()) == n and left_out["train"] > left_out["val"] > 0
    page = (dropped["run"] / "report.html").read_text(encoding="utf-8")
    assert 'id="label_issues"' in page and "left out of the run (--drop-label-issues)" in page
    checked = report["doctor"]["label_issues"]["checked"]
    assert f"{n}</span> images of {checked} whose label" in page


def test_with_time_it_is_a_one_line_error_naming_both(tmp_path, capsys):
    data = make_distinct_dataset(tmp_path / "d", {"a": 6, "b": 6}, fmt="png")
    code = main(
        ["train", str(data), "--drop-label-issues", "--time", "45s", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "`--drop-label-issues + --time`" in err and "one of the two" in err
    assert err.strip().count("\n") == 0
    assert "Traceback" not in err and not (tmp_path / "d").with_name("d2").exists()


def test_a_class_keeps_some_training_images_whatever_the_finder_flags():
    train = [ImageItem(f"/x/a{i}.png", 0, "train") for i in range(3)]
    train += [ImageItem(f"/x/b{i}.png", 1, "train") for i in range(6)]
    issues = [LabelIssue(i.path, "ab"[i.label], "ba"[i.label], 0.9) for i in train]
    found = LabelIssues(issues, len(train), ["a", "b"], 5, 0.0, 128)
    kept = _kept_per_class(found, train, ["a", "b"])
    given = [i.given_label for i in kept.issues]
    assert given.count("a") == 3 - KEEP_PER_CLASS and given.count("b") == 6 - KEEP_PER_CLASS
    assert [i.path for i in kept.issues] == [i.path for i in issues if i in kept.issues]
