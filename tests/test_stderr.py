"""Standard error is for the user: no TensorFlow start-up chatter (absl's "All log messages before
absl::InitializeLog()", oneDNN's notice, native I/W log lines, TF1 deprecation notices) and no
matplotlib warnings on any command, run as a user runs them: the installed ``imgclf`` program in a
fresh process, without TF_CPP_MIN_LOG_LEVEL set."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_dataset

pytestmark = [pytest.mark.subprocess, pytest.mark.usefixtures("private_cache")]

CHATTER = re.compile(
    r"absl::InitializeLog|oneDNN|TF_ENABLE_ONEDNN_OPTS|^[IWEF]\d{4} |\.cc:\d+\]|WARNING:tensorflow"
    r"|is deprecated|cuda|Glyph \d+|findfont|UserWarning|DeprecationWarning|XNNPACK delegate",
    re.MULTILINE,
)


def imgclf(*argv, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "imgclf"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    return subprocess.run(
        [str(script), *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def assert_no_chatter(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stderr
    found = CHATTER.findall(done.stderr)
    assert not found, f"standard error holds {found}:\n{done.stderr}"


def test_the_chatter_pattern_finds_what_tensorflow_prints():
    seen = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796546921.455235   11663 port.cc:153] oneDNN custom operations are on.\n"
    )
    assert len(CHATTER.findall(seen)) >= 2


@pytest.mark.parametrize("argv", [["models"], ["train", "--help"], ["--version"]])
def test_quick_commands_write_nothing_to_stderr(argv, tmp_path):
    done = imgclf(*argv, cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == ""


def test_doctor_and_runs_keep_stderr_for_the_user(tmp_path):
    data = make_dataset(tmp_path / "pets", {"cat": 4, "dog": 4}, fmt="png", seed=3)
    assert_no_chatter(imgclf("doctor", data, cwd=tmp_path))
    (tmp_path / "runs").mkdir()
    assert_no_chatter(imgclf("runs", cwd=tmp_path))


def test_predict_evaluate_and_report_keep_stderr_for_the_user(trained_run, tmp_path):
    image = sorted((trained_run.data / "cat").glob("*.jpg"))[0]
    assert_no_chatter(
        imgclf("predict", trained_run.run_dir, image, "--engine", "keras", cwd=tmp_path)
    )
    assert_no_chatter(imgclf("evaluate", trained_run.run_dir, cwd=tmp_path))
    copy = shutil.copytree(trained_run.run_dir, tmp_path / "run")  # the TFLite copy lands in it
    # TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." when it allocates
    assert_no_chatter(imgclf("predict", copy, image, "--engine", "tflite", cwd=tmp_path))
    assert_no_chatter(imgclf("report", trained_run.run_dir, "--out", tmp_path / "r", cwd=tmp_path))


def test_train_keeps_stderr_for_the_user(tmp_path):
    data = make_dataset(tmp_path / "pets", {"cat": 8, "dog": 8}, fmt="png", seed=5)
    flags = ["--model", "cnn", "--image-size", "32", "--epochs", "1", "--augment", "none"]
    done = imgclf("train", data, *flags, "--out", tmp_path / "runs", cwd=tmp_path)
    assert_no_chatter(done)


def test_what_is_caught_during_the_import_is_passed_on_except_the_chatter(capfd):
    from imgclf.runtime import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are x\n")
        os.write(2, b"I0000 00:00:1796546921.455235   11663 port.cc:153] oneDNN custom ops\n")
        os.write(2, b"E0000 00:00:17.4 1 cuda_dnn.cc:8] Unable to register cuDNN factory\n")
        os.write(2, b"ImportError: libfoo.so: a real problem the user must see\n")
    assert capfd.readouterr().err == "ImportError: libfoo.so: a real problem the user must see\n"
