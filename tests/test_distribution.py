"""Training on several devices and hosts (issue 20.1): ``--devices``, TF_CONFIG multi-worker
training, the mixed-precision policy and the NaN stop.

TensorFlow fixes its devices at first use, so the runs on two logical CPU devices and the workers
of a multi-worker run each start a fresh interpreter (``subprocess``); they are kept few and tiny
(the session's small backbone file, 32 px, a few dozen images, 1-2 epochs per stage).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers import make_distinct_dataset

from imgclf.cli import main
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError, InvalidValue, ModelError
from imgclf.runs import RunFiles, read_json
from imgclf.training import distribution, trainer
from imgclf.training.callbacks import SaveLast, StopOnNaN
from imgclf.training.distribution import (
    SINGLE,
    Distribution,
    choose_distribution,
    read_tf_config,
)
from imgclf.training.multiworker_checks import check_multi_worker, check_multi_worker_data
from imgclf.training.precision import choose_precision

REPO = Path(__file__).resolve().parent.parent
# the 2-device run's test accuracy may differ from the 1-device run's by at most this (the same
# data, seed and per-device batch; the learning rate scaled by the replicas): two of its 12 test
# images; measured here: 1.000 on two devices, 0.833 on one, after 4 head epochs + 1 fine-tuning
ACCURACY_TOLERANCE = 0.2
WORKER_TIMEOUT_S = 20  # $IMGCLF_WORKER_TIMEOUT of the multi-worker tests
WORKERS_BOUND_S = 240  # a multi-worker test's processes must be done within this
TWO_DEVICES_BOUND_S = 900  # the two-device script (three runs) must be done within this: no hang


# ------------------------------------------------------------------------ options and policies


def test_bad_devices_are_one_line_naming_the_flag(capsys, flat2):
    for value in ("0", "x", "-1"):
        code = main(["train", str(flat2), "--devices", value])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "`--devices`" in err and repr(value) in err
        assert "'auto' or a number of devices >= 1" in err
    code = main(["train", str(flat2), "--mixed-precision", "half"])
    err = capsys.readouterr().err
    assert code == 2 and "`--mixed-precision`" in err and "one of auto, on, off" in err


class FakeGPU:
    def __init__(self, capability):
        self.capability = capability


def fake_gpus(monkeypatch, capabilities):
    gpus = [FakeGPU(c) for c in capabilities]
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: gpus if kind == "GPU" else real(kind),
    )
    monkeypatch.setattr(
        tf.config.experimental,
        "get_device_details",
        lambda gpu: {"compute_capability": gpu.capability},
    )


def test_more_devices_than_gpus_is_a_clear_error(monkeypatch):
    fake_gpus(monkeypatch, [(8, 0), (8, 0)])
    with pytest.raises(InvalidValue) as caught:
        choose_distribution(TrainConfig(data="d", devices="4"))
    assert "devices" in str(caught.value) and "'4'" in str(caught.value)
    assert "from 1 to 2" in str(caught.value)


@pytest.mark.parametrize(
    "setting, capabilities, policy",
    [
        ("auto", [(8, 0)], "mixed_float16"),  # an A100: tensor cores
        ("auto", [(7, 0), (8, 6)], "mixed_float16"),
        ("auto", [(6, 1)], "float32"),  # a Pascal card gains nothing from float16
        ("auto", [(8, 0), (6, 1)], "float32"),  # every GPU must support it
        ("on", [(6, 1)], "mixed_float16"),
        ("off", [(9, 0)], "float32"),
        ("auto", [], "float32"),  # no GPU: float32 whatever is asked
        ("on", [], "float32"),
    ],
)
def test_mixed_precision_policy_follows_the_gpus(monkeypatch, setting, capabilities, policy):
    fake_gpus(monkeypatch, capabilities)
    assert choose_precision(setting) == policy


def test_one_device_is_the_single_device_path():
    """Without a GPU, auto and 1 mean today's path: no strategy object at all."""
    for devices in ("auto", "1"):
        dist = choose_distribution(TrainConfig(data="d", devices=devices))
        assert (
            dist is SINGLE
            and dist.strategy is None
            and dist.record()
            == {
                "strategy": "none",
                "replicas": 1,
            }
        )
    assert SINGLE.batch_for(32, 5) == 32 and SINGLE.learning_rate(1e-3) == 1e-3


def test_the_global_batch_gives_every_replica_rows():
    two = Distribution("mirrored", 2)
    assert two.batch_for(8, 100) == 16  # 100 = 6 × 16 + 4
    assert two.batch_for(8, 33) == 14  # 16 would leave a last batch of 1: a replica without rows
    assert two.batch_for(8, 9) == 6  # fewer rows than a batch: an even first batch, last of 3
    assert two.learning_rate(1e-3) == 2e-3
    with pytest.raises(InvalidValue, match="devices"):
        two.batch_for(8, 1)


def test_tf_config_is_read(monkeypatch):
    cluster = {"worker": ["localhost:1", "localhost:2", "localhost:3"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"index": 2}}))
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        read_tf_config()
    task = {"type": "worker", "index": 2}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert read_tf_config() == (2, 3)
    chief = {**cluster, "chief": ["localhost:0"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": chief, "task": task}))
    assert read_tf_config() == (3, 4)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not a valid cluster description"):
        read_tf_config()
    monkeypatch.delenv("TF_CONFIG")
    assert read_tf_config() == (0, 1)


def test_multi_worker_refuses_what_it_does_not_support():
    cfg = TrainConfig(data="d")
    check_multi_worker(cfg, pretrained=True, cached=True)
    check_multi_worker(TrainConfig(data="d", time_budget="5m"), pretrained=True, cached=True)
    for args, what in [
        ((cfg, False, True), "--model cnn"),
        ((cfg, True, False), "--fine-tune all"),
        ((TrainConfig(data="d", ema=0.99), True, True), "--ema"),
    ]:
        with pytest.raises(ConfigError, match="multi-worker training") as caught:
            check_multi_worker(*args)
        assert what in str(caught.value)


def test_multi_worker_refuses_drop_label_issues_before_reading_any_image(
    tmp_path, monkeypatch, capsys
):
    check_multi_worker_data(TrainConfig(data="d"))
    with pytest.raises(ConfigError, match="does not support --drop-label-issues"):
        check_multi_worker_data(TrainConfig(data="d", drop_label_issues=True))
    # the trainer asks before the setup: no scan, no doctor, no label check, no run folder
    data = make_distinct_dataset(tmp_path / "d", {"a": 6, "b": 6}, fmt="png")
    cluster = distribution.Distribution(kind="multi_worker", replicas=2, workers=2)
    monkeypatch.setattr(trainer, "configure_devices", lambda cfg: cluster)
    monkeypatch.setattr(trainer, "new_run", lambda *a: pytest.fail("the setup started"))
    argv = ["train", str(data), "--drop-label-issues", "--out", str(tmp_path / "runs")]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--drop-label-issues" in err[0] and "doctor DATA --labels" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_nan_loss_stops_the_fit_before_anything_is_saved(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), np.float32)
    x[3] = np.nan
    last = tmp_path / "last.keras"
    with pytest.raises(ModelError) as caught:
        model.fit(
            x,
            np.zeros(8),
            batch_size=4,
            epochs=2,
            shuffle=False,  # the NaN row in the first batch, whatever the random state
            verbose=0,
            callbacks=[StopOnNaN("head"), SaveLast(last)],
        )
    message = str(caught.value)
    assert "loss became nan in stage head, batch 1 of its first epoch" in message
    assert "--mixed-precision off" in message and "Lower the learning rate" in message
    assert not last.exists()  # the diverged epoch was never checkpointed


def test_the_worker_timeout_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("IMGCLF_WORKER_TIMEOUT", "12.5")
    assert distribution.worker_timeout() == 12.5
    monkeypatch.setenv("IMGCLF_WORKER_TIMEOUT", "soon")
    with pytest.raises(InvalidValue, match="IMGCLF_WORKER_TIMEOUT"):
        distribution.worker_timeout()


# ------------------------------------------------------------------ two logical CPU devices

TWO_DEVICES = """
import json, sys
import imgclf
from imgclf.config import TrainConfig
from imgclf.training.callbacks import HistoryCSV
from imgclf.training.trainer import train_run

data, out, backbone = sys.argv[1:4]
kw = dict(model=backbone, image_size=32, head_epochs=4, epochs=1, batch_size=4, augment="none",
          learning_rate=0.01, test_fraction=0.25, verbose=0, report=False, out=out, seed=5)
original = HistoryCSV.on_epoch_end

def ctrl_c(self, epoch, logs=None):  # Ctrl-C once the first fine-tuning epoch is logged
    original(self, epoch, logs)
    if self.stage == "fine_tune":
        raise KeyboardInterrupt

HistoryCSV.on_epoch_end = ctrl_c
two = imgclf.train(data, name="two", devices="2", **kw)
HistoryCSV.on_epoch_end = original
state = json.loads((two.run_dir / "state.json").read_text())
resumed = train_run(TrainConfig(data="(resumed)"), verbose=0, resume_dir=two.run_dir)
one = imgclf.train(data, name="one", devices="1", **kw)  # same process: the one-device path

# what --time measures under the strategy: each batch split over the replicas, same results
import keras, numpy as np
from imgclf.training.distribution import choose_distribution, replicas_in_scope, replicated
dist = choose_distribution(TrainConfig(data="d", devices="2"))
with dist.scope():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.arange(15, dtype="float32").reshape(5, 3)
    measured = [replicas_in_scope(), replicated(lambda a: dense(a))(x).numpy().tolist()]
print(json.dumps({
    "replicated": measured + [dense(x).numpy().tolist()],
    "cut": [two.interrupted, state],
    "two": [str(resumed.run_dir), resumed.interrupted, resumed.metrics.accuracy, resumed.metrics.n],
    "one": [str(one.run_dir), one.metrics.accuracy],
}))
"""


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory, tiny_backbone):
    base = tmp_path_factory.mktemp("two_devices")
    data = make_distinct_dataset(base / "data", {"cat": 16, "dog": 16, "fox": 16}, seed=3)
    env = {**os.environ, "IMGCLF_CACHE": str(base / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", TWO_DEVICES, str(data), str(base / "runs"), tiny_backbone],
        capture_output=True,
        text=True,
        env=env,
        timeout=TWO_DEVICES_BOUND_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
def test_a_two_device_run_interrupted_in_fine_tuning_resumes(two_devices):
    interrupted, state = two_devices["cut"]
    # the Ctrl-C came as fine-tuning's first epoch was logged, before it was checkpointed
    assert interrupted and state["stage"] == "fine_tune" and state["stage_epochs"] == 0
    run_dir, resumed_interrupted = Path(two_devices["two"][0]), two_devices["two"][1]
    assert not resumed_interrupted
    assert not (run_dir / RunFiles.STATE).exists()  # finished
    assert (run_dir / RunFiles.MODEL).is_file() and (run_dir / RunFiles.METRICS).is_file()
    stages = [line.split(",")[0] for line in (run_dir / RunFiles.HISTORY).open()][1:]
    assert stages == ["head"] * 4 + ["fine_tune"]  # the cut epoch's row dropped, then redone


@pytest.mark.subprocess
def test_time_measures_a_forward_pass_split_over_the_replicas(two_devices):
    replicas, split, whole = two_devices["replicated"]
    assert replicas == 2
    np.testing.assert_allclose(split, whole, rtol=1e-6)


@pytest.mark.subprocess
def test_two_logical_devices_record_the_strategy_and_hold_accuracy(two_devices):
    run_dir = Path(two_devices["two"][0])
    config = yaml.safe_load((run_dir / RunFiles.CONFIG).read_text())
    assert config["distribution"] == {"strategy": "mirrored", "replicas": 2}
    assert config["devices"] == "2"
    one = yaml.safe_load((Path(two_devices["one"][0]) / RunFiles.CONFIG).read_text())
    assert one["distribution"] == {"strategy": "none", "replicas": 1}
    # the same data, seed and per-device batch: the test accuracy holds within the tolerance
    two_acc, n, one_acc = two_devices["two"][2], two_devices["two"][3], two_devices["one"][1]
    assert n >= 12
    assert abs(two_acc - one_acc) <= ACCURACY_TOLERANCE, (two_acc, one_acc)


# ---------------------------------------------------------------- two workers on loopback


def free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch_workers(base: Path, argv: list[str], name: str, out: bool = True) -> list:
    """Two ``imgclf train ARGV`` worker processes of one ``TF_CONFIG`` cluster on loopback ports,
    each with its own cache, log (``NAME<index>.log``) and, when ``out``, ``--out``."""
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "IMGCLF_CACHE": str(base / f"cache{index}"),
            "IMGCLF_WORKER_TIMEOUT": str(WORKER_TIMEOUT_S),
            "PYTHONUNBUFFERED": "1",
        }
        full = [sys.executable, "-m", "imgclf", "train", *argv]
        if out:
            full += ["--out", str(base / f"out{index}")]
        log = open(base / f"{name}{index}.log", "w")
        procs.append((subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    return procs


def start_workers(base: Path, data: Path, backbone: str, head_epochs: int, name: str):
    argv = [str(data), "--model", backbone, "--image-size", "32"]
    argv += ["--head-epochs", str(head_epochs), "--epochs", "1"]
    argv += ["--batch-size", "8", "--augment", "none", "--no-report", "--name", name]
    return launch_workers(base, argv, name)


def finish(procs, base: Path, name: str, end: float | None = None) -> list[tuple[int, str]]:
    """Each worker's exit status and log, waiting until ``end`` (``time.monotonic()``; default
    :data:`WORKERS_BOUND_S` from now); a worker still running then fails the test as a hang."""
    end = time.monotonic() + WORKERS_BOUND_S if end is None else end
    out = []
    for index, (proc, log) in enumerate(procs):
        try:
            code = proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other, _ in procs:
                other.kill()
            pytest.fail(f"worker {index} of {name} still running after {WORKERS_BOUND_S}s: a hang")
        log.close()
        out.append((code, (base / f"{name}{index}.log").read_text()))
    return out


@pytest.fixture(scope="module")
def workers(tmp_path_factory, tiny_backbone):
    base = tmp_path_factory.mktemp("workers")
    data = make_distinct_dataset(base / "data", {"cat": 12, "dog": 12}, seed=4)
    return base, data, tiny_backbone


@pytest.mark.subprocess
def test_two_workers_train_and_only_the_chief_writes_the_run(workers):
    base, data, backbone = workers
    (code0, log0), (code1, log1) = finish(start_workers(base, data, backbone, 2, "mw"), base, "mw")
    assert code0 == 0 and code1 == 0, log0[-2000:] + log1[-2000:]
    run_dir = base / "out0" / "mw"
    for name in (RunFiles.MODEL, RunFiles.METRICS, RunFiles.HISTORY, RunFiles.SPLIT):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / RunFiles.STATE).exists()  # finished
    config = yaml.safe_load((run_dir / RunFiles.CONFIG).read_text())
    assert config["distribution"] == {"strategy": "multi_worker", "replicas": 2}
    assert read_json(run_dir / RunFiles.METRICS)["n"] > 0
    assert not (base / "out1").exists()  # the other worker wrote nothing to its --out
    assert "worker 1 of 2: the chief (worker 0) writes the run folder" in log1
    # both workers computed the same validation losses (every epoch's logs are all-reduced)
    head0 = [line for line in log0.splitlines() if line.startswith("  head: val_loss")]
    head1 = [line for line in log1.splitlines() if line.startswith("  head: val_loss")]
    assert head0 and head0 == head1


@pytest.mark.subprocess
def test_a_killed_worker_is_a_clear_error_on_the_other_within_the_bound(workers):
    base, data, backbone = workers
    procs = start_workers(base, data, backbone, 200, "kill")
    log1 = base / "kill1.log"
    end = time.monotonic() + WORKERS_BOUND_S
    while "stage head" not in log1.read_text() and time.monotonic() < end:
        if procs[1][0].poll() is not None:
            break
        time.sleep(0.2)
    procs[1][0].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    (code0, log0), _ = finish(procs, base, "kill")
    assert code0 != 0, log0[-2000:]
    assert time.monotonic() - killed < WORKER_TIMEOUT_S * 3
    errors = [line for line in log0.splitlines() if line.startswith("imgclf: error:")]
    assert len(errors) == 1, log0[-3000:]
    assert "worker 0 of 2" in errors[0] and "start every worker again" in errors[0]
    assert "Traceback" not in log0
