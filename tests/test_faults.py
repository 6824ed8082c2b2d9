"""Faults a real machine throws at `imgclf train`, each through the real entry point: SIGKILL
mid-epoch and ``--resume``, a kill before the first epoch, Ctrl-C (SIGINT) at many points of a run,
a read-only ``--out``, a disk that fills while a checkpoint is written, and a ``--model`` file that
is not a (safe) Keras model.

Tolerance of the resume comparison: after a resume the data order and augmentation draws differ from
the uninterrupted run (the random state is not saved), so the resumed run is only *close*: its final
val_loss within 0.25 of the uninterrupted run's and its test accuracy within one test image plus 10
%.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest
from helpers import history_rows, make_dataset, manifest_rows, tree_hashes

import imgclf
from imgclf.cli import main
from imgclf.models.loading import load_model_file
from imgclf.runs import RunFiles, read_json, run_status

ROOT = Path(__file__).resolve().parent.parent
CNN = {"model": "cnn", "image_size": 32, "batch_size": 8, "augment": "none", "epochs": 4, "seed": 7}
CNN_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in CNN.items()] + ["--no-report"]

pytestmark = pytest.mark.usefixtures("private_cache")


def imgclf_process(*argv) -> subprocess.Popen:
    """``python -m imgclf ARGV`` from this checkout, with the test's own cache."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "imgclf", *map(str, argv)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen, path: Path, timeout: float = 300, epochs: int = 0) -> None:
    """SIGKILL ``proc`` as soon as ``path`` exists (polled every 10 ms); with ``epochs``, once
    ``path`` (``state.json``) says that many epochs are done."""
    end = time.monotonic() + timeout

    def ready() -> bool:
        if not path.exists():
            return False
        return not epochs or read_json(path).get("stage_epochs", 0) >= epochs

    while not ready():
        assert proc.poll() is None, (
            f"the run ended before {path.name} appeared: {proc.communicate()}"
        )
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgclf: error: ") and "Traceback" not in err, (
        err
    )
    return lines[0]


# ---------------------------------------------------------------------------- SIGKILL and --resume


@pytest.mark.subprocess
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, capsys):
    data = make_dataset(tmp_path / "pets", {"cat": 16, "dog": 16}, seed=41)
    out = tmp_path / "runs"
    straight = imgclf.train(data, out=str(out), name="straight", verbose=0, report=False, **CNN)
    proc = imgclf_process("train", data, "--out", out, "--name", "killed", *CNN_FLAGS)
    run_dir = out / "killed"
    # the first epoch's checkpoint is whole: epoch 2 is under way
    kill_when(proc, run_dir / RunFiles.STATE, epochs=1)
    state = read_json(run_dir / RunFiles.STATE)
    assert state["stage"] == "train" and 1 <= state["stage_epochs"] < CNN["epochs"]
    assert not (run_dir / RunFiles.METRICS).exists()  # it did not finish
    assert not [
        p.name for p in run_dir.iterdir() if p.name.startswith(".")
    ]  # no temporary file passed off

    code, stdout, stderr = cli(capsys, "train", "--resume", run_dir, "--quiet")
    assert code == 0, stderr
    assert stdout.startswith(f"{run_dir}\taccuracy=") and stdout.rstrip().endswith("interrupted=no")
    rows = history_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, CNN["epochs"] + 1))  # each epoch once
    reference = history_rows(straight.run_dir)
    assert rows[0] == {
        **reference[0],
        "seconds": rows[0]["seconds"],
    }  # the epoch before the kill: same seed, same numbers
    assert abs(float(rows[-1]["val_loss"]) - float(reference[-1]["val_loss"])) < 0.25
    metrics, expected = (
        read_json(run_dir / RunFiles.METRICS),
        read_json(straight.run_dir / RunFiles.METRICS),
    )
    n_test = sum(r["split"] == "test" for r in manifest_rows(run_dir))
    assert metrics["interrupted"] is False and metrics["n"] == expected["n"] == n_test
    assert abs(metrics["accuracy"] - expected["accuracy"]) <= 1 / n_test + 0.1
    assert not (run_dir / RunFiles.LAST).exists() and not (run_dir / RunFiles.STATE).exists()


@pytest.mark.subprocess
def test_a_run_killed_before_its_first_epoch_is_incomplete_and_resumes_from_the_start(
    tmp_path, capsys
):
    data = make_dataset(tmp_path / "pets", {"cat": 16, "dog": 16}, seed=42)
    proc = imgclf_process("train", data, "--out", tmp_path / "runs", *CNN_FLAGS)
    run_dir = tmp_path / "runs" / "pets"
    kill_when(proc, run_dir / RunFiles.STATE)  # the folder is set up; no epoch has finished
    assert read_json(run_dir / RunFiles.STATE)["trained"] is False
    assert run_status(run_dir) == "incomplete"
    code, stdout, stderr = cli(capsys, "predict", run_dir, data)
    line = one_line(stderr)
    assert code == 1 and stdout == "" and f"`imgclf train --resume {run_dir}`" in line, line
    code, stdout, stderr = cli(capsys, "train", "--resume", run_dir, "--quiet")
    assert code == 0, stderr
    assert [int(r["epoch"]) for r in history_rows(run_dir)] == list(range(1, CNN["epochs"] + 1))
    assert run_status(run_dir) == "complete"


# ---------------------------------------------------------------------------- Ctrl-C anywhere

SIGINT_POINTS = [  # (a line of the run's output, seconds after it): where SIGINT is sent
    ("doctor:", 0.0),  # scanning and planning, before the run folder exists
    ("run folder:", 0.0),  # the folder is set up; the first fit is about to trace its step
    ("Epoch 1/", 0.05),  # inside the first epoch (its step traced, batches running)
    ("Epoch 2/", 0.0),  # after the first checkpoint
    ("Epoch 3/", 0.3),
]


def sigint_after(proc: subprocess.Popen, marker: str, delay: float, timeout: float = 120):
    """Send SIGINT ``delay`` seconds after ``marker`` appears in ``proc``'s output; returns the
    output before it."""
    seen = []
    end = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            return "".join(seen)
        assert time.monotonic() < end, f"{marker!r} did not appear: {''.join(seen)}"
    raise AssertionError(f"the run ended before {marker!r}: {''.join(seen)}")


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize(("marker", "delay"), SIGINT_POINTS)
def test_sigint_anywhere_exits_130_and_leaves_a_run_that_resumes_or_none(
    tmp_path, capsys, marker, delay
):
    """Ctrl-C at any point of a run is never lost: exit 130, and the run folder (if there is one
    yet) says whether it is usable and how to resume it."""
    data = make_dataset(tmp_path / "pets", {"cat": 16, "dog": 16}, seed=43)
    flags = [f for f in CNN_FLAGS if not f.startswith("--epochs")] + ["--epochs=6"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgclf", "train", str(data), "--out", str(tmp_path / "runs")]
        + flags,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        before = sigint_after(proc, marker, delay)
        rest, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, before + rest
    run_dir = tmp_path / "runs" / "pets"
    if not run_dir.exists():  # stopped before the run folder was made: nothing to resume
        assert marker == "doctor:", rest
        return
    status = run_status(run_dir)
    assert (run_dir / RunFiles.STATE).is_file(), rest  # what --resume continues from
    assert status in ("interrupted", "incomplete"), rest
    if status == "incomplete":  # untrained: refused, with the way to continue it
        code, _, stderr = cli(capsys, "predict", run_dir, data)
        assert code == 1 and "--resume" in one_line(stderr)
    if marker == "Epoch 3/":  # two epochs were checkpointed: they are kept
        state = read_json(run_dir / RunFiles.STATE)
        assert status == "interrupted" and state["stage_epochs"] >= 2, state


# ---------------------------------------------------------------------------- writing faults


def test_disk_full_while_saving_a_checkpoint(tmp_path, capsys, monkeypatch):
    """ENOSPC injected into Keras' save after the first checkpoint: one line naming the file, exit
    1; the best model saved before is whole and loads; no partial file; an earlier run in --out is
    untouched."""
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=43)
    out = tmp_path / "runs"
    earlier = out / "earlier"  # another run's files, already there
    earlier.mkdir(parents=True)
    (earlier / RunFiles.MODEL).write_bytes(b"an earlier run's model")
    (earlier / RunFiles.METRICS).write_text("{}")
    before = tree_hashes(earlier)
    real_save, saves = keras.Model.save, []

    def save(model, path, *args, **kwargs):
        saves.append(Path(path))
        if len(saves) == 1:
            return real_save(model, path, *args, **kwargs)
        Path(path).write_bytes(
            b"PK\x03\x04" + b"\0" * 4096
        )  # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", save)
    code, _, stderr = cli(capsys, "train", data, "--out", out, "--name", "full", *CNN_FLAGS)
    line = one_line(stderr)
    assert code == 1
    run_dir = out / "full"
    assert line == (
        f"imgclf: error: cannot write '{run_dir / RunFiles.LAST}': the disk is full; free "
        "some space or pass --out on "
        "another disk (no partial file was left)"
    )
    assert load_model_file(run_dir / RunFiles.MODEL).output_shape == (
        None,
        1,
    )  # the first save, whole
    assert not [
        p.name for p in run_dir.iterdir() if p.name.startswith(".") or p.name == RunFiles.LAST
    ]
    assert tree_hashes(earlier) == before


def _read_only_mount_works() -> bool:
    return (
        shutil.which("unshare") is not None
        and subprocess.run(
            ["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt"],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


@pytest.mark.skipif(
    not _read_only_mount_works(), reason="needs a private mount namespace (unshare -rm)"
)
@pytest.mark.subprocess
def test_read_only_out_folder(tmp_path):
    """A real read-only mount of --out (in a private mount namespace): one line, exit 1, nothing
    written,
    the runs already there untouched."""
    data = make_dataset(tmp_path / "pets", {"cat": 8, "dog": 8}, seed=44)
    out = tmp_path / "runs"
    (out / "earlier").mkdir(parents=True)
    (out / "earlier" / RunFiles.MODEL).write_bytes(b"an earlier run's model")
    before = tree_hashes(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    argv = [sys.executable, "-m", "imgclf", "train", str(data), "--out", str(out), *CNN_FLAGS]
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(out), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert (
        line == f"imgclf: error: cannot write '{out / 'pets'}': the file system is read-only; "
        "pass --out to a writable folder"
    )
    assert tree_hashes(out) == before


# ---------------------------------------------------------------------------- --model files that
# are not models


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_models")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save(d / "lambda.keras")
    good = d / "good.keras"
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs)).save(good)
    (d / "truncated.keras").write_bytes(good.read_bytes()[:-200])
    (d / "notes.keras").write_text("not a model")
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize(
    "name, says",
    [
        ("notes", "it is not a Keras model"),
        ("truncated", "the file is truncated or damaged"),
        ("lambda", "it contains Python code (a `Lambda` layer"),
    ],
)
def test_model_flag_pointing_at_a_bad_file(tmp_path, capsys, bad_models, name, says):
    data = make_dataset(tmp_path / "pets", {"cat": 6, "dog": 6}, seed=45)
    code, _, stderr = cli(
        capsys,
        "train",
        data,
        "--model",
        bad_models[name],
        "--image-size",
        "32",
        "--out",
        tmp_path / "runs",
    )
    line = one_line(stderr)
    assert code == 1
    assert line.startswith(
        f"imgclf: error: cannot load the backbone {str(bad_models[name])!r}: {says}"
    ), line
    assert "safe_mode" not in line and "File not found" not in line
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
