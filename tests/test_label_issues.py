"""``imgclf doctor DATA --labels``: label issues by confident learning (issue 21 item 5).

One doctor run (module scope) on a clean generated set with 5 % of its labels flipped, its DATA made
read-only: the flipped images are found (recall and precision at least 80 %), written as
label_issues.csv and a gallery into --out, DATA untouched. The confident-learning filter itself is
checked on planted probabilities; bad inputs are one-line errors naming the argument.
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset, make_distinct_dataset, tree_hashes

from imgclf.cli import main
from imgclf.data.scan import ImageItem
from imgclf.errors import DataError
from imgclf.reporting.label_issues import label_issues_page, label_issues_section
from imgclf.training.confident_learning import (
    confident_joint,
    estimated_issue_count,
    find_issues,
    issue_scores,
)
from imgclf.training.label_issues import check_label_data

CLASSES = {f"c{k}": 50 for k in range(6)}  # 300 images; the six colours of tests/helpers.py


def _flip(root: Path, fraction: float, seed: int) -> set[str]:
    """Move ``fraction`` of the files into another class's folder; their new paths."""
    files = sorted(root.glob("*/*"))
    names = sorted(CLASSES)
    rng = np.random.default_rng(seed)
    moved = set()
    for i in rng.choice(len(files), size=round(fraction * len(files)), replace=False):
        src = files[i]
        other = rng.choice([c for c in names if c != src.parent.name])
        dst = root / other / f"moved_{src.name}"
        shutil.move(src, dst)
        moved.add(str(dst))
    return moved


def _read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def doctored(tmp_path_factory):
    """One ``doctor --labels`` on a read-only flipped set: (data, out, flipped, stdout, hashes)."""
    tmp = tmp_path_factory.mktemp("labels")
    data = make_distinct_dataset(tmp / "data", CLASSES, fmt="png", seed=3)
    flipped = _flip(data, 0.05, seed=1)
    _read_only(data)
    before = tree_hashes(data)
    out = tmp / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(tmp / "cache"))
        log = tmp / "stdout.txt"
        with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
            code = main(["doctor", str(data), "--labels", "--out", str(out)])
    yield {
        "data": data,
        "out": out,
        "flipped": flipped,
        "stdout": log.read_text(encoding="utf-8"),
        "before": before,
        "code": code,
    }
    for p in [data, *data.rglob("*")]:  # let pytest clean up
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "label_issues.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_flipped_labels_are_found_with_recall_and_precision_of_80_percent(doctored):
    assert doctored["code"] == 0
    found = {r["path"] for r in _rows(doctored["out"])}
    hits = found & doctored["flipped"]
    assert len(hits) >= 0.8 * len(doctored["flipped"]), (found, doctored["flipped"])
    assert len(hits) >= 0.8 * len(found), (found, doctored["flipped"])


def test_the_csv_has_the_four_columns_ranked_with_the_suggested_class(doctored):
    with open(doctored["out"] / "label_issues.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["path", "given_label", "suggested_label", "score"]
    rows = _rows(doctored["out"])
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    for r in rows:
        assert r["given_label"] == Path(r["path"]).parent.name != r["suggested_label"]
        if r["path"] in doctored["flipped"]:  # the moved file's name keeps its true class
            assert Path(r["path"]).name.split("_")[1] == r["suggested_label"]


def test_data_is_never_written_and_the_terminal_says_where_the_csv_is(doctored):
    assert tree_hashes(doctored["data"]) == doctored["before"]
    n = len(_rows(doctored["out"]))
    line = next(x for x in doctored["stdout"].splitlines() if x.startswith("label issues:"))
    assert f"label issues: {n} of 300 images likely mislabelled" in line
    assert str(doctored["out"] / "label_issues.csv") in line


def test_the_gallery_shows_given_and_suggested_labels_with_thumbnails(doctored):
    page = (doctored["out"] / "label_issues.html").read_text(encoding="utf-8")
    first = _rows(doctored["out"])[0]
    assert 'id="label_issues"' in page and "data:image/png;base64," in page
    assert f"given <strong>{first['given_label']}</strong>" in page
    assert f"suggested <strong>{first['suggested_label']}</strong>" in page


def test_the_report_section_escapes_names_and_is_absent_without_a_csv(tmp_path):
    assert label_issues_section(tmp_path / "label_issues.csv") is None
    csv_path = tmp_path / "label_issues.csv"
    csv_path.write_text(
        "path,given_label,suggested_label,score\n/gone.png,<script>,b,0.9\n", encoding="utf-8"
    )
    html = label_issues_page(csv_path, "data", ["<script>", "b"], "how", 10, 128)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'data-metric="label-issues">1<' in html


def test_confident_learning_flags_the_confidently_other_images_only():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    probs = np.full((120, 3), 0.05)
    probs[np.arange(120), labels] = 0.9
    probs += rng.uniform(0, 0.02, probs.shape)
    planted = [3, 50, 100]  # labelled 0, 1, 2 but clearly 1, 2, 0
    for i, true in zip(planted, [1, 2, 0], strict=True):
        probs[i] = 0.05
        probs[i, true] = 0.9
    unsure = 7  # labelled 0, torn between 0 and 1: not flagged (its argmax is its label)
    probs[unsure] = [0.48, 0.47, 0.05]
    probs /= probs.sum(axis=1, keepdims=True)
    joint = confident_joint(labels, probs)
    assert joint.sum() == pytest.approx(120) and joint[0, 1] == pytest.approx(1, abs=0.5)
    assert np.flatnonzero(find_issues(labels, probs)).tolist() == planted
    scores, suggested = issue_scores(labels, probs)
    assert suggested[planted].tolist() == [1, 2, 0] and (scores[planted] > 0.7).all()


def test_the_self_confidence_filter_ranks_all_images_the_noise_rate_filter_only_counted_pairs():
    """Two confident errors (3: labelled 0, surely 1; 60: labelled 1, surely 2) make the estimated
    count 2. Image 7 (labelled 0, torn between 1 and 2) is confidently no class, so the noise-rate
    filter never considers it; the self-confidence filter takes the two lowest P(given) of all."""
    labels = np.repeat(np.arange(3), 40)
    probs = np.full((120, 3), 0.04)
    probs[np.arange(120), labels] = 0.92
    probs[3] = [0.03, 0.95, 0.02]
    probs[60] = [0.02, 0.01, 0.97]
    probs[7] = [0.02, 0.49, 0.49]
    assert estimated_issue_count(labels, probs) == 2
    by_noise = find_issues(labels, probs, filter_by="prune_by_noise_rate")
    assert np.flatnonzero(by_noise).tolist() == [3, 60]
    lowest = find_issues(labels, probs, filter_by="low_self_confidence")
    assert np.flatnonzero(lowest).tolist() == [7, 60]
    with pytest.raises(ValueError, match="filter_by: received 'x'; allowed: low_self_confidence"):
        find_issues(labels, probs, filter_by="x")


@pytest.mark.parametrize(
    "classes, argv, message",
    [
        ({"only": 8}, ["--labels"], "has only one class folder ('only')"),
        (
            {"a": 8, "b": 3},
            ["--labels"],
            "--labels needs at least 5 images in every class (5-fold cross-validation); 'b' has 3",
        ),
        ({"a": 8, "b": 8}, ["--out", "x"], "invalid value for `--out`: received 'x'"),
    ],
)
def test_bad_inputs_are_one_line_errors_naming_the_argument(
    tmp_path, capsys, monkeypatch, classes, argv, message
):
    data = make_dataset(tmp_path / "data", classes)
    monkeypatch.chdir(tmp_path)  # the default --out, ./doctor, is never made
    code = main(["doctor", str(data), *argv])
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "doctor").exists()


def test_out_inside_data_is_refused(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", {"a": 8, "b": 8})
    code = main(["doctor", str(data), "--labels", "--out", str(data / "doctor")])
    err = capsys.readouterr().err
    assert code == 2 and "invalid value for `--out`" in err and "outside the data folder" in err
    assert not (data / "doctor").exists()


def test_labels_need_two_classes_with_images():
    items = [ImageItem(f"a{i}.png", 0) for i in range(8)]
    with pytest.raises(DataError, match=r"at least 2 classes to compare; received 1 \(a\)"):
        check_label_data(items, ["a", "b"], 5)


def test_a_run_folder_with_label_issues_gets_the_report_section(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    image = next(iter(sorted(Path(trained_run.data).glob("dog/*"))))
    (run / "label_issues.csv").write_text(
        f"path,given_label,suggested_label,score\n{image},dog,fox,0.75\n", encoding="utf-8"
    )
    assert main(["report", str(run)]) == 0, capsys.readouterr().err
    html = (run / "report.html").read_text(encoding="utf-8")
    assert '<a href="#label_issues">Label issues</a>' in html and 'id="label_issues"' in html
    assert "given <strong>dog</strong>" in html and "suggested <strong>fox</strong> 0.75" in html
    assert 'id="label_issues"' not in (trained_run.run_dir / "report.html").read_text("utf-8")
