"""imgclf.serving.predictor: a run folder as an object that predicts and evaluates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import make_dataset, write_bad_files, write_truncated_jpeg

import imgclf
from imgclf.errors import ConfigError, DataError, ImgclfError
from imgclf.runs import RunFiles, read_json
from imgclf.serving.predictor import Prediction, Run, expand_paths, load_run


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run.run_dir)


def images_of(trained_run, cls: str) -> list[Path]:
    return sorted((trained_run.data / cls).glob("*.jpg"))


def test_load_run_reads_the_run(run, trained_run):
    assert isinstance(run, Run)
    assert run.classes == ["cat", "dog", "fox"]
    assert run.image_size == 32
    assert run.config.model == "cnn"
    assert "cnn" in repr(run)
    assert run.metrics.n == trained_run.result.metrics.n


def check_prediction(p: Prediction, classes, k):
    assert p.ok and p.error is None
    assert p.label in classes
    assert len(p.top_k) == k
    assert p.top_k[0] == (p.label, p.confidence)
    probs = [prob for _, prob in p.top_k]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= prob <= 1.0 for prob in probs)
    assert len({label for label, _ in p.top_k}) == k


def test_predict_one_file(run, trained_run):
    path = images_of(trained_run, "cat")[0]
    predictions = run.predict(path)
    assert len(predictions) == 1
    assert predictions[0].path == str(path)
    check_prediction(predictions[0], run.classes, 3)
    # all classes listed: their probabilities add up to 1
    assert sum(prob for _, prob in predictions[0].top_k) == pytest.approx(1.0, abs=1e-4)


def test_predict_a_list_keeps_the_order(run, trained_run):
    paths = [
        images_of(trained_run, "fox")[0],
        images_of(trained_run, "cat")[1],
        str(images_of(trained_run, "dog")[2]),
    ]
    predictions = run.predict(paths, top_k=2)
    assert [p.path for p in predictions] == [str(p) for p in paths]
    for p in predictions:
        check_prediction(p, run.classes, 2)


def test_predict_a_folder_walks_it_recursively(run, trained_run, tmp_path):
    folder = tmp_path / "new"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(images_of(trained_run, "cat")[0], folder / "a.jpg")
    shutil.copy(images_of(trained_run, "dog")[0], folder / "sub" / "b.JPG")
    shutil.copy(images_of(trained_run, "dog")[0], folder / ".hidden.jpg")
    (folder / "notes.txt").write_text("not an image")
    predictions = run.predict(folder)
    assert [Path(p.path).relative_to(folder).as_posix() for p in predictions] == [
        "a.jpg",
        "sub/b.JPG",
    ]
    assert all(p.ok for p in predictions)


def test_predict_a_folder_ignores_hidden_folders(run, trained_run, tmp_path):
    folder = tmp_path / "new"
    (folder / ".thumbnails").mkdir(parents=True)
    shutil.copy(images_of(trained_run, "cat")[0], folder / "a.jpg")
    shutil.copy(images_of(trained_run, "cat")[1], folder / ".thumbnails" / "a_small.jpg")
    assert [Path(p.path).name for p in run.predict(folder)] == ["a.jpg"]


def test_predictions_match_the_model_on_the_same_pixels(run, trained_run):
    """predict decodes through the training pipeline; on those pixels it equals the bare model."""
    from imgclf.data.decode import DecodeLog
    from imgclf.data.pipeline import decoded_dataset
    from imgclf.data.scan import ImageItem

    paths = images_of(trained_run, "dog")[:4]
    ds = decoded_dataset(
        [ImageItem(str(p), 0) for p in paths], run.image_size, DecodeLog(), cache=False
    )
    probs = run.predict_arrays(np.stack([x for x, _ in ds.as_numpy_iterator()]))
    for p, row in zip(run.predict(paths, top_k=1), probs, strict=True):
        assert p.label == run.classes[int(np.argmax(row))]
        assert p.confidence == pytest.approx(float(row.max()), rel=1e-5)


@pytest.mark.parametrize("k, expected", [(1, 1), (2, 2), (3, 3), (10, 3)])
def test_top_k(run, trained_run, k, expected):
    (p,) = run.predict(images_of(trained_run, "cat")[0], top_k=k)
    check_prediction(p, run.classes, expected)


def test_top_k_must_be_positive(run, trained_run):
    with pytest.raises(ConfigError, match=r"`top_k`: received 0; expected an integer >= 1"):
        run.predict(images_of(trained_run, "cat")[0], top_k=0)


def test_unreadable_file_gets_its_own_error_and_the_rest_are_predicted(run, trained_run, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    good = images_of(trained_run, "fox")[:2]
    paths = [good[0], bad["truncated"], bad["empty"], good[1], bad["text_as_png"]]
    predictions = run.predict(paths)
    assert [p.path for p in predictions] == [str(p) for p in paths]
    assert [p.ok for p in predictions] == [True, False, False, True, False]
    for p in predictions:
        if not p.ok:
            assert p.error.startswith(("cannot decode: ", "empty file", "not an image"))
            assert p.label is None and p.confidence is None and p.top_k == []
    assert "truncated" in predictions[1].error


def test_prediction_to_dict_is_json(run, trained_run, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    good, broken = run.predict([images_of(trained_run, "cat")[0], bad["empty"]], top_k=2)
    d = json.loads(json.dumps(good.to_dict()))
    assert set(d) == {"path", "label", "confidence", "top_k", "error"}
    assert d["top_k"][0] == {"label": good.label, "probability": pytest.approx(good.confidence)}
    assert len(d["top_k"]) == 2 and d["error"] is None
    assert broken.to_dict()["error"] == "empty file (0 bytes)"


def test_missing_path_is_a_data_error(run, tmp_path):
    with pytest.raises(DataError, match=r"path '.*ghost.jpg' does not exist"):
        run.predict(tmp_path / "ghost.jpg")


def test_expand_paths(tmp_path):
    (tmp_path / "d" / "x").mkdir(parents=True)
    for name in ("d/b.png", "d/a.jpg", "d/x/c.webp", "d/readme.md"):
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).relative_to(tmp_path).as_posix() for p in expand_paths([tmp_path / "d"])] == [
        "d/a.jpg",
        "d/b.png",
        "d/x/c.webp",
    ]
    # a file given explicitly is kept, whatever its extension
    assert expand_paths([tmp_path / "d" / "readme.md"]) == [str(tmp_path / "d" / "readme.md")]


def test_top_level_predict_function(trained_run):
    predictions = imgclf.predict(trained_run.run_dir, [images_of(trained_run, "dog")[0]], top_k=1)
    assert len(predictions) == 1 and len(predictions[0].top_k) == 1


def test_a_moved_run_folder_still_predicts_and_evaluates(trained_run, tmp_path):
    moved = Path(shutil.copytree(trained_run.run_dir, tmp_path / "elsewhere" / "my_run"))
    run = load_run(moved)
    (p,) = run.predict(images_of(trained_run, "cat")[0])
    assert p.ok
    assert run.evaluate().accuracy == pytest.approx(read_json(moved / RunFiles.METRICS)["accuracy"])


# ---------------------------------------------------------------------------- not a run


def test_a_folder_that_is_not_a_run(trained_run):
    with pytest.raises(
        DataError,
        match=r"is not an imgclf run folder \(missing config.yaml, classes.json, model.keras\)",
    ):
        Run(trained_run.data)


def test_a_run_folder_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=r"run folder '.*nope' does not exist"):
        load_run(tmp_path / "nope")


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_the_test_split_equals_metrics_json(run, trained_run):
    saved = read_json(trained_run.run_dir / RunFiles.METRICS)
    metrics = run.evaluate()
    assert metrics.split == "test"
    assert metrics.n == saved["n"] == 6
    assert metrics.accuracy == pytest.approx(saved["accuracy"])
    assert metrics.confusion_matrix == saved["confusion_matrix"]
    assert imgclf.evaluate(trained_run.run_dir).accuracy == pytest.approx(saved["accuracy"])


def test_evaluate_a_folder_writes_its_metrics(run, trained_run, tmp_path):
    folder = make_dataset(tmp_path / "holiday", {"cat": 3, "fox": 2}, fmt="jpg", seed=99)
    metrics = run.evaluate(folder)
    assert metrics.n == 5
    assert metrics.split == "holiday/all"
    assert metrics.classes == run.classes
    assert [row[0] + row[1] + row[2] for row in metrics.confusion_matrix] == [3, 0, 2]
    saved = trained_run.run_dir / RunFiles.EVALUATIONS / "holiday" / RunFiles.METRICS
    assert saved.is_file()
    assert read_json(saved)["accuracy"] == pytest.approx(metrics.accuracy)
    assert read_json(saved)["n"] == 5


def test_evaluate_a_presplit_folder_uses_its_test_split(run, trained_run, tmp_path):
    root = tmp_path / "later"
    make_dataset(root / "train", {"cat": 2, "dog": 2}, fmt="jpg", seed=1)
    make_dataset(root / "val", {"cat": 1, "dog": 1}, fmt="jpg", seed=2)
    make_dataset(root / "test", {"cat": 2, "dog": 1}, fmt="jpg", seed=3)
    metrics = run.evaluate(root)
    assert metrics.n == 3
    assert metrics.split == "later/test"


def test_evaluate_a_folder_reports_bad_files(run, tmp_path):
    folder = make_dataset(tmp_path / "mixed_bag", {"dog": 3}, fmt="jpg", seed=5)
    write_truncated_jpeg(folder / "dog" / "broken.jpg")
    (folder / "dog" / "notes.txt").write_text("x")
    metrics = run.evaluate(folder)
    assert metrics.n == 3
    reasons = {Path(s["path"]).name: s["reason"] for s in metrics.skipped}
    assert set(reasons) == {"broken.jpg", "notes.txt"}
    assert "truncated" in reasons["broken.jpg"]


def test_evaluate_unknown_class_is_named(run, tmp_path):
    folder = make_dataset(tmp_path / "zoo", {"cat": 2, "yak": 2}, fmt="jpg")
    with pytest.raises(
        DataError, match=r"class 'yak' in .* is not one of the run's classes: cat, dog, fox"
    ):
        run.evaluate(folder)


def test_evaluate_after_the_data_moved(trained_run, tmp_path):
    copy = Path(shutil.copytree(trained_run.run_dir, tmp_path / "run_copy"))
    config = yaml.safe_load((copy / RunFiles.CONFIG).read_text())
    config["data"] = str(tmp_path / "moved_away")
    (copy / RunFiles.CONFIG).write_text(yaml.safe_dump(config))
    with pytest.raises(
        DataError, match=r"test image .* no longer exists; was the data folder moved\?"
    ):
        load_run(copy).evaluate()


def test_evaluate_a_folder_of_only_undecodable_images(run, tmp_path):
    folder = tmp_path / "all_broken"
    write_truncated_jpeg(folder / "cat" / "a.jpg", seed=1)
    write_truncated_jpeg(folder / "dog" / "b.jpg", seed=2)
    try:
        metrics = run.evaluate(folder)
    except ImgclfError:
        return  # a clear user-facing error is acceptable
    assert metrics.n == 0
    assert {Path(s["path"]).name for s in metrics.skipped} == {"a.jpg", "b.jpg"}
