"""imgclf.cli through the real entry point: sub-commands, output formats, and one-line user
errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import make_dataset, write_bad_files

import imgclf
from imgclf import cli
from imgclf.cli import main
from imgclf.config_files import config_fields
from imgclf.models.registry import list_models
from imgclf.runs import RunFiles, read_json


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every CLI test from a temporary working directory (the default out= is ./runs)."""
    monkeypatch.chdir(tmp_path)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *fragments: str, status: int = 2) -> str:
    """One line, no traceback; ``status`` 2 for a usage mistake (ConfigError), 1 for a data/model
    problem."""
    assert code == status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("imgclf: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def first_image(trained_run, cls="cat") -> Path:
    return sorted((trained_run.data / cls).glob("*.jpg"))[0]


# ---------------------------------------------------------------------------- models, help, version


def test_models_lists_every_registry_entry(capsys):
    code, out, err = run_cli(capsys, "models")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    specs = list_models()
    assert [line.split()[0] for line in lines] == [s.name for s in specs]
    for line, spec in zip(lines, specs, strict=True):
        assert line.split(None, 1)[1].strip() == spec.description


@pytest.mark.parametrize("field", [f.name for f in config_fields()])
def test_every_config_field_is_a_train_flag(capsys, field):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    assert "--" + field.replace("_", "-") in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"imgclf {imgclf.__version__}"


def test_ctrl_c_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "models", interrupted)
    code, out, err = run_cli(capsys, "models")
    assert code == 130
    assert err.strip() == "imgclf: interrupted"


@pytest.mark.subprocess
def test_installed_entry_point_works():
    bin_dir = Path(sys.executable).parent
    script = bin_dir / ("imgclf.exe" if sys.platform == "win32" else "imgclf")
    assert script.is_file(), f"console script missing: {script}"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("train", "evaluate", "predict", "models"):
        assert command in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == f"imgclf {imgclf.__version__}"


@pytest.mark.subprocess
def test_the_command_line_is_parsed_without_importing_tensorflow():
    """``imgclf --help`` (and every command's start) took 10 s when building the parser imported
    TensorFlow."""
    code = (
        "import sys; from imgclf.cli import build_parser; build_parser(); print('tensorflow' "
        "in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


@pytest.mark.subprocess
def test_process_started_counts_the_time_before_the_command():
    from imgclf.runtime import process_started

    code = (
        "import time; time.sleep(1.0); from imgclf.runtime import process_started; "
        "print(time.perf_counter() - process_started())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 1.0 <= float(done.stdout) < 30, done.stderr  # the sleep before the call is counted
    assert process_started() <= time.perf_counter()


# ---------------------------------------------------------------------------- train


def test_train_quiet_with_flags_and_config_file(flat2, tmp_path, capsys):
    options = tmp_path / "opts.yaml"
    options.write_text("model: cnn\nimage_size: 32\nepochs: 5\naugment: none\nbatch_size: 4\n")
    code, out, err = run_cli(
        capsys,
        "train",
        flat2,
        "--config",
        options,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--out",
        tmp_path / "runs",
        "--name",
        "cli",
        "--fine-tune",
        "none",
        "--seed",
        "3",
        "--quiet",
        "--no-report",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    run_dir, accuracy, n, interrupted = lines[0].split("\t")
    assert Path(run_dir) == tmp_path / "runs" / "cli" and interrupted == "interrupted=no"
    assert accuracy.startswith("accuracy=") and 0.0 <= float(accuracy.split("=")[1]) <= 1.0
    assert n == f"n={read_json(Path(run_dir) / RunFiles.METRICS)['n']}"
    config = yaml.safe_load((Path(run_dir) / RunFiles.CONFIG).read_text())
    assert config["epochs"] == 1  # flag beats file
    assert config["batch_size"] == 8
    assert config["model"] == "cnn"  # from the file
    assert config["image_size"] == 32
    assert config["fine_tune"] == "none"
    assert config["seed"] == 3
    assert config["learning_rate"] == 1e-3  # default
    assert config["report"] is False
    run = Path(run_dir)
    assert (run / RunFiles.PREDICTIONS).exists() and not (run / RunFiles.REPORT).exists()
    assert not (run / RunFiles.CURVES).exists()
    code, out, err = run_cli(
        capsys, "report", run
    )  # --no-report: the report is built later, complete
    assert code == 0, err
    assert (run / RunFiles.REPORT).stat().st_size > 10_000 and (run / RunFiles.CURVES).exists()


def test_train_reports_progress_and_skipped_files(tmp_path, capsys):
    data = make_dataset(tmp_path / "shapes", {"cat": 8, "dog": 8})
    (data / "dog" / "notes.txt").write_text("x")
    code, out, err = run_cli(
        capsys,
        "train",
        data,
        "--model",
        "cnn",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--augment",
        "none",
        "--out",
        tmp_path / "runs",
        "--no-report",
    )
    assert code == 0, err
    assert "imgclf: 16 images, 2 classes" in out
    assert "model cnn at 32px" in out
    assert f"skipped {data / 'dog' / 'notes.txt'}: not an image file extension (.txt)" in out
    assert "test: accuracy" in out
    assert f"run saved to {tmp_path / 'runs' / 'shapes'}" in out


# ---------------------------------------------------------------------------- predict


def test_predict_csv(trained_run, capsys, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    paths = [first_image(trained_run, "cat"), first_image(trained_run, "fox"), bad["empty"]]
    code, out, err = run_cli(
        capsys, "predict", trained_run.run_dir, *paths, "--format", "csv", "--top-k", "2"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    for row in rows[:2]:
        assert row["label"] in trained_run.classes
        assert 0 <= float(row["confidence"]) <= 1
        top = json.loads(row["top_k"])  # [{"label": …, "probability": …}, ...]
        assert len(top) == 2 and top[0]["label"] == row["label"]
        assert row["error"] == ""
    assert rows[2]["label"] == "" and rows[2]["confidence"] == ""
    assert rows[2]["error"] == "empty file (0 bytes)"  # the doctor's words


def test_predict_json(trained_run, capsys):
    code, out, err = run_cli(
        capsys, "predict", trained_run.run_dir, trained_run.data / "dog", "--format", "json"
    )
    assert code == 0, err
    results = json.loads(out)
    assert len(results) == 20
    for r in results:
        assert r["label"] in trained_run.classes and r["error"] is None
        assert len(r["top_k"]) == 3
        assert r["top_k"][0]["label"] == r["label"]


def test_predict_table(trained_run, capsys, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    code, out, err = run_cli(
        capsys, "predict", trained_run.run_dir, first_image(trained_run), bad["truncated"]
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split() == ["path", "label", "conf", "top-k"]
    assert len(lines) == 3
    assert lines[1].startswith(str(first_image(trained_run)))
    assert lines[1].split()[1] in trained_run.classes
    assert "ERROR cannot decode" in lines[2]


def test_predict_exits_1_when_no_image_could_be_read(trained_run, capsys, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    code, out, err = run_cli(
        capsys, "predict", trained_run.run_dir, bad["empty"], "--format", "json"
    )
    assert code == 1
    assert json.loads(out)[0]["error"] == "empty file (0 bytes)"


def test_predict_on_an_empty_folder(trained_run, capsys, tmp_path):
    (tmp_path / "nothing").mkdir()
    code, out, err = run_cli(capsys, "predict", trained_run.run_dir, tmp_path / "nothing")
    assert_user_error(code, err, "no image files found in", "nothing", status=1)


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_table(trained_run, capsys):
    code, out, err = run_cli(capsys, "evaluate", trained_run.run_dir)
    assert code == 0, err
    saved = read_json(trained_run.run_dir / RunFiles.METRICS)
    assert out.splitlines()[0].startswith(f"test: accuracy {saved['accuracy']:.4f}")
    for name in trained_run.classes:
        assert name in out
    assert "confusion matrix" in out


def test_evaluate_json_matches_metrics_json(trained_run, capsys):
    code, out, err = run_cli(capsys, "evaluate", trained_run.run_dir, "--format", "json")
    assert code == 0, err
    reported = json.loads(out)
    saved = read_json(trained_run.run_dir / RunFiles.METRICS)
    assert reported["accuracy"] == pytest.approx(saved["accuracy"])
    assert reported["n"] == saved["n"]
    assert reported["confusion_matrix"] == saved["confusion_matrix"]


def test_evaluate_a_folder_lists_skipped_files(trained_run, capsys, tmp_path):
    folder = make_dataset(tmp_path / "extra", {"cat": 2, "dog": 2}, fmt="jpg", seed=8)
    (folder / "cat" / "notes.txt").write_text("x")
    code, out, err = run_cli(capsys, "evaluate", trained_run.run_dir, folder)
    assert code == 0, err
    assert out.splitlines()[0].startswith("extra/all: accuracy")
    assert "n=4" in out.splitlines()[0]
    assert f"skipped {folder / 'cat' / 'notes.txt'}: not an image file extension (.txt)" in out
    assert (trained_run.run_dir / RunFiles.EVALUATIONS / "extra" / RunFiles.METRICS).is_file()


# ---------------------------------------------------------------------------- user errors: one
# line, exit 2 (usage) or 1 (data)


def test_error_nonexistent_data_path(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", tmp_path / "no_such_folder", "--model", "cnn")
    assert_user_error(code, err, "data folder", "no_such_folder", "does not exist", status=1)


def test_error_one_class_folder(capsys, tmp_path):
    data = make_dataset(tmp_path / "solo", {"cat": 3})
    code, _, err = run_cli(capsys, "train", data, "--model", "cnn")
    assert_user_error(code, err, "only one class folder ('cat')", "at least two classes", status=1)


def test_error_empty_class_folder(capsys, tmp_path):
    data = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    (data / "emu").mkdir()
    code, _, err = run_cli(capsys, "train", data, "--model", "cnn")
    assert_user_error(code, err, "class folder 'emu'", "has no usable images", status=1)


def test_error_unknown_model_lists_known_models(capsys, flat2, tmp_path):
    code, _, err = run_cli(capsys, "train", flat2, "--model", "resnet", "--out", tmp_path / "runs")
    line = assert_user_error(code, err, "`--model`", "'resnet'")
    for spec in list_models():
        assert spec.name in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_error_predict_on_a_folder_that_is_not_a_run(capsys, flat2):
    code, _, err = run_cli(capsys, "predict", flat2, flat2 / "cat")
    assert_user_error(
        code, err, "is not an imgclf run folder", "pass a folder made by `imgclf train`", status=1
    )


def test_error_evaluate_a_missing_run(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "runs" / "ghost")
    assert_user_error(code, err, "run folder", "ghost", "does not exist", status=1)


@pytest.mark.parametrize(
    "value, allowed",
    [
        ("1.5", "expected a number in (0, 1)"),
        ("0", "expected a number in (0, 1)"),
        ("-0.2", "expected a number in (0, 1)"),
    ],
)
def test_error_bad_val_fraction(capsys, flat2, value, allowed):
    code, _, err = run_cli(capsys, "train", flat2, "--val-fraction", value)
    assert_user_error(code, err, "`--val-fraction`", f"received {float(value)!r}", allowed)


@pytest.mark.parametrize(
    "argv, named, allowed",
    [
        (["--time", "0s"], "`--time`", "(it must be more than 0)"),
        (["--time-budget=-1m"], "`--time-budget`", "(it must be more than 0)"),
        (["--learning-rate", "0"], "`--learning-rate`", "a number in (0, 10)"),
        (["--batch-size", "0"], "`--batch-size`", "an integer >= 1"),
        (["--test-fraction", "1"], "`--test-fraction`", "a number in [0, 1)"),
        (["--label-smoothing", "0.7"], "`--label-smoothing`", "a number in [0, 0.5)"),
        (["--image-size", "8"], "`--image-size`", "an integer from 32 to 1024"),
        (["--fine-tune", "half"], "`--fine-tune`", "'auto', 'all', 'none'"),
        (
            ["--val-fraction", "0.5", "--test-fraction", "0.45"],
            "`--val-fraction + --test-fraction`",
            "a sum below 0.9",
        ),
    ],
)
def test_option_errors_name_the_flag_as_typed_and_the_real_range(
    capsys, flat2, argv, named, allowed
):
    code, _, err = run_cli(capsys, "train", flat2, *argv)
    line = assert_user_error(code, err, named, allowed)
    assert "_" not in line.split("`")[1]  # no keyword spelling (val_fraction) on the command line


def test_a_flag_abbreviation_is_named_as_the_flag_it_stands_for(capsys, flat2):
    code, _, err = run_cli(capsys, "train", flat2, "--val-frac", "0")
    assert_user_error(code, err, "`--val-fraction`", "a number in (0, 1)")


def test_a_bad_value_from_the_config_file_is_named_by_its_key(capsys, flat2, tmp_path):
    options = tmp_path / "o.yaml"
    options.write_text("val_fraction: 0\n")
    code, _, err = run_cli(capsys, "train", flat2, "--config", options)
    assert_user_error(code, err, "`val_fraction` (in config file", "o.yaml", "a number in (0, 1)")


def test_doctor_option_errors_name_the_flag(capsys, flat2):
    code, _, err = run_cli(capsys, "doctor", flat2, "--near-threshold", "40")
    assert_user_error(code, err, "`--near-threshold`", "received 40", "from 0 to 32")


def test_error_negative_seed(capsys, flat2, tmp_path):
    code, _, err = run_cli(
        capsys, "train", flat2, "--model", "cnn", "--seed", "-1", "--out", tmp_path / "runs"
    )
    assert_user_error(code, err, "`--seed`", "received -1")


def test_error_bad_augment(capsys, flat2):
    code, _, err = run_cli(capsys, "train", flat2, "--augment", "flip,rotate=400")
    assert_user_error(code, err, "`--augment`", "'rotate=400'", "rotate in (0, 180]")


def test_error_unknown_key_in_config_file(capsys, flat2, tmp_path):
    options = tmp_path / "o.yaml"
    options.write_text("epochz: 3\n")
    code, _, err = run_cli(capsys, "train", flat2, "--config", options)
    assert_user_error(code, err, "unknown config file option 'epochz'", "did you mean 'epochs'?")


def test_error_missing_config_file(capsys, flat2, tmp_path):
    code, _, err = run_cli(capsys, "train", flat2, "--config", tmp_path / "missing.yaml")
    assert_user_error(code, err, "`--config`", "missing.yaml")


def test_error_evaluate_unknown_class(trained_run, capsys, tmp_path):
    folder = make_dataset(tmp_path / "zoo", {"cat": 2, "yak": 2}, fmt="jpg")
    code, _, err = run_cli(capsys, "evaluate", trained_run.run_dir, folder)
    assert_user_error(
        code, err, "class 'yak'", "is not one of the run's classes: cat, dog, fox", status=1
    )


def test_error_predict_missing_file(trained_run, capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", trained_run.run_dir, tmp_path / "ghost.jpg")
    assert_user_error(code, err, "ghost.jpg", "does not exist", status=1)


def test_error_predict_top_k_zero(trained_run, capsys):
    code, _, err = run_cli(
        capsys, "predict", trained_run.run_dir, first_image(trained_run), "--top-k", "0"
    )
    assert_user_error(code, err, "`--top-k`", "received 0")


def test_argparse_errors_exit_2_without_traceback(capsys, flat2):
    with pytest.raises(SystemExit) as info:
        main(["train", str(flat2), "--val-fraction", "abc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--val-fraction" in err and "invalid float value: 'abc'" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["train", str(flat2), "--modle", "cnn"])
    assert info.value.code == 2
    assert "unrecognized arguments: --modle" in capsys.readouterr().err


def test_error_model_is_a_folder(capsys, flat2, tmp_path):
    code, _, err = run_cli(
        capsys, "train", flat2, "--model", str(tmp_path), "--out", tmp_path / "runs"
    )
    assert_user_error(
        code, err, "is a folder", "expected a .keras file", status=1
    )  # ModelError: a model problem


@pytest.mark.parametrize(
    "argv", [["train", "x", "--epochs", "many"], ["train", "x", "--no-such-flag"], ["nonsense"]]
)
def test_argparse_errors_are_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("imgclf: error: "), err


@pytest.mark.parametrize(
    "command, keeps",
    [("report", True), ("train", True), ("export", True), ("evaluate", False), ("doctor", True)],
)
def test_write_advice_names_out_only_for_commands_that_have_it(command, keeps):
    parser = cli.build_parser()
    message = "cannot write 'x': the file system is read-only; pass --out to a writable folder"
    shown = cli._true_advice(message, parser.commands[command])
    assert ("--out" in shown) is keeps
    assert shown.startswith("cannot write 'x': the file system is read-only")
