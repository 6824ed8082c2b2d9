"""``imgclf evaluate`` (issue 9's evaluate items): averages over the classes present and names the
absent ones; an evaluation of another folder with the same name is not overwritten; a run folder
that
cannot be written still prints the metrics, then one error line; Ctrl-C stops without a traceback;
progress lines when piped; the evaluation's report in evaluations/<folder>/."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import shutil

import numpy as np
import pytest
from helpers import make_dataset

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

    def interrupted(model, items, image_size, batch_size, temperature=1.0, on_batch=None):
        def press_ctrl_c(n):
            raise KeyboardInterrupt

        return real(model, items, image_size, 1, temperature, press_ctrl_c)

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
    test split
    large enough (30 % = 36 images) for the honesty check to have power; the pictures' shifted
    copies."""
    base = tmp_path_factory.mktemp("honesty")
    data = make_dataset(base / "shapes", {"cat": 40, "dog": 40, "fox": 40}, fmt="jpg", seed=41)
    same = make_dataset(base / "same_kind", {"cat": 20, "dog": 20, "fox": 20}, fmt="jpg", seed=42)
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
    return base / "runs" / "honest", terminal.getvalue(), shifted


def test_train_with_a_test_dir_shows_both_accuracies_and_no_warning_on_the_same_kind(honest_run):
    run_dir, out, _ = honest_run
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


def test_the_honesty_check_warns_on_a_planted_shift(honest_run, capsys):
    run_dir, _, shifted = honest_run
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), str(shifted)]) == 0
    out = capsys.readouterr().out
    saved = run_dir / "evaluations" / "other_camera"
    check = json.loads((saved / "metrics.json").read_text())["honesty"]
    assert check["differs"] is True and check["p_value"] < 0.05, check
    warnings = [line for line in out.splitlines() if line.startswith("WARNING honesty check")]
    assert warnings == [check["message"]] and "overstates" in warnings[0]
    report = (saved / "report.html").read_text(encoding="utf-8")
    assert 'data-honesty="differs"' in report and 'data-metric="honesty_external"' in report
