"""What imgclf's exit status tells a script: 0 success, 1 a data, model or runtime problem, 2 a
usage mistake (argparse errors and ConfigError), 130 interrupted — Ctrl-C in train keeps and tests
the best model first and says so on one line; `imgclf doctor --strict` exits 1 on findings CI should
gate
on."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import history_rows, make_dataset, make_textured_dataset, plant_copy

from imgclf.cli import main
from imgclf.models.loading import load_model_file
from imgclf.runs import RunFiles, read_json
from imgclf.training.callbacks import HistoryCSV

CNN_FLAGS = [
    "--model",
    "cnn",
    "--image-size",
    "32",
    "--batch-size",
    "8",
    "--augment",
    "none",
    "--epochs",
    "3",
    "--no-report",
]

pytestmark = pytest.mark.usefixtures("private_cache")


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def interrupt_after(monkeypatch, epoch_index: int) -> None:
    """Ctrl-C right after epoch ``epoch_index`` (0-based) is logged."""
    original = HistoryCSV.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == epoch_index:
            raise KeyboardInterrupt

    monkeypatch.setattr(HistoryCSV, "on_epoch_end", on_epoch_end)


def test_usage_mistakes_exit_2(capsys, tmp_path):
    code, _, err = cli(capsys, "train", tmp_path, "--no-such-flag")
    assert code == 2 and "unrecognized arguments: --no-such-flag" in one_line(err)
    code, _, err = cli(capsys, "train", tmp_path, "--optimizer", "lion")
    assert code == 2 and one_line(err).startswith("imgclf: error: invalid value for `--optimizer`")


def test_data_problems_exit_1(capsys, tmp_path):
    code, _, err = cli(capsys, "train", tmp_path / "missing", "--model", "cnn")
    assert code == 1 and "does not exist" in one_line(err)
    code, _, err = cli(capsys, "predict", tmp_path, tmp_path)
    assert code == 1 and "is not an imgclf run folder" in one_line(err)


@pytest.fixture
def interrupted(tmp_path, capsys, monkeypatch):
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=51)
    interrupt_after(monkeypatch, 1)
    code, out, err = cli(capsys, "train", data, "--out", tmp_path / "runs", *CNN_FLAGS)
    return code, out, err, tmp_path / "runs" / "pets"


def test_ctrl_c_in_train_keeps_and_tests_the_best_model_then_exits_130(interrupted):
    code, out, err, run_dir = interrupted
    assert code == 130
    line = one_line(err)
    metrics = read_json(run_dir / RunFiles.METRICS)
    assert line == (
        f"imgclf: interrupted: kept the best model so far ({run_dir / RunFiles.MODEL}) "
        "and tested it "
        f"(accuracy {metrics['accuracy']:.4f}, n={metrics['n']}); continue with `imgclf "
        f"train --resume {run_dir}`"
    )
    assert metrics["interrupted"] is True and len(history_rows(run_dir)) == 2
    assert load_model_file(run_dir / RunFiles.MODEL).output_shape == (None, 1)
    assert "accuracy" in out  # the test metrics are printed as for a finished run


def test_quiet_says_whether_the_run_was_interrupted(tmp_path, capsys, monkeypatch):
    """``interrupted=yes`` here; a finished run's ``interrupted=no`` is checked by test_faults'
    resume."""
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=52)
    interrupt_after(monkeypatch, 0)
    code, out, err = cli(capsys, "train", data, "--out", tmp_path / "runs", "--quiet", *CNN_FLAGS)
    assert code == 130
    run_dir, accuracy, n, flag = out.rstrip("\n").split("\t")
    assert (
        run_dir == str(tmp_path / "runs" / "pets")
        and accuracy.startswith("accuracy=")
        and n.startswith("n=")
    )
    assert flag == "interrupted=yes"
    assert one_line(err).startswith("imgclf: interrupted: kept the best model so far")


def test_ctrl_c_before_training_exits_130_at_once(capsys, tmp_path, monkeypatch):
    from imgclf.data import scan

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(scan, "scan_folder", interrupted)
    code, out, err = cli(capsys, "doctor", tmp_path)
    assert code == 130 and one_line(err) == "imgclf: interrupted" and out == ""


# ---------------------------------------------------------------------------- doctor --strict


def doctor(capsys, data: Path, *flags) -> tuple[int, str, str]:
    return cli(capsys, "doctor", data, *flags)


def test_doctor_strict_passes_a_clean_folder(tmp_path, capsys):
    data = make_textured_dataset(tmp_path / "clean", {"a": 8, "b": 8}, seed=53)
    code, out, err = doctor(capsys, data, "--strict")
    assert code == 0 and err == "" and out


@pytest.mark.parametrize("fault", ["leakage", "label_conflict", "unusable"])
def test_doctor_strict_exits_1_on_findings_ci_should_gate_on(tmp_path, capsys, fault):
    if fault == "leakage":
        data = tmp_path / "presplit"
        make_textured_dataset(data / "train", {"a": 6, "b": 6}, seed=54)
        make_textured_dataset(data / "val", {"a": 2, "b": 2}, seed=55)
        plant_copy(data / "train" / "a" / "a_000.jpg", data / "val" / "a" / "leaked.jpg")
        says = "1 duplicate(s) across splits (leakage)"
    else:
        data = make_textured_dataset(tmp_path / "flat", {"a": 8, "b": 8}, seed=56)
        if fault == "label_conflict":
            plant_copy(data / "a" / "a_000.jpg", data / "b" / "same_as_a.jpg")
            says = "1 duplicate(s) across classes (label conflict)"
        else:
            (data / "a" / "empty.jpg").write_bytes(b"")
            says = "1 unusable file(s)"
    code, out, err = doctor(capsys, data)
    assert code == 0 and err == ""  # without --strict the doctor only reports
    code, out_strict, err = doctor(capsys, data, "--strict")
    assert code == 1 and out_strict == out
    line = one_line(err)
    assert line.startswith("imgclf: doctor --strict: ") and says in line, line
