"""`imgclf train --resume RUN`: an interrupted run continues where its last completed epoch left
off; plus the repeatability of seeded runs that resuming is judged against.

Ctrl-C is simulated by patching ``HistoryCSV.on_epoch_end`` to log the epoch and then raise
KeyboardInterrupt. HistoryCSV is the first callback, so that epoch's row is in history.csv but
``last.keras``/``state.json`` still hold the epoch before: resuming must drop the row and redo it.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers import history_rows, make_dataset, manifest_rows, tree_hashes

import imgclf
from imgclf.cli import main as cli_main
from imgclf.config import TrainConfig
from imgclf.errors import DataError
from imgclf.runs import RunFiles, read_json, run_status
from imgclf.training.callbacks import HistoryCSV
from imgclf.training.optim import make_optimizer
from imgclf.training.trainer import train_run

CNN = dict(
    model="cnn", image_size=32, batch_size=8, augment="flip", epochs=3, verbose=0, report=False
)
PRETRAINED = (
    dict(  # model: the session's tiny backbone file (the recipe's mechanics, not Lite0's weights)
        image_size=32,
        head_epochs=1,
        epochs=3,
        fine_tune="auto",
        batch_size=8,
        augment="none",
        verbose=0,
        report=False,
    )
)
METRIC_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy")


pytestmark = pytest.mark.usefixtures("private_cache")


def split_count(run_dir: Path, split: str) -> int:
    return sum(r["split"] == split for r in manifest_rows(run_dir))


def epochs_of(rows) -> list[tuple[str, int]]:
    return [(r["stage"], int(r["epoch"])) for r in rows]


def interrupt_after(patch: pytest.MonkeyPatch, stage: str, epoch_index: int) -> None:
    """Ctrl-C right after ``stage``'s epoch ``epoch_index`` (0-based, within the stage) is
    logged."""
    original = HistoryCSV.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.stage == stage and epoch == epoch_index:
            raise KeyboardInterrupt

    patch.setattr(HistoryCSV, "on_epoch_end", on_epoch_end)


def snapshot(result) -> SimpleNamespace:
    run_dir = result.run_dir
    return SimpleNamespace(
        result=result,
        files={p.name for p in run_dir.iterdir()},
        state=read_json(run_dir / RunFiles.STATE) if (run_dir / RunFiles.STATE).exists() else None,
        rows=history_rows(run_dir),
        metrics=read_json(run_dir / RunFiles.METRICS),
    )


def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------- from-scratch (cnn)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """Two uninterrupted runs with the same seed, and one interrupted after epoch 2 then resumed by
    the CLI."""
    base = tmp_path_factory.mktemp("resume_cnn")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=31)
    out = str(base / "runs")
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    try:
        straight = imgclf.train(data, out=out, name="straight", **CNN)
        again = imgclf.train(data, out=out, name="again", **CNN)
        interrupt_after(patch, "train", 1)
        interrupted = snapshot(
            imgclf.train(data, out=out, name="resumed", **{**CNN, "report": True})
        )  # the resumed run reports
        patch.undo()  # the resumed run is not interrupted
        patch.setenv("IMGCLF_CACHE", str(base / "cache"))
        code, stdout, stderr = cli(
            ["train", "--resume", str(interrupted.result.run_dir), "--quiet"]
        )
    finally:
        patch.undo()
    return SimpleNamespace(
        data=data,
        straight=straight,
        again=again,
        interrupted=interrupted,
        run_dir=interrupted.result.run_dir,
        cli=SimpleNamespace(code=code, stdout=stdout, stderr=stderr),
        base=base,
    )


def test_interrupted_cnn_run_keeps_what_resume_needs(cnn):
    snap = cnn.interrupted
    assert snap.result.interrupted is True and snap.metrics["interrupted"] is True
    assert {RunFiles.LAST, RunFiles.STATE, RunFiles.MODEL} <= snap.files
    # the exception left RunState one epoch behind the logged history
    assert snap.state["stage"] == "train" and snap.state["stage_epochs"] == 1
    assert snap.state["best"] is not None
    assert epochs_of(snap.rows) == [("train", 1), ("train", 2)]


def test_cli_resume_finishes_the_cnn_run(cnn):
    assert cnn.cli.code == 0, cnn.cli.stderr
    assert cnn.cli.stdout.startswith(f"{cnn.run_dir}\taccuracy=")
    rows = history_rows(cnn.run_dir)
    assert epochs_of(rows) == [
        ("train", 1),
        ("train", 2),
        ("train", 3),
    ]  # each epoch once, the cut one redone
    assert rows[0] == cnn.interrupted.rows[0]  # the completed epoch is kept as it was
    metrics = read_json(cnn.run_dir / RunFiles.METRICS)
    assert metrics["interrupted"] is False
    assert (
        not (cnn.run_dir / RunFiles.LAST).exists() and not (cnn.run_dir / RunFiles.STATE).exists()
    )
    assert (cnn.run_dir / RunFiles.CURVES).is_file()
    config = yaml.safe_load((cnn.run_dir / RunFiles.CONFIG).read_text())
    assert config["epochs"] == 3 and config["model"] == "cnn"  # its own config, untouched
    assert metrics["n"] == split_count(cnn.run_dir, "test")


def test_resume_continues_the_learning_rate_schedule(cnn):
    """Optimizer state (its step count) comes back from last.keras: the resumed epochs have the same
    cosine learning rates as the uninterrupted run's, not a restarted schedule."""
    resumed = [float(r["learning_rate"]) for r in history_rows(cnn.run_dir)]
    straight = [float(r["learning_rate"]) for r in history_rows(cnn.straight.run_dir)]
    assert resumed == pytest.approx(straight, rel=1e-5, abs=1e-12)
    assert straight[0] > straight[1]  # a decaying schedule, so a restart would show


def test_resumed_cnn_run_matches_an_uninterrupted_one(cnn):
    """Same seed: the interrupted run's first epoch is the uninterrupted run's, bit for bit. After
    the resume the data order and augmentation draws differ, so the rest is only close (observed on
    this CPU: 3 epochs each, final val_accuracy 1.0 for both, final val_loss 0.6639 vs 0.6642; train
    loss
    differs)."""
    straight, resumed = history_rows(cnn.straight.run_dir), history_rows(cnn.run_dir)
    assert [r[c] for r in straight[:1] for c in METRIC_COLUMNS] == [
        r[c] for r in resumed[:1] for c in METRIC_COLUMNS
    ]
    assert len(resumed) == len(straight) == 3
    n_val = split_count(cnn.run_dir, "val")
    assert (
        abs(float(resumed[-1]["val_accuracy"]) - float(straight[-1]["val_accuracy"]))
        <= 1 / n_val + 1e-6
    )
    assert abs(float(resumed[-1]["val_loss"]) - float(straight[-1]["val_loss"])) < 0.25
    assert (
        float(resumed[-1]["val_loss"]) < 0.693 + 0.1
    )  # no worse than chance (binary cross-entropy) by much


def test_seeded_runs_repeat_exactly(cnn):
    """deterministic=False (the default): two runs with the same seed give the same history on
    CPU."""
    a, b = history_rows(cnn.straight.run_dir), history_rows(cnn.again.run_dir)
    assert len(a) == len(b) == 3
    for column in (*METRIC_COLUMNS, "learning_rate"):
        assert [float(r[column]) for r in a] == [float(r[column]) for r in b], column
    assert (
        read_json(cnn.straight.run_dir / RunFiles.METRICS)["accuracy"]
        == read_json(cnn.again.run_dir / RunFiles.METRICS)["accuracy"]
    )


# ---------------------------------------------------------------------------- errors


def test_resume_of_a_finished_run_is_refused(cnn):
    run_dir = cnn.straight.run_dir
    before = tree_hashes(run_dir)
    with pytest.raises(DataError, match=r"nothing to resume"):
        train_run(TrainConfig(data="x"), verbose=0, resume_dir=run_dir)
    code, stdout, stderr = cli(["train", "--resume", str(run_dir)])
    assert code == 1 and stdout == ""  # a problem with the run folder, not a usage mistake
    assert (
        stderr.startswith("imgclf: error: ")
        and "nothing to resume" in stderr
        and stderr.count("\n") == 1
    )
    assert tree_hashes(run_dir) == before


def test_resume_after_the_data_moved_is_refused(cnn, tmp_path):
    copy = tmp_path / "interrupted_copy"
    shutil.copytree(cnn.run_dir, copy)
    (copy / RunFiles.STATE).write_text(
        json.dumps({"stage": "train", "stage_epochs": 1, "head_loss": None, "best": 0.7})
    )
    (copy / RunFiles.LAST).write_bytes(b"placeholder")
    config = yaml.safe_load((copy / RunFiles.CONFIG).read_text())
    config["data"] = str(tmp_path / "moved_away")
    (copy / RunFiles.CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(DataError, match=r"no longer exists; was the data folder moved\?"):
        train_run(TrainConfig(data="x"), verbose=0, resume_dir=copy)


@pytest.mark.parametrize(
    "extra",
    [
        ["DATA"],
        ["--epochs", "3"],
        ["--model", "cnn"],
        ["--config", "CONFIG"],
        ["--no-feature-cache"],
        ["--time", "5m"],
    ],
)
def test_resume_takes_no_data_or_training_options(tmp_path, extra):
    run_dir = tmp_path / "some_run"
    run_dir.mkdir()
    cfg = tmp_path / "options.yaml"
    cfg.write_text("epochs: 3\n")
    extra = [str(tmp_path) if e == "DATA" else str(cfg) if e == "CONFIG" else e for e in extra]
    code, stdout, stderr = cli(["train", "--resume", str(run_dir), *extra])
    assert code == 2 and stdout == ""
    assert (
        stderr == "imgclf: error: --resume RUN takes no DATA, --config or training options: the "
        "run's own are used\n"
    )
    assert list(run_dir.iterdir()) == []


def test_train_needs_data_or_resume():
    code, stdout, stderr = cli(["train"])
    assert code == 2 and stdout == ""
    assert stderr.startswith("imgclf: error: ") and stderr.count("\n") == 1
    assert "DATA" in stderr and "--resume" in stderr


# ---------------------------------------------------------------------------- pretrained, in
# fine-tuning


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_backbone):
    """Interrupted after its second fine-tuning epoch (epoch 3 of the run), then resumed
    in-process."""
    base = tmp_path_factory.mktemp("resume_pretrained")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=32)
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    try:
        interrupt_after(patch, "fine_tune", 1)
        interrupted = snapshot(
            imgclf.train(data, out=str(base / "runs"), model=tiny_backbone, **PRETRAINED)
        )
        patch.undo()
        patch.setenv("IMGCLF_CACHE", str(base / "cache"))
        result = train_run(TrainConfig(data="x"), verbose=0, resume_dir=interrupted.result.run_dir)
    finally:
        patch.undo()
    return SimpleNamespace(interrupted=interrupted, result=result, run_dir=result.run_dir)


def test_interrupted_fine_tuning_keeps_what_resume_needs(pretrained):
    snap = pretrained.interrupted
    assert snap.result.interrupted is True and snap.metrics["interrupted"] is True
    assert {RunFiles.LAST, RunFiles.STATE, RunFiles.MODEL} <= snap.files
    assert snap.state["stage"] == "fine_tune" and snap.state["stage_epochs"] == 1
    assert snap.state["head_loss"] == pytest.approx(float(snap.rows[0]["val_loss"]), abs=1e-3)
    assert epochs_of(snap.rows) == [("head", 1), ("fine_tune", 2), ("fine_tune", 3)]


def test_resumed_fine_tuning_finishes_the_run(pretrained):
    run_dir = pretrained.run_dir
    assert run_dir == pretrained.interrupted.result.run_dir  # the same folder, not a new run
    rows = history_rows(run_dir)
    assert epochs_of(rows) == [("head", 1), ("fine_tune", 2), ("fine_tune", 3), ("fine_tune", 4)]
    assert rows[:2] == pretrained.interrupted.rows[:2]  # the head stage is not trained again
    metrics = read_json(run_dir / RunFiles.METRICS)
    assert metrics["interrupted"] is False and pretrained.result.interrupted is False
    assert not (run_dir / RunFiles.LAST).exists() and not (run_dir / RunFiles.STATE).exists()
    assert pretrained.result.metrics.n == split_count(run_dir, "test")


def test_resumed_fine_tuning_restores_weights_and_optimizer(pretrained):
    rows = history_rows(pretrained.run_dir)
    n_train = split_count(pretrained.run_dir, "train")
    steps = -(-n_train // PRETRAINED["batch_size"])
    schedule = make_optimizer(
        "adam", "cosine", TrainConfig().fine_tune_learning_rate, steps, PRETRAINED["epochs"]
    )._learning_rate
    # on cached activations (arrays) the step count is exact: lr logged after fine-tune epoch k is
    # schedule(k * steps)
    expected = [float(schedule(k * steps)) for k in (1, 2, 3)]
    assert [float(r["learning_rate"]) for r in rows[1:]] == pytest.approx(
        expected, rel=1e-4, abs=1e-12
    )
    # the resumed epochs start from the fine-tuned weights, not from a fresh head on a pristine
    # backbone
    head_val_loss = float(rows[0]["val_loss"])
    assert all(float(r["val_loss"]) < head_val_loss for r in rows[2:])


# ---------------------------------------------------------------------------- Ctrl-C mid-epoch


def interrupt_in_first_batch(patch: pytest.MonkeyPatch, stage: str) -> None:
    """Ctrl-C during the first batch of ``stage``'s first epoch (nothing of it finished)."""

    def on_train_batch_end(self, batch, logs=None):
        if self.stage == stage:
            raise KeyboardInterrupt

    patch.setattr(HistoryCSV, "on_train_batch_end", on_train_batch_end, raising=False)


def interrupted_then_resumed(base: Path, data: Path, backbone: str, stage: str):
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    try:
        interrupt_in_first_batch(patch, stage)
        out = io.StringIO()
        with redirect_stdout(out):
            interrupted = snapshot(
                imgclf.train(
                    data,
                    out=str(base / "runs"),
                    model=backbone,
                    **{**PRETRAINED, "verbose": 1},
                )
            )
        patch.undo()
        patch.setenv("IMGCLF_CACHE", str(base / "cache"))
        refused = cli(["predict", str(interrupted.result.run_dir), str(data)])
        try:
            imgclf.load_run(interrupted.result.run_dir)
            load_error = None
        except DataError as exc:
            load_error = str(exc)
        status = run_status(interrupted.result.run_dir)
        code, stdout, stderr = cli(
            ["train", "--resume", str(interrupted.result.run_dir), "--quiet"]
        )
    finally:
        patch.undo()
    return SimpleNamespace(
        interrupted=interrupted,
        status=status,
        said=out.getvalue(),
        refused=refused,
        load_error=load_error,
        resumed=SimpleNamespace(code=code, stdout=stdout, stderr=stderr),
        run_dir=interrupted.result.run_dir,
    )


@pytest.fixture(scope="module")
def between_stages(tmp_path_factory, tiny_backbone):
    """Ctrl-C in the first fine-tuning epoch, after the head stage finished; then --resume."""
    base = tmp_path_factory.mktemp("between_stages")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=33)
    return interrupted_then_resumed(base, data, tiny_backbone, "fine_tune")


def test_ctrl_c_in_the_first_fine_tuning_epoch_leaves_a_run_that_resumes_there(between_stages):
    snap = between_stages.interrupted
    assert snap.result.interrupted is True and between_stages.status == "interrupted"
    # the finished head stage is what state.json holds: fine-tuning from its start
    assert snap.state["stage"] == "fine_tune" and snap.state["stage_epochs"] == 0
    assert snap.state["trained"] is True
    assert snap.state["head_loss"] == pytest.approx(float(snap.rows[0]["val_loss"]), abs=1e-3)
    assert between_stages.refused[0] == 0  # a trained head: usable while it is not finished
    resumed = between_stages.resumed
    assert resumed.code == 0, resumed.stderr
    rows = history_rows(between_stages.run_dir)
    assert epochs_of(rows) == [("head", 1)] + [("fine_tune", k) for k in range(2, 5)]
    assert rows[0] == snap.rows[0]  # the head is not trained again
    assert run_status(between_stages.run_dir) == "complete"


@pytest.fixture(scope="module")
def untrained(tmp_path_factory, tiny_backbone):
    """Ctrl-C in the head stage's first batch: nothing trained; then --resume."""
    base = tmp_path_factory.mktemp("untrained")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=34)
    return interrupted_then_resumed(base, data, tiny_backbone, "head")


def test_ctrl_c_before_anything_trained_marks_the_run_incomplete_and_predict_refuses_it(
    untrained,
):
    snap = untrained.interrupted
    assert untrained.status == "incomplete" and snap.state["trained"] is False
    assert snap.state["stage"] == "head" and snap.state["stage_epochs"] == 0
    assert "marked incomplete" in untrained.said and "--resume" in untrained.said
    code, stdout, stderr = untrained.refused
    run_dir = untrained.run_dir
    assert code == 1 and stdout == "" and stderr.count("\n") == 1
    assert "is incomplete" in stderr and f"imgclf train --resume {run_dir}" in stderr
    assert "is incomplete" in untrained.load_error  # the Python API refuses it the same way


def test_an_incomplete_run_resumes_from_the_start_and_is_then_usable(untrained):
    assert untrained.resumed.code == 0, untrained.resumed.stderr
    rows = history_rows(untrained.run_dir)
    assert epochs_of(rows) == [("head", 1)] + [("fine_tune", k) for k in range(2, 5)]
    assert run_status(untrained.run_dir) == "complete"
    assert imgclf.load_run(untrained.run_dir).classes == ["cat", "dog"]
