"""imgclf.training via the Python API: the run folder, an honest split, bad files, Ctrl-C, two
stages."""

from __future__ import annotations

import io
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import yaml
from helpers import (
    history_rows,
    make_dataset,
    manifest_rows,
    tree_hashes,
    write_bad_files,
    write_truncated_jpeg,
)

import imgclf
import imgclf.runs
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError, DataError, ModelError
from imgclf.runs import RunFiles, read_json
from imgclf.training import trainer
from imgclf.training.callbacks import HistoryCSV

TINY = dict(model="cnn", image_size=32, batch_size=8, augment="none", verbose=0)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A 2-class cnn run trained once for this module, with the training inputs spied on."""
    base = tmp_path_factory.mktemp("binary")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=11)
    before = tree_hashes(data)
    fed = []  # the items given to the training pipeline (train, then val)
    original = trainer.decoded_dataset

    def spy(items, *args, **kwargs):
        fed.append([i.path for i in items])
        return original(items, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(trainer, "decoded_dataset", spy)
    stdout = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, redirect_stdout(stdout):
            warnings.simplefilter("always")
            result = imgclf.train(data, epochs=2, out=str(base / "runs"), **TINY)
    finally:
        patch.undo()
    return SimpleNamespace(
        result=result,
        run_dir=result.run_dir,
        data=data,
        out=base / "runs",
        before=before,
        fed=fed,
        stdout=stdout.getvalue(),
        warnings=[str(w.message) for w in caught],
    )


# ---------------------------------------------------------------------------- the run folder


def documented_run_files() -> list[str]:
    """The files the runs module docstring promises in every run folder (not evaluations/)."""
    names = re.findall(r"^\s+([\w.]+\.(?:yaml|json|csv|keras|png))\s", imgclf.runs.__doc__, re.M)
    assert len(names) >= 8, names
    return names


def test_run_folder_has_every_documented_file(binary_run):
    run_dir = binary_run.run_dir
    assert run_dir == binary_run.out / "pets"  # named after the data folder
    for name in documented_run_files():
        assert (run_dir / name).is_file(), name
    for attr, name in vars(RunFiles).items():
        if attr.isupper() and name not in (
            RunFiles.EVALUATIONS,
            RunFiles.LAST,
            RunFiles.STATE,
            RunFiles.AUGMENTATION,
        ):
            assert (run_dir / name).is_file(), name
    # what --resume needs is kept only by an interrupted run
    assert not (run_dir / RunFiles.LAST).exists() and not (run_dir / RunFiles.STATE).exists()
    assert not (run_dir / RunFiles.EVALUATIONS).exists()
    assert not (run_dir / RunFiles.AUGMENTATION).exists()  # augment="none": nothing to preview


def test_run_files_describe_the_run(binary_run):
    run_dir = binary_run.run_dir
    config = yaml.safe_load((run_dir / RunFiles.CONFIG).read_text())
    assert config["model"] == "cnn"
    assert config["image_size"] == 32  # resolved value, not None
    assert config["epochs"] == 2
    assert Path(config["data"]) == binary_run.data.resolve()
    assert read_json(run_dir / RunFiles.CLASSES) == ["cat", "dog"]
    versions = read_json(run_dir / RunFiles.VERSIONS)
    assert versions["keras"] == keras.__version__
    rows = history_rows(run_dir)
    assert [(r["stage"], r["epoch"]) for r in rows] == [("train", "1"), ("train", "2")]
    metrics = read_json(run_dir / RunFiles.METRICS)
    assert metrics["interrupted"] is False
    assert metrics["split"] == "test"
    assert metrics["accuracy"] == pytest.approx(binary_run.result.metrics.accuracy)
    report = read_json(run_dir / RunFiles.DATA_REPORT)
    assert report["skipped"] == [] and report["counts"] == {"cat": 12, "dog": 12}
    assert report["doctor"]["balance"]["counts"] == {"cat": 12, "dog": 12}


def test_binary_model_has_one_sigmoid_output(binary_run):
    model = keras.saving.load_model(binary_run.run_dir / RunFiles.MODEL)
    assert model.output_shape == (None, 1)
    assert binary_run.result.classes == ["cat", "dog"]
    assert (
        binary_run.result.metrics.confusion_matrix
        and len(binary_run.result.metrics.confusion_matrix) == 2
    )


def test_binary_run_predicts_two_class_probabilities(binary_run):
    run = imgclf.load_run(binary_run.run_dir)
    (p,) = run.predict(binary_run.data / "dog" / "dog_000.png", top_k=5)
    assert [label for label, _ in p.top_k] in (["cat", "dog"], ["dog", "cat"])
    assert sum(prob for _, prob in p.top_k) == pytest.approx(1.0, abs=1e-5)


def test_multiclass_run_trains(trained_run):
    model = keras.saving.load_model(trained_run.run_dir / RunFiles.MODEL)
    assert model.output_shape == (None, 3)
    metrics = read_json(trained_run.run_dir / RunFiles.METRICS)
    assert metrics["classes"] == ["cat", "dog", "fox"]
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3)


def test_test_split_never_reaches_training(binary_run):
    rows = manifest_rows(binary_run.run_dir)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 24  # every image in exactly one split
    by_split = {
        s: {str(binary_run.data / r["path"]) for r in rows if r["split"] == s}
        for s in ("train", "val", "test")
    }
    assert all(by_split.values())
    assert not (
        by_split["train"] & by_split["val"]
        or by_split["train"] & by_split["test"]
        or by_split["val"] & by_split["test"]
    )
    # what the training pipeline was actually fed: train and val images, never a test image
    fed = set().union(*binary_run.fed)
    assert fed == by_split["train"] | by_split["val"]
    assert not fed & by_split["test"]
    assert by_split["train"] in [
        set(paths) for paths in binary_run.fed
    ]  # the train split on its own


def test_metrics_count_the_test_rows(binary_run):
    n_test = sum(r["split"] == "test" for r in manifest_rows(binary_run.run_dir))
    assert n_test == 2  # 10 % of 12, per class
    assert binary_run.result.metrics.n == n_test
    assert read_json(binary_run.run_dir / RunFiles.METRICS)["n"] == n_test


def test_input_folder_is_not_modified(binary_run):
    assert tree_hashes(binary_run.data) == binary_run.before


def test_verbose_zero_prints_nothing(binary_run):
    assert binary_run.stdout == ""


def test_training_emits_no_ran_out_of_data_warning(binary_run):
    # a filtered tf.data pipeline has unknown length: Keras' misleading "use .repeat()" warning
    # must not reach the user
    assert not [w for w in binary_run.warnings if "ran out of data" in w]


def test_second_run_with_the_same_name_gets_name2(binary_run):
    before = tree_hashes(binary_run.run_dir)
    result = imgclf.train(
        binary_run.data, epochs=1, out=str(binary_run.out), name="pets", report=False, **TINY
    )
    assert result.run_dir == binary_run.out / "pets2"
    assert (result.run_dir / RunFiles.MODEL).is_file()
    assert tree_hashes(binary_run.run_dir) == before  # the first run is untouched


# ---------------------------------------------------------------------------- data problems


def test_bad_files_are_skipped_reported_and_kept(tmp_path):
    data = make_dataset(tmp_path / "shots", {"cat": 10, "dog": 10}, fmt="jpg", seed=3)
    write_truncated_jpeg(data / "cat" / "cat_broken.jpg")
    bad = write_bad_files(data / "dog")
    before = tree_hashes(data)

    result = imgclf.train(data, epochs=1, out=str(tmp_path / "runs"), report=False, **TINY)

    report = read_json(result.run_dir / RunFiles.DATA_REPORT)
    reasons = {Path(row["path"]).name: row["reason"] for row in report["skipped"]}
    assert "truncated" in reasons["cat_broken.jpg"] and reasons["cat_broken.jpg"].startswith(
        "cannot decode"
    )
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"] == "not an image (unrecognised content)"
    assert reasons["notes.txt"] == "not an image file extension (.txt)"
    assert len(report["skipped"]) == 5  # each bad file once
    metrics = read_json(result.run_dir / RunFiles.METRICS)
    test_rows = [r for r in manifest_rows(result.run_dir) if r["split"] == "test"]
    broken_in_test = sum(
        Path(r["path"]).name in ("cat_broken.jpg", "truncated.jpg") for r in test_rows
    )
    assert metrics["n"] == len(test_rows) - broken_in_test
    assert tree_hashes(data) == before  # nothing deleted or rewritten
    assert all(p.exists() for p in bad.values())


def test_bad_val_image_is_reported_once_when_val_is_scored(presplit_validation, tmp_path):
    write_truncated_jpeg(presplit_validation / "validation" / "cat" / "broken.jpg")
    result = imgclf.train(
        presplit_validation, epochs=1, out=str(tmp_path / "runs"), report=False, **TINY
    )
    assert result.metrics.split.startswith("val")
    report = read_json(result.run_dir / RunFiles.DATA_REPORT)
    assert [Path(row["path"]).name for row in report["skipped"]] == ["broken.jpg"]


def test_presplit_layout_is_trained_as_given(presplit, tmp_path):
    result = imgclf.train(presplit, epochs=1, out=str(tmp_path / "runs"), report=False, **TINY)
    for row in manifest_rows(result.run_dir):
        assert row["path"].split("/")[0] == row["split"]
        assert row["path"].split("/")[1] == row["label"]
    assert result.metrics.split == "test"
    assert result.metrics.n == 4


def test_user_errors_leave_no_run_folder(flat2, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="one of: cnn"):
        imgclf.train(flat2, model="resnet", out=str(out), verbose=0)
    with pytest.raises(ModelError, match="does not exist"):
        imgclf.train(flat2, model=str(tmp_path / "missing.keras"), out=str(out), verbose=0)
    assert not out.exists() or list(out.iterdir()) == []


# ---------------------------------------------------------------------------- Ctrl-C


def interrupt_at(monkeypatch, epoch_index: int, after_logging: bool):
    original = HistoryCSV.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if epoch == epoch_index and not after_logging:
            raise KeyboardInterrupt
        original(self, epoch, logs)
        if epoch == epoch_index:
            raise KeyboardInterrupt

    monkeypatch.setattr(HistoryCSV, "on_epoch_end", on_epoch_end)


def assert_usable_interrupted_run(result):
    run_dir = result.run_dir
    assert result.interrupted is True
    metrics = read_json(run_dir / RunFiles.METRICS)
    assert metrics["interrupted"] is True
    assert metrics["n"] == sum(r["split"] == "test" for r in manifest_rows(run_dir))
    run = imgclf.load_run(run_dir)
    some_image = next(Path(run.config.data).rglob("*.png"))
    (prediction,) = run.predict(some_image)
    assert prediction.ok and prediction.label in run.classes


def test_ctrl_c_on_the_second_epoch_keeps_a_usable_run(flat2, tmp_path, monkeypatch):
    interrupt_at(monkeypatch, epoch_index=1, after_logging=True)
    result = imgclf.train(
        flat2, epochs=5, out=str(tmp_path / "runs"), **TINY
    )  # its report draws the curves
    assert_usable_interrupted_run(result)
    assert len(history_rows(result.run_dir)) == 2  # epochs 1 and 2 logged, no more
    assert (result.run_dir / RunFiles.CURVES).is_file()


def test_ctrl_c_before_the_first_epoch_ends_leaves_an_incomplete_run_that_is_refused(
    flat2, tmp_path, monkeypatch
):
    interrupt_at(monkeypatch, epoch_index=0, after_logging=False)
    result = imgclf.train(flat2, epochs=5, out=str(tmp_path / "runs"), report=False, **TINY)
    run_dir = result.run_dir
    assert result.interrupted is True and history_rows(run_dir) == []
    assert read_json(run_dir / RunFiles.METRICS)["interrupted"] is True  # tested all the same
    # its model is untrained: marked incomplete, and refused with the way to continue it
    assert read_json(run_dir / RunFiles.STATE)["trained"] is False
    with pytest.raises(DataError, match=r"is incomplete.*imgclf train --resume"):
        imgclf.load_run(run_dir)
    with pytest.raises(DataError, match=r"is incomplete.*imgclf train --resume"):
        result.predict(flat2)  # the Run training returned refuses its untrained model too


def test_ctrl_c_in_the_head_stage_of_a_pretrained_model(
    flat2, tmp_path, monkeypatch, tiny_backbone
):
    interrupt_at(monkeypatch, epoch_index=1, after_logging=True)
    result = imgclf.train(
        flat2,
        model=tiny_backbone,
        image_size=32,
        head_epochs=5,
        epochs=3,
        batch_size=8,
        augment="none",
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    assert_usable_interrupted_run(result)
    assert [r["stage"] for r in history_rows(result.run_dir)] == [
        "head",
        "head",
    ]  # fine-tuning never started


# ---------------------------------------------------------------------------- pretrained, two
# stages


def test_pretrained_two_stage_training(flat2, tmp_path, tiny_backbone):
    result = imgclf.train(
        flat2,
        model=tiny_backbone,
        image_size=32,
        head_epochs=2,
        epochs=1,
        batch_size=8,
        augment="flip",
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    stages = [(r["stage"], int(r["epoch"])) for r in history_rows(result.run_dir)]
    assert stages == [("head", 1), ("head", 2), ("fine_tune", 3)]
    assert (result.run_dir / RunFiles.AUGMENTATION).is_file()  # augment="flip": the preview grid
    rates = [float(r["learning_rate"]) for r in history_rows(result.run_dir)]
    assert rates == [TrainConfig().learning_rate] * 2 + [0.0]  # fine-tuning's cosine ends at 0
    model = keras.saving.load_model(result.run_dir / RunFiles.MODEL)
    assert model.output_shape == (None, 1)
    assert result.metrics.n == sum(r["split"] == "test" for r in manifest_rows(result.run_dir))


def test_cnn_predicts_in_inference_mode_what_it_learned(tmp_path):
    """Regression: with Keras' default BatchNorm momentum (0.99) the moving statistics of a small
    data
    set's few hundred steps stay near their initial values, and inference collapses to one class."""
    data = make_dataset(tmp_path / "colours", {"a": 20, "b": 20, "c": 20}, seed=5)
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=8,
        batch_size=8,
        augment="none",
        patience=8,
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    run = imgclf.load_run(result.run_dir)
    train_paths = {
        str(data / r["path"]): r["label"]
        for r in manifest_rows(result.run_dir)
        if r["split"] == "train"
    }
    predictions = run.predict(sorted(train_paths), top_k=1)
    correct = sum(p.label == train_paths[p.path] for p in predictions)
    assert correct / len(predictions) >= 0.9, [p.label for p in predictions]
