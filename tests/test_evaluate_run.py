"""``imgclf evaluate`` (issue 9's evaluate items): averages over the classes present and names the
absent ones; an evaluation of another folder with the same name is not overwritten; a run folder
that cannot be written still prints the metrics, then one error line; Ctrl-C stops without a
traceback;
progress lines when piped; the evaluation's report in evaluations/<folder>/."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil

import numpy as np
import pytest
from helpers import make_dataset, make_distinct_dataset

from imgclf.cli import main
from imgclf.evaluation.metrics import compute_metrics


def test_macro_f1_averages_over_the_classes_present():
    m = compute_metrics(np.zeros(5, int), np.zeros(5, int), ["a", "b", "c"], "x")
    assert m.macro_f1 == 1.0  # all correct on the one class present; was 1/3 with b and c as F1 = 0
    assert m.absent_classes == ["b", "c"]


def test_evaluate_a_folder_with_some_classes_names_the_absent_ones(trained_run, tmp_path, capsys):
    only_cat = tmp_path / "only_cat"
    shutil.copytree(trained_run.data / "cat", only_cat / "cat")
    assert main(["evaluate", str(trained_run.run_dir), str(only_cat), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["absent_classes"] == ["dog", "fox"]
    assert out["macro_f1"] == pytest.approx(out["per_class"]["cat"]["f1"])
    saved = trained_run.run_dir / "evaluations" / "only_cat"
    assert json.loads((saved / "metrics.json").read_text())["absent_classes"] == ["dog", "fox"]
    main(["evaluate", str(trained_run.run_dir), str(only_cat)])
    assert "left out of the averages: dog, fox" in capsys.readouterr().out


def test_an_evaluation_of_another_folder_with_the_same_name_is_kept(trained_run, tmp_path, capsys):
    first = make_dataset(tmp_path / "a" / "twin", {"cat": 3, "dog": 3}, seed=21)
    second = make_dataset(tmp_path / "b" / "twin", {"fox": 4}, seed=22)
    evaluations = trained_run.run_dir / "evaluations"
    assert main(["evaluate", str(trained_run.run_dir), str(first)]) == 0
    assert main(["evaluate", str(trained_run.run_dir), str(second)]) == 0
    assert json.loads((evaluations / "twin" / "metrics.json").read_text())["n"] == 6
    assert json.loads((evaluations / "twin2" / "metrics.json").read_text())["n"] == 4
    assert (
        main(["evaluate", str(trained_run.run_dir), str(first)]) == 0
    )  # the same folder again: refreshed in place
    assert not (evaluations / "twin3").exists()
    report = (evaluations / "twin2" / "report.html").read_text(encoding="utf-8")
    assert 'id="results"' in report and 'id="mistakes"' in report and str(second) in report
    capsys.readouterr()


def test_a_run_folder_that_cannot_be_written_still_prints_the_metrics(
    trained_run, tmp_path, capsys, monkeypatch
):
    import imgclf.evaluation.evaluate as evaluate

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(
        evaluate, "write_json", read_only
    )  # running as root, chmod would not stop a write
    data = make_dataset(tmp_path / "ro", {"cat": 3}, seed=23)
    assert main(["evaluate", str(trained_run.run_dir), str(data)]) != 0
    captured = capsys.readouterr()
    assert "accuracy" in captured.out and "confusion matrix" in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("imgclf: error")]
    folder = str(trained_run.run_dir / "evaluations" / "ro")
    assert errors == [
        f"imgclf: error: could not save the evaluation in {folder!r}: Read-only file system"
    ]
    assert "Traceback" not in captured.err


def test_ctrl_c_during_evaluation_stops_without_a_traceback(trained_run, capsys, monkeypatch):
    import imgclf.evaluation.evaluate as evaluate

    real = evaluate.score_items

    def interrupted(model, items, image_size, batch_size, temperature=1.0, on_batch=None, tta=0):
        def press_ctrl_c(n):
            raise KeyboardInterrupt

        return real(model, items, image_size, 1, temperature, press_ctrl_c, tta)

    monkeypatch.setattr(evaluate, "score_items", interrupted)
    assert main(["evaluate", str(trained_run.run_dir)]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "imgclf: interrupted"
    assert "Traceback" not in captured.err and "accuracy" not in captured.out


def test_evaluation_shows_progress_when_piped(trained_run, capsys, monkeypatch):
    import imgclf.progress as progress

    monkeypatch.setattr(
        progress, "PIPED_INTERVAL_S", 0.0
    )  # a line per batch instead of one every 5 s
    assert main(["evaluate", str(trained_run.run_dir)]) == 0
    lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("evaluating:")
    ]
    assert lines and lines[-1].startswith("evaluating: 6/6 (") and "s left)" in lines[-1]


def _colour_shifted_copy(src, dst):
    """The same pictures from "another camera": colour channels rotated and 30 % darker."""
    from PIL import Image

    for path in sorted(src.rglob("*.jpg")):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"), np.float64)
        out = dst / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(np.roll(pixels, 1, axis=2) * 0.7, 0, 255).astype(np.uint8)).save(
            out, quality=90
        )
    return dst


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory):
    """A tiny cnn run trained with --test-dir on new pictures of the same kind, with an internal
    test split large enough (30 % = 36 images) for the honesty check to have power; the pictures'
    shifted copies; the training folder. Pictures of the same kind, but none a near duplicate of
    another
    (helpers.make_distinct_dataset), so "new pictures" really are new."""
    base = tmp_path_factory.mktemp("honesty")
    data = make_distinct_dataset(base / "shapes", {"cat": 40, "dog": 40, "fox": 40}, seed=41)
    same = make_distinct_dataset(base / "same_kind", {"cat": 20, "dog": 20, "fox": 20}, seed=42)
    shifted = _colour_shifted_copy(same, base / "other_camera")
    terminal = io.StringIO()
    with contextlib.redirect_stdout(terminal):
        code = main(
            [
                "train",
                str(data),
                "--model",
                "cnn",
                "--image-size",
                "32",
                "--epochs",
                "8",
                "--batch-size",
                "8",
                "--augment",
                "none",
                "--test-fraction",
                "0.3",
                "--test-dir",
                str(same),
                "--out",
                str(base / "runs"),
                "--name",
                "honest",
            ]
        )
    assert code == 0
    return base / "runs" / "honest", terminal.getvalue(), shifted, data


def test_train_with_a_test_dir_shows_both_accuracies_and_no_warning_on_the_same_kind(honest_run):
    run_dir, out, _, _ = honest_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    check = metrics["honesty"]
    assert check["internal"]["n"] == metrics["n"] == 36 and check["internal"][
        "accuracy"
    ] == pytest.approx(metrics["accuracy"])
    assert check["internal"]["accuracy"] >= 0.9, check  # a model worth checking
    assert check["external"]["n"] == 60 and check["differs"] is False, check
    assert "WARNING" not in out and check["message"] in out
    saved = json.loads((run_dir / "evaluations" / "same_kind" / "metrics.json").read_text())
    assert (
        saved["accuracy"] == pytest.approx(check["external"]["accuracy"])
        and saved["honesty"] == check
    )
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'data-honesty="consistent"' in report
    assert f'data-metric="honesty_external">{check["external"]["accuracy"]:.4f}<' in report
    assert (run_dir / "evaluations" / "same_kind" / "report.html").is_file()
    # the overlap check ran (train --test-dir goes through score_folder) and found nothing
    assert saved["overlap"]["seen_in_train"] == saved["overlap"]["seen_in_val"] == 0
    assert saved["overlap"]["unseen"] == 60 and saved["overlap"]["message"] == ""
    assert (
        "seen" not in check and "seen by the run" not in out and 'data-overlap="seen"' not in report
    )


def test_the_honesty_check_warns_on_a_planted_shift(honest_run, capsys):
    run_dir, _, shifted, _ = honest_run
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), str(shifted)]) == 0
    out = capsys.readouterr().out
    saved = run_dir / "evaluations" / "other_camera"
    check = json.loads((saved / "metrics.json").read_text())["honesty"]
    assert check["differs"] is True and check["p_value"] < 0.05, check
    assert check["external"]["n"] == 60 and "seen" not in check  # nothing seen: compared whole
    warnings = [line for line in out.splitlines() if line.startswith("WARNING honesty check")]
    assert warnings == [check["message"]] and "overstates" in warnings[0]
    report = (saved / "report.html").read_text(encoding="utf-8")
    assert 'data-honesty="differs"' in report and 'data-metric="honesty_external"' in report


# ---- issue 18 item 1: evaluating on the run's own training images is noticed ----


def _split_files(run_dir, data):
    """The run's split.csv as {split: [paths]} (paths relative to the data folder)."""
    import csv

    out = {"train": [], "val": [], "test": []}
    with open(run_dir / "split.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out[row["split"]].append(data / row["path"])
    return out


def _evaluate(run_dir, folder, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), str(folder)]) == 0
    out = capsys.readouterr().out
    saved = run_dir / "evaluations" / folder.name
    return json.loads((saved / "metrics.json").read_text()), out, saved


def _seen_rows(saved):
    import csv

    with open(saved / "seen.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_runs_own_training_images_under_new_names_are_seen_and_no_estimate_is_claimed(
    honest_run, tmp_path, capsys
):
    run_dir, _, _, data = honest_run
    split = _split_files(run_dir, data)
    copied = tmp_path / "my_new_photos"
    for i, path in enumerate(split["train"] + split["val"]):  # new paths: only the bytes match
        (copied / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, copied / path.parent.name / f"photo_{i:03d}.jpg")
    metrics, out, saved = _evaluate(run_dir, copied, capsys)
    n_train, n_val = len(split["train"]), len(split["val"])
    overlap = metrics["overlap"]
    assert (overlap["seen_in_train"], overlap["seen_in_val"], overlap["unseen"]) == (
        n_train,
        n_val,
        0,
    )
    assert overlap["by"] == {"path": 0, "content": n_train + n_val, "near_duplicate": 0}
    assert overlap["accuracy_seen"]["n"] == metrics["n"] and overlap["accuracy_unseen"]["n"] == 0
    assert overlap["accuracy_seen"]["value"] == pytest.approx(metrics["accuracy"])
    lines = [line for line in out.splitlines() if "were seen by the run" in line]
    assert lines == [overlap["message"]] and lines[0].startswith(
        f"WARNING {n_train + n_val} of {n_train + n_val} images of "
    )
    check = metrics["honesty"]
    assert check["estimate"] is False and check["external"]["n"] == 0 and not check["differs"]
    assert "no external estimate exists" in check["message"] and check["message"] in out
    assert "harder or mislabelled" not in out  # the old verdict on a leaky comparison
    assert {row["by"] for row in _seen_rows(saved)} == {"content"}
    assert (run_dir / "split_hashes.json").is_file()  # the train/val hashes, cached
    report = (saved / "report.html").read_text(encoding="utf-8")
    assert 'data-overlap="seen"' in report and 'data-honesty="no-estimate"' in report
    assert "never used for training" not in report


def test_the_training_folder_itself_is_seen_by_path_and_only_its_test_split_is_compared(
    honest_run, capsys
):
    run_dir, _, _, data = honest_run
    split = _split_files(run_dir, data)
    metrics, out, _ = _evaluate(run_dir, data, capsys)
    overlap = metrics["overlap"]
    assert overlap["seen_in_train"] == len(split["train"]) and overlap["seen_in_val"] == len(
        split["val"]
    )
    assert overlap["unseen"] == len(split["test"]) == 36
    assert overlap["by"]["path"] == len(split["train"]) + len(split["val"])
    internal = json.loads((run_dir / "metrics.json").read_text())
    check = metrics["honesty"]
    assert check["external"]["n"] == 36 and check["external"]["name"].endswith("unseen part")
    # the unseen part IS the run's test split: the same accuracy, no difference
    assert overlap["accuracy_unseen"]["value"] == pytest.approx(internal["accuracy"])
    assert check["differs"] is False and check["seen"] == overlap["message"] in out


def test_a_folder_mixing_seen_and_new_pictures_is_scored_in_two_parts(honest_run, tmp_path, capsys):
    run_dir, _, _, data = honest_run
    mixed = tmp_path / "mixed"
    shutil.copytree(run_dir.parent.parent / "same_kind", mixed)  # 60 new pictures
    for i, path in enumerate(_split_files(run_dir, data)["train"][::6][:10]):
        shutil.copy(path, mixed / path.parent.name / f"old_{i}.jpg")
    metrics, out, saved = _evaluate(run_dir, mixed, capsys)
    overlap = metrics["overlap"]
    assert (overlap["seen_in_train"], overlap["seen_in_val"], overlap["unseen"]) == (10, 0, 60)
    assert overlap["accuracy_seen"]["n"] == 10 and overlap["accuracy_unseen"]["n"] == 60
    for part in ("seen", "unseen"):
        a = overlap[f"accuracy_{part}"]
        assert a["method"] == "Wilson" and a["low"] <= a["value"] <= a["high"]
    right = overlap["accuracy_seen"]["value"] * 10 + overlap["accuracy_unseen"]["value"] * 60
    assert right == pytest.approx(metrics["accuracy"] * 70)
    check = metrics["honesty"]
    assert check["external"]["n"] == 60 and check["external"]["accuracy"] == pytest.approx(
        overlap["accuracy_unseen"]["value"]
    )
    assert f"10 of 70 images of {metrics['split']!r} were seen by the run" in out
    assert len(_seen_rows(saved)) == 10


def test_re_encoded_copies_of_training_images_are_near_duplicates(honest_run, tmp_path, capsys):
    from PIL import Image

    run_dir, _, _, data = honest_run
    altered = tmp_path / "altered"
    originals = _split_files(run_dir, data)["train"][:12]
    for i, path in enumerate(originals):  # new bytes, the same picture: JPEG quality 90 again
        (altered / path.parent.name).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            im.convert("RGB").save(altered / path.parent.name / f"edit_{i}.jpg", quality=90)
    metrics, out, saved = _evaluate(run_dir, altered, capsys)
    assert metrics["overlap"]["by"] == {"path": 0, "content": 0, "near_duplicate": 12}
    assert metrics["overlap"]["seen_in_train"] == 12 and metrics["overlap"]["unseen"] == 0
    assert {row["match"] for row in _seen_rows(saved)} == {str(p.resolve()) for p in originals}
    assert "12 near duplicate" in out


def test_train_with_its_own_folder_as_test_dir_compares_only_the_unseen_part(tmp_path):
    import imgclf

    data = make_distinct_dataset(tmp_path / "own", {"cat": 10, "dog": 10}, seed=51)
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=1,
        batch_size=8,
        augment="none",
        test_dir=str(data),
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    split = _split_files(result.run_dir, data)
    saved = json.loads((result.run_dir / "evaluations" / "own" / "metrics.json").read_text())
    assert saved["overlap"]["by"]["path"] == len(split["train"]) + len(split["val"])
    assert saved["overlap"]["unseen"] == len(split["test"]) > 0
    check = json.loads((result.run_dir / "metrics.json").read_text())["honesty"]
    assert check["external"]["n"] == len(split["test"]) and check["seen"].startswith("WARNING")
