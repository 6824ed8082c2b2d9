"""imgclf predict: inputs (folders, globs, list files), unsure, threshold, TTA, output written as it
goes, resume, the CSV round trip, exit statuses, Ctrl-C and progress (issues 9 and 11)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import train_tiny_run, write_bad_files
from PIL import Image

from imgclf import runtime
from imgclf.cli import main
from imgclf.errors import ConfigError, DataError
from imgclf.serving.inputs import expand_paths
from imgclf.serving.predictor import UNSURE, load_run


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run.run_dir)


@pytest.fixture(scope="module")
def two_class_run(tmp_path_factory):
    return load_run(train_tiny_run(tmp_path_factory.mktemp("two"), {"no": 16, "yes": 16}, "binary"))


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def jpgs(trained_run, cls: str) -> list[str]:
    return [str(p) for p in sorted((trained_run.data / cls).glob("*.jpg"))]


# ---------------------------------------------------------------------------- inputs


def test_inputs_folder_glob_and_list_file(trained_run, tmp_path, monkeypatch):
    cats, dogs = jpgs(trained_run, "cat"), jpgs(trained_run, "dog")
    listed = tmp_path / "list.txt"
    listed.write_text(f"# new photos\n{dogs[0]}\n\n{dogs[1]}\n{tmp_path / 'gone.jpg'}\n")
    nested = tmp_path / "deep" / "er"
    nested.mkdir(parents=True)
    shutil.copy(cats[0], nested / "x.jpg")
    assert expand_paths([tmp_path / "deep"]) == [
        str(nested / "x.jpg")
    ]  # folders are walked recursively
    assert expand_paths([str(trained_run.data / "cat" / "cat_00*.jpg")]) == cats[:10]
    assert expand_paths([f"@{listed}"]) == [dogs[0], dogs[1], str(tmp_path / "gone.jpg")]
    assert expand_paths([cats[0]], from_file=listed) == [
        cats[0],
        dogs[0],
        dogs[1],
        str(tmp_path / "gone.jpg"),
    ]
    assert expand_paths([cats[0], cats[0]]) == [cats[0]]  # each once
    with pytest.raises(DataError, match="matches no file"):
        expand_paths([str(tmp_path / "*.png")])
    with pytest.raises(DataError, match="does not exist"):
        expand_paths([tmp_path / "missing.jpg"])
    with pytest.raises(DataError, match="path list"):
        expand_paths(["@" + str(tmp_path / "nolist.txt")])


def test_a_listed_file_that_is_gone_gets_an_error_row(run, trained_run, tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{jpgs(trained_run, 'fox')[0]}\n{tmp_path / 'gone.jpg'}\n")
    first, gone = run.predict(f"@{listed}")
    assert (
        first.ok and gone.path == str(tmp_path / "gone.jpg") and gone.error and gone.label is None
    )


# ---------------------------------------------------------------------------- unsure, threshold,
# TTA


def test_min_confidence_labels_unsure(run, trained_run):
    paths = jpgs(trained_run, "cat")[:4]
    plain = run.predict(paths)
    assert all(p.label != UNSURE for p in run.predict(paths, min_confidence=0.0))
    unsure = run.predict(paths, min_confidence=1.0)
    assert all(p.label == UNSURE for p in unsure)
    # the model's view stays visible
    assert [p.top_k for p in unsure] == [p.top_k for p in plain]
    middle = sorted(p.confidence for p in plain)[1]
    mixed = run.predict(paths, min_confidence=middle + 1e-9)
    assert [p.label == UNSURE for p in mixed] == [p.confidence <= middle for p in plain]
    with pytest.raises(ConfigError, match="min_confidence"):
        run.predict(paths, min_confidence=1.5)


def test_threshold_moves_the_two_class_decision(two_class_run, run):
    folder = two_class_run.path.parent.parent / "binary_data"
    paths = expand_paths([folder])
    probs = np.array([p.top_k for p in two_class_run.predict(paths, top_k=2)], dtype=object)
    assert len(probs) == 32
    assert {p.label for p in two_class_run.predict(paths, threshold=1e-9)} == {"yes"}
    assert {p.label for p in two_class_run.predict(paths, threshold=1 - 1e-9)} <= {"no", "yes"}
    for p in two_class_run.predict(paths, threshold=0.3):
        yes = dict(p.top_k)["yes"]
        assert p.label == ("yes" if yes >= 0.3 else "no")
        assert p.confidence == pytest.approx(yes if p.label == "yes" else 1 - yes)
    with pytest.raises(ConfigError, match="two-class"):
        run.predict(paths[:1], threshold=0.5)


def test_tta_averages_the_image_and_its_mirror(run, trained_run):
    from imgclf.data.decode import load_image

    path = jpgs(trained_run, "dog")[3]
    pixels = load_image(path, run.image_size)[None]
    expected = (run.predict_arrays(pixels) + run.predict_arrays(pixels[:, :, ::-1])) / 2
    got = dict(run.predict(path, tta=True)[0].top_k)
    np.testing.assert_allclose([got[c] for c in run.classes], expected[0], atol=1e-4)
    np.testing.assert_allclose(run.predict_arrays(pixels, tta=True), expected, atol=1e-6)


def test_the_runs_temperature_is_applied(run, trained_run, tmp_path):
    calibrated = tmp_path / "calibrated"
    shutil.copytree(trained_run.run_dir, calibrated)
    (calibrated / "calibration.json").write_text(json.dumps({"temperature": 3.0}))
    path = jpgs(trained_run, "fox")[0]
    plain, soft = run.predict(path)[0], load_run(calibrated).predict(path)[0]
    assert soft.label == plain.label and soft.confidence < plain.confidence


# ---------------------------------------------------------------------------- output, resume, CSV
# round trip


def test_output_csv_resume_skips_what_is_done(trained_run, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    cats, all_paths = jpgs(trained_run, "cat"), jpgs(trained_run, "cat") + jpgs(trained_run, "dog")
    code, stdout, err = cli(capsys, "predict", trained_run.run_dir, *cats, "--output", out)
    assert code == 0 and stdout == "" and f"predicted 20 images into {out}, 0 failed" in err
    code, _, err = cli(capsys, "predict", trained_run.run_dir, *all_paths, "--output", out)
    assert code == 2 and "already exists" in err and "--resume" in err
    code, _, err = cli(
        capsys, "predict", trained_run.run_dir, *all_paths, "--output", out, "--resume"
    )
    assert code == 0 and "predicted 20 images" in err and "20 already done" in err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["path"] for r in rows] == all_paths  # one header, each path once


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_output_json_and_jsonl_resume(trained_run, tmp_path, capsys, fmt):
    out = tmp_path / f"preds.{fmt}"
    foxes = jpgs(trained_run, "fox")
    assert cli(capsys, "predict", trained_run.run_dir, *foxes[:5], "-o", out)[0] == 0
    assert cli(capsys, "predict", trained_run.run_dir, *foxes, "-o", out, "--resume")[0] == 0
    text = out.read_text()
    rows = json.loads(text) if fmt == "json" else [json.loads(line) for line in text.splitlines()]
    assert [r["path"] for r in rows] == foxes


def test_csv_top_k_parses_back_with_any_class_name(trained_run, tmp_path, capsys):
    odd = tmp_path / "odd_run"
    shutil.copytree(trained_run.run_dir, odd)
    names = ["a:b;c", 'd,"e"', "f\tg"]
    (odd / "classes.json").write_text(json.dumps(names))
    code, out, _ = cli(
        capsys, "predict", odd, *jpgs(trained_run, "cat")[:3], "--format", "csv", "-q"
    )
    assert code == 0
    for row in csv.DictReader(io.StringIO(out)):
        top = json.loads(row["top_k"])
        assert [t["label"] for t in top] and {t["label"] for t in top} == set(names)
        assert top[0]["label"] == row["label"] and top[0]["probability"] == pytest.approx(
            float(row["confidence"]), abs=1e-6
        )


def test_top_k_has_one_shape_in_csv_json_and_jsonl(trained_run, capsys):
    """The same list of {"label", "probability"} objects in every format (issue 18.14)."""
    files = jpgs(trained_run, "dog")[:3]
    tops = {}
    for fmt in ("csv", "json", "jsonl"):
        code, out, _ = cli(capsys, "predict", trained_run.run_dir, *files, "--format", fmt, "-q")
        assert code == 0
        if fmt == "csv":
            tops[fmt] = [json.loads(r["top_k"]) for r in csv.DictReader(io.StringIO(out))]
        else:
            rows = json.loads(out) if fmt == "json" else [json.loads(x) for x in out.splitlines()]
            tops[fmt] = [r["top_k"] for r in rows]
    for fmt, top in tops.items():
        assert [[set(t) for t in row] for row in top] == [[{"label", "probability"}] * 3] * 3, fmt
        assert [[t["label"] for t in row] for row in top] == [
            [t["label"] for t in row] for row in tops["json"]
        ]
        assert np.allclose(
            [[t["probability"] for t in row] for row in top],
            [[t["probability"] for t in row] for row in tops["json"]],
            atol=1e-6,
        )


def test_an_old_csv_top_k_still_resumes():
    from imgclf.serving.output import parse_csv_row

    row = {"path": "a.jpg", "label": "cat", "confidence": "0.9", "error": ""}
    old = parse_csv_row({**row, "top_k": '[["cat", 0.9], ["dog", 0.1]]'})
    new = parse_csv_row(
        {
            **row,
            "top_k": '[{"label": "cat", "probability": 0.9}, {"label": "dog", "probability": 0.1}]',
        }
    )
    assert old == new and new["top_k"][1] == {"label": "dog", "probability": 0.1}


def test_output_to_dev_null_or_a_pipe_is_written_not_refused(trained_run, tmp_path, capsys):
    """A device or a named pipe exists but is no earlier output: no "already exists" (18.13)."""
    import os
    import threading

    good = jpgs(trained_run, "fox")[:2]
    code, _, err = cli(
        capsys, "predict", trained_run.run_dir, *good, "-o", "/dev/null", "--format", "csv"
    )
    assert code == 0 and "already exists" not in err, err
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    code, _, err = cli(capsys, "predict", trained_run.run_dir, *good, "-o", fifo, "-q")
    reader.join(timeout=60)
    assert code == 0 and [json.loads(x)["path"] for x in received[0].splitlines()] == good
    code = main(
        [
            "predict",
            str(trained_run.run_dir),
            *good,
            "-o",
            "/dev/null",
            "--format",
            "csv",
            "--resume",
        ]
    )
    assert code == 2 and "not a regular file" in capsys.readouterr().err


# ---------------------------------------------------------------------------- exit statuses,
# Ctrl-C, progress


def test_exit_statuses_and_strict(trained_run, tmp_path, capsys):
    bad = write_bad_files(tmp_path / "bad")
    good = jpgs(trained_run, "cat")[0]
    assert cli(capsys, "predict", trained_run.run_dir, good)[0] == 0
    code, out, err = cli(capsys, "predict", trained_run.run_dir, good, bad["truncated"])
    assert (
        code == 0 and "1 failed" in err and "ERROR" in out
    )  # the failure is a row, the rest predicted
    code, _, err = cli(capsys, "predict", trained_run.run_dir, good, bad["truncated"], "--strict")
    assert code == 1 and "Traceback" not in err
    assert (
        cli(capsys, "predict", trained_run.run_dir, bad["truncated"], bad["empty"])[0] == 1
    )  # none predicted
    with pytest.raises(SystemExit) as usage:
        cli(capsys, "predict", trained_run.run_dir, "--top-k", "x", good)
    assert usage.value.code == 2


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_ctrl_c_stops_at_once_and_keeps_the_output(trained_run, tmp_path, capsys, monkeypatch, fmt):
    from imgclf.serving.predictor import Run

    original = Run.iter_predict

    def interrupted(self, *args, **kwargs):  # Ctrl-C while the third batch is being predicted
        for i, chunk in enumerate(original(self, *args, **kwargs)):
            if i == 2:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(Run, "iter_predict", interrupted)
    out = tmp_path / f"preds.{fmt}"
    paths = jpgs(trained_run, "cat") + jpgs(trained_run, "dog")
    code, _, err = cli(
        capsys, "predict", trained_run.run_dir, *paths, "-o", out, "--batch-size", "4"
    )
    assert code == 130 and "Traceback" not in err and "interrupted" in err
    text = out.read_text()
    rows = (
        list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else json.loads(text)
    )  # still valid JSON
    assert [r["path"] for r in rows] == paths[:8]  # the two batches finished before Ctrl-C
    monkeypatch.undo()
    assert cli(capsys, "predict", trained_run.run_dir, *paths, "-o", out, "--resume")[0] == 0
    text = out.read_text()
    rows = list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else json.loads(text)
    assert [r["path"] for r in rows] == paths


def test_progress_lines_when_piped(trained_run, capsys, monkeypatch):
    import imgclf.progress

    monkeypatch.setattr(imgclf.progress, "PIPED_INTERVAL_S", 0.0)
    code, _, err = cli(
        capsys,
        "predict",
        trained_run.run_dir,
        trained_run.data,
        "--batch-size",
        "16",
        "--format",
        "json",
    )
    assert code == 0
    lines = [line for line in err.splitlines() if "predict:" in line]
    assert any("/60 (" in line and "/s" in line for line in lines), err
    assert "\x1b[" not in err  # no terminal control codes when piped
    assert (
        cli(capsys, "predict", trained_run.run_dir, trained_run.data, "-q", "--format", "json")[2]
        == ""
    )


def test_a_grayscale_png_and_an_rgba_image_are_predicted(run, tmp_path):
    Image.new("L", (50, 30), 128).save(tmp_path / "g.png")
    Image.new("RGBA", (20, 40), (10, 200, 30, 100)).save(tmp_path / "a.png")
    assert all(p.ok for p in run.predict([tmp_path / "g.png", tmp_path / "a.png"]))


def test_order_is_kept_around_failures_in_a_batch(run, trained_run, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    paths = [
        jpgs(trained_run, "cat")[0],
        str(bad["truncated"]),
        jpgs(trained_run, "dog")[0],
        str(bad["empty"]),
        jpgs(trained_run, "fox")[0],
    ]
    got = run.predict(paths, batch_size=2)
    assert [p.path for p in got] == paths
    assert [p.ok for p in got] == [True, False, True, False, True]
    assert Path(got[1].path).name == "truncated.jpg" or not got[1].ok


def test_the_program_ends_at_once_after_its_output(trained_run, capsys, monkeypatch):
    """`imgclf predict` as a program (argv from the command line) skips the interpreter's teardown
    (seconds after TensorFlow) once its output is flushed; called with arguments, main() returns."""
    import threading

    class Exited(Exception):
        pass

    def fake_exit(rc):
        raise Exited(rc)

    monkeypatch.setattr("os._exit", fake_exit)
    monkeypatch.setattr(
        "sys.argv",
        ["imgclf", "predict", str(trained_run.run_dir), jpgs(trained_run, "cat")[0], "-q"],
    )
    # the test process's own threads (pytest-xdist's, servers of other tests) are not the program's
    monkeypatch.setattr(runtime, "_working_threads", lambda: [])
    with pytest.raises(Exited) as exited:
        main()
    assert exited.value.args == (0,) and "cat" in capsys.readouterr().out
    busy = threading.Event()
    worker = threading.Thread(
        target=busy.wait
    )  # a thread still working: exit normally, let it finish
    worker.start()
    monkeypatch.undo()
    monkeypatch.setattr("os._exit", fake_exit)
    monkeypatch.setattr(
        "sys.argv",
        ["imgclf", "predict", str(trained_run.run_dir), jpgs(trained_run, "cat")[0], "-q"],
    )
    try:
        assert worker in runtime._working_threads()
        assert main() == 0
    finally:
        busy.set()
        worker.join()
