"""What the workers of a multi-worker run (two local worker processes on loopback ports,
``TF_CONFIG``) must agree on (issue 20.1), each bounded in time (a hang fails the test):

- a run stopped by a Ctrl-C on the chief alone stops on every worker after the same epoch, with
  that epoch checkpointed; ``--resume`` on both workers continues from the chief's checkpoint,
  both exit 0, and the chief's run ends complete;
- ``--time``: only the chief plans; the other worker takes its plan (a plan of its own, as asked,
  would train other epochs and wait on the chief for ever).
"""

from __future__ import annotations

import csv
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_distinct_dataset
from test_distribution import WORKERS_BOUND_S, finish, launch_workers

from imgclf.runs import RunFiles, read_json

FINE_TUNE_EPOCHS = 12  # enough that the Ctrl-C lands while fine-tuning still runs
TIMED_EPOCHS = 500  # asked of the --time run: more than its time allows, so the plan cuts them


def _start(base: Path, argv: list[str], name: str) -> list:
    return launch_workers(base, argv, name, out="--resume" not in argv)


def _fine_tuned(run_dir: Path) -> int:
    """Fine-tuning epochs the chief's state.json says are checkpointed (0 before)."""
    try:
        state = read_json(run_dir / RunFiles.STATE)
    except (OSError, ValueError):
        return 0
    return int(state.get("stage_epochs", 0)) if state.get("stage") == "fine_tune" else 0


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, tiny_backbone):
    """The interrupted run's logs and state, then the resumed run's logs."""
    base = tmp_path_factory.mktemp("mw_resume")
    data = make_distinct_dataset(base / "data", {"cat": 12, "dog": 12}, seed=4)
    argv = [str(data), "--model", tiny_backbone, "--image-size", "32", "--head-epochs", "2"]
    argv += ["--epochs", str(FINE_TUNE_EPOCHS), "--patience", str(FINE_TUNE_EPOCHS)]
    argv += ["--batch-size", "8", "--augment", "none", "--no-report", "--name", "cut"]
    end = time.monotonic() + WORKERS_BOUND_S
    procs = _start(base, argv, "cut")
    run_dir = base / "out0" / "cut"
    while _fine_tuned(run_dir) < 1 and time.monotonic() < end:
        if any(proc.poll() is not None for proc, _ in procs):
            break
        time.sleep(0.05)
    procs[0][0].send_signal(signal.SIGINT)  # Ctrl-C on the chief only
    cut = finish(procs, base, "cut", end)
    state = read_json(run_dir / RunFiles.STATE)
    end = time.monotonic() + WORKERS_BOUND_S
    again = finish(_start(base, ["--resume", str(run_dir)], "again"), base, "again", end)
    return run_dir, cut, state, again


@pytest.mark.subprocess
def test_a_ctrl_c_on_the_chief_stops_every_worker_after_the_same_epoch(resumed):
    _, ((code0, log0), (code1, log1)), state, _ = resumed
    # the chief exits as interrupted (130); the other worker's part is done (0)
    assert code0 == 130 and code1 == 0, log0[-2000:] + log1[-2000:]
    assert "interrupted: keeping the best model so far" in log0
    assert f"continue with `imgclf train --resume {resumed[0]}`" in log0
    said = "Ctrl-C on another worker; every worker stops after this stage's epoch"
    assert f"worker 1 of 2: {said} {state['stage_epochs']}" in log1
    assert "worker 1 of 2: stopped with the others (Ctrl-C)" in log1
    assert "Traceback" not in log0 + log1
    # the epoch the Ctrl-C came in was finished and checkpointed before every worker stopped
    assert state["stage"] == "fine_tune" and 1 <= state["stage_epochs"] < FINE_TUNE_EPOCHS


@pytest.mark.subprocess
def test_both_workers_resume_from_the_chiefs_checkpoint_and_complete_the_run(resumed):
    run_dir, _, state, ((code0, log0), (code1, log1)) = resumed
    assert code0 == 0 and code1 == 0, log0[-2000:] + log1[-2000:]
    done = state["stage_epochs"]
    for log in (log0, log1):
        assert f"resuming fine_tune after epoch {done}" in log
    assert "resumes from a copy of" in log1  # the other worker wrote nothing into the run folder
    assert not (run_dir / RunFiles.STATE).exists()  # finished
    assert read_json(run_dir / RunFiles.METRICS)["n"] > 0
    with open(run_dir / RunFiles.HISTORY, newline="") as fh:
        rows = [row["stage"] for row in csv.DictReader(fh)]
    assert rows[:2] == ["head", "head"]
    # fine-tuning went on from the checkpoint: no epoch repeated, none lost
    assert 1 <= rows.count("fine_tune") <= FINE_TUNE_EPOCHS and len(rows) == 2 + rows.count(
        "fine_tune"
    )
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["cut"]


@pytest.mark.subprocess
def test_every_worker_takes_the_chiefs_time_plan(tmp_path, tiny_backbone):
    data = make_distinct_dataset(tmp_path / "data", {"cat": 12, "dog": 12}, seed=4)
    argv = [str(data), "--model", tiny_backbone, "--image-size", "32", "--head-epochs", "2"]
    argv += ["--epochs", str(TIMED_EPOCHS), "--patience", str(TIMED_EPOCHS), "--time", "25s"]
    argv += ["--batch-size", "8", "--augment", "none", "--no-report", "--name", "timed"]
    end = time.monotonic() + WORKERS_BOUND_S
    (code0, log0), (code1, log1) = finish(_start(tmp_path, argv, "timed"), tmp_path, "timed", end)
    assert code0 == 0 and code1 == 0, log0[-2000:] + log1[-2000:]
    run_dir = tmp_path / "out0" / "timed"
    config = yaml.safe_load((run_dir / RunFiles.CONFIG).read_text())
    epochs = config["epochs"] if config["fine_tune"] != "none" else 0
    assert epochs < TIMED_EPOCHS  # the chief's plan cut what was asked
    said = f"worker 1 of 2: the chief's --time plan: {config['image_size']}px"
    assert said in log1 and f"{config['head_epochs']} head and {epochs} fine-tuning" in log1
    assert read_json(run_dir / RunFiles.METRICS)["n"] > 0
    assert not (run_dir / RunFiles.STATE).exists()  # finished


class _Context:  # what distribute_datasets_from_function gives an input function
    input_pipeline_id, num_input_pipelines = 1, 2


def test_a_worker_reads_only_its_rows_a_batch_at_a_time(tmp_path, monkeypatch):
    from imgclf.training.multiworker_input import epoch_order, worker_batches
    from imgclf.training.shards import ShardedRows, write_shard

    whole = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    files = [write_shard(tmp_path, [str(i) for i in range(20)], whole[k : k + 20]) for k in (0, 20)]
    rows = ShardedRows(files, np.repeat([0, 1], 20), np.tile(np.arange(20), 2), (3,))
    read = []
    take = ShardedRows.take
    monkeypatch.setattr(
        ShardedRows, "take", lambda self, idx: read.append(len(idx)) or take(self, idx)
    )
    monkeypatch.setattr(ShardedRows, "__array__", lambda *a, **k: pytest.fail("read whole"))
    labels, weights = np.arange(40) % 2, np.ones(40, np.float32)
    order = epoch_order(
        40, 1, seed=3, epoch=0, size=8, train=True
    )  # 5 steps of a global batch of 8
    batches = list(worker_batches(order, rows, labels, weights, local=1, b=4)(_Context()))
    mine = order.reshape(-1, 2, 1, 4)[:, 1].reshape(-1, 4)  # pipeline 1's half of every step
    assert read == [4] * 5  # one batch at a time, this pipeline's rows only
    for (x, t, w), idx in zip(batches, mine, strict=True):
        np.testing.assert_array_equal(x.numpy(), whole[idx])
        np.testing.assert_array_equal(t.numpy(), labels[idx])
        assert w.numpy().tolist() == [1.0] * 4


def test_another_worker_takes_the_chiefs_plan_and_input_size(tmp_path, tiny_backbone, monkeypatch):
    from imgclf.config import TrainConfig
    from imgclf.training import multiworker_plan
    from imgclf.training.budget import stratified_subset
    from imgclf.training.distribution import Distribution
    from imgclf.training.plan import plan_run
    from imgclf.training.setup import new_run

    data = make_distinct_dataset(tmp_path / "data", {"cat": 12, "dog": 12}, seed=4)
    cfg = TrainConfig(data=str(data), model=tiny_backbone, image_size=64, augment="none")
    setup = new_run(cfg.validate(), verbose=0)
    say = lambda _line: None  # noqa: E731
    plan, clf = plan_run(setup.cfg, setup.clf, setup.by_split, 2, None, say, False, True)
    # the chief planned 32 px, 6 train and 2 val images, 1 view, 2 head epochs, no fine-tuning,
    # the head on the last layer
    chief = np.array([32, 6, 2, 1, 2, 0, 0, 3.5, 0], np.float32)
    monkeypatch.setattr(multiworker_plan, "_from_chief", lambda dist, values: chief)
    other = Distribution("multi_worker", 2, None, worker=1, workers=2)
    mine, rebuilt = multiworker_plan.chief_plan(other, plan, clf, setup.cfg, setup.by_split, 2)
    assert (mine.image_size, rebuilt.model.input_shape[1:3]) == (32, (32, 32))
    assert mine.train_items == tuple(stratified_subset(setup.by_split["train"], 6, cfg.seed))
    assert len(mine.val_items) == 2 and (mine.views, mine.head_epochs, mine.epochs) == (1, 2, 0)
    assert not mine.fine_tunes and not mine.report and mine.reserve_s == 3.5
    # the recipe (its cut) is made again on the rebuilt classifier
    assert mine.recipe is not plan.recipe and mine.recipe.first == plan.recipe.first
    assert mine.recipe.bottom.layers[-1] in rebuilt.backbone.layers
    chief_dist = Distribution("multi_worker", 2, None, worker=0, workers=2)
    assert multiworker_plan.chief_plan(chief_dist, plan, clf, setup.cfg, setup.by_split, 2) == (
        plan,
        clf,
    )
