"""The Python API's one object: ``imgclf.train(DATA, config=TrainConfig(...))`` returns a
:class:`imgclf.Run` that predicts on files, Pillow images and NumPy arrays, evaluates, exports,
reports and serves, with its model loaded once."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import yaml
from helpers import make_dataset
from PIL import Image

import imgclf
from imgclf.api import OPEN_RUNS, TrainOptions, open_run, train_config
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError
from imgclf.runs import RunFiles


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> imgclf.Run:
    """A tiny run trained from a TrainConfig plus a keyword override, on PNGs (decoded by Pillow
    whether they come as files or as pictures in memory)."""
    base = tmp_path_factory.mktemp("api")
    data = make_dataset(base / "shapes", {"a": 12, "b": 12, "c": 12}, size=(64, 48), seed=3)
    config = TrainConfig(model="cnn", image_size=48, epochs=1, augment="none", precise_bn=0)
    return imgclf.train(data, config=config, image_size=32, out=str(base / "runs"), verbose=0)


@pytest.fixture
def count_loads(monkeypatch):
    """How many times a run's model file is loaded from now on."""
    from imgclf.models import loading

    calls = []
    real = loading.load_model_file

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_model_file", counting)
    return calls


def probs(p) -> dict[str, float]:
    return dict(p.top_k)


def images_of(run, cls: str) -> list:
    return sorted((run.path.parent.parent / "shapes" / cls).glob("*.png"))


# ---------------------------------------------------------------------------- train


def test_train_takes_a_train_config_and_keywords_win(run):
    assert isinstance(run, imgclf.Run) and type(run) is imgclf.Run
    assert run.config.model == "cnn" and run.config.epochs == 1  # from the TrainConfig
    assert run.image_size == 32  # the keyword, over the config's 48
    assert isinstance(run.training, imgclf.TrainResult) and run.training.run_dir == run.path
    assert run.metrics.split == "test" and run.metrics.n == run.training.metrics.n
    assert run.run_dir == run.path and run.interrupted is False


def test_train_rejects_an_unknown_option_with_a_suggestion_before_touching_the_data(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^unknown argument option 'epoch'; did you mean 'epochs'"
    ):
        imgclf.train(tmp_path / "does_not_exist", config=TrainConfig(), epoch=3)


@pytest.mark.parametrize("config", [5, {"epochs": 3}, ["x.yaml"]])
def test_a_config_of_another_type_is_a_one_line_config_error(config, tmp_path):
    with pytest.raises(ConfigError, match=r"invalid value for `config`: .*expected a TrainConfig"):
        imgclf.train(tmp_path, config=config)


def test_a_config_file_and_a_train_config_resolve_alike(tmp_path):
    path = tmp_path / "options.yaml"
    path.write_text(yaml.safe_dump({"epochs": 3, "learning_rate": "2e-3"}))
    from_file = train_config("data", path, {"batch_size": 4})
    from_object = train_config("data", TrainConfig(epochs=3, learning_rate=2e-3), {"batch_size": 4})
    assert from_file == from_object
    assert (from_file.data, from_file.epochs, from_file.batch_size) == ("data", 3, 4)
    # the data argument wins over a TrainConfig's own
    assert train_config("mine", TrainConfig(data="theirs"), {}).data == "mine"


def test_train_options_are_train_configs_fields_with_their_types():
    config_types = typing.get_type_hints(TrainConfig)
    option_types = typing.get_type_hints(TrainOptions)
    assert set(option_types) == {f.name for f in dataclasses.fields(TrainConfig)} - {"data"}
    assert option_types == {name: config_types[name] for name in option_types}


# ---------------------------------------------------------------------------- predict


def test_a_pil_image_and_its_file_get_the_same_probabilities(run):
    path = images_of(run, "b")[0]
    (from_file,) = run.predict(path, top_k=3)
    (from_image,) = run.predict(Image.open(path), top_k=3)
    assert from_image.path == str(path)  # named after the file it was opened from
    assert probs(from_image) == pytest.approx(probs(from_file), abs=1e-6)
    assert from_image.label == from_file.label


def test_a_numpy_batch_uint8_or_float_any_size_predicts_like_the_files(run):
    paths = [images_of(run, c)[1] for c in ("a", "b", "c")]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])  # (3, 48, 64, 3)
    expected = [probs(p) for p in run.predict(paths)]
    as_uint8 = run.predict(pixels)
    assert [p.path for p in as_uint8] == ["image[0]", "image[1]", "image[2]"]
    assert [probs(p) for p in as_uint8] == [pytest.approx(e, abs=1e-6) for e in expected]
    as_float = run.predict(pixels.astype(np.float32), batch_size=2)
    assert [probs(p) for p in as_float] == [pytest.approx(e, abs=1e-6) for e in expected]
    (one,) = run.predict(pixels[2])  # one (H, W, C) image
    assert probs(one) == pytest.approx(expected[2], abs=1e-6)


def test_grayscale_and_transparent_arrays_are_made_rgb_as_files_are(run, tmp_path):
    gray = np.asarray(Image.open(images_of(run, "a")[2]).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    (from_file,) = run.predict(tmp_path / "gray.png")
    (from_array,) = run.predict(gray[None, :, :, None])
    assert probs(from_array) == pytest.approx(probs(from_file), abs=1e-6)
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent: white, as a transparent PNG is
    (white,) = run.predict(rgba)
    white_rgb = run.predict(np.full((20, 20, 3), 255, np.uint8))[0]
    assert probs(white) == pytest.approx(probs(white_rgb), abs=1e-6)


@pytest.mark.parametrize(
    "x, says",
    [
        (np.zeros((4, 4), np.uint8), r"an array of shape \(4, 4\)"),
        (np.zeros((2, 8, 8, 2), np.uint8), r"shape \(2, 8, 8, 2\)"),
        (np.full((8, 8, 3), 0.5, np.float32), r"values in \[0, 1\] \(multiply by 255\)"),
        (np.full((8, 8, 3), 300.0), r"values outside \[0, 255\]"),
        (np.array([["a"]]), r"dtype <U1"),
        ([Image.new("RGB", (8, 8)), "a.jpg"], r"a str;"),
    ],
)
def test_pictures_it_cannot_read_are_a_one_line_error(run, x, says):
    with pytest.raises(ConfigError, match=r"invalid value for `x`: received " + ".*" + says) as e:
        run.predict(x)
    assert "\n" not in str(e.value) and "expected a Pillow image" in str(e.value)


def test_in_memory_options_are_checked_like_files(run):
    with pytest.raises(ConfigError, match=r"`top_k`: received 0"):
        run.predict(np.zeros((8, 8, 3), np.uint8), top_k=0)
    with pytest.raises(ConfigError, match=r"`batch_size`: received 0"):
        run.predict(np.zeros((8, 8, 3), np.uint8), batch_size=0)


def test_the_model_loads_once_per_run(run, count_loads):
    fresh = imgclf.load_run(run.path, engine="keras")
    fresh.predict(images_of(run, "a")[:2])
    fresh.predict(np.zeros((2, 10, 10, 3), np.uint8))
    fresh.evaluate()
    fresh.report()
    assert len(count_loads) == 1


def test_module_functions_keep_the_run_loaded(run, count_loads):
    path = images_of(run, "c")[0]
    first = imgclf.predict(run.path, path)
    second = imgclf.predict(run.path, [path], top_k=1)
    assert imgclf.evaluate(run.path).n == run.metrics.n
    assert len(count_loads) <= 1 and first[0].label == second[0].label
    assert open_run(run.path, "auto") is open_run(str(run.path), "auto")


def test_open_runs_are_few_and_a_changed_model_is_opened_again(run, tmp_path):
    import os
    import shutil

    same = open_run(run.path, "keras")
    copies = [shutil.copytree(run.path, tmp_path / f"copy{i}") for i in range(OPEN_RUNS)]
    for copy in copies:
        open_run(copy, "keras")
    assert open_run(run.path, "keras") is not same  # dropped as the least recently used
    again = open_run(copies[-1], "keras")
    model = copies[-1] / RunFiles.MODEL
    os.utime(model, ns=(model.stat().st_atime_ns, model.stat().st_mtime_ns + 10**9))
    assert open_run(copies[-1], "keras") is not again


# ---------------------------------------------------------------------------- export, report, serve


def test_export_report_and_load_run_give_the_same_object_type(run):
    parity = run.export("tflite")
    assert parity.good and parity.format.startswith("tflite")
    assert (run.path / "exports").is_dir()
    report = run.report()
    assert report == run.path / "report.html" and report.stat().st_size > 10_000
    again = imgclf.load_run(run.path)
    assert type(again) is imgclf.Run and again.training is None
    assert again.classes == run.classes == ["a", "b", "c"]


def test_serve_uses_this_run_and_the_serve_commands_defaults(run, monkeypatch, count_loads):
    import uvicorn
    from fastapi.testclient import TestClient

    from imgclf.serving import predictor

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setattr(predictor, "load_run", lambda *a, **k: pytest.fail("loaded again"))
    fresh = imgclf.Run(run.path, engine="keras")
    fresh.serve(port=8765)
    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    with TestClient(served["app"]) as client:
        assert client.get("/health").status_code == 200
        model = client.get("/model").json()
    assert model["classes"] == run.classes
    fresh.predict(np.zeros((1, 8, 8, 3), np.uint8))
    assert len(count_loads) == 1  # the server and the object share one model


@pytest.mark.parametrize(
    "options, says", [({"port": 0}, "`port`: received 0"), ({"top_k": 0}, "`top_k`: received 0")]
)
def test_serve_options_are_checked(run, options, says):
    with pytest.raises(ConfigError, match=says):
        run.serve(**options)


def test_the_time_budget_counts_from_the_call_imports_included(tmp_path, monkeypatch):
    # imgclf.train imports TensorFlow (seconds) before the trainer starts: --time counts them, as
    # the command counts the process's start
    import time

    from imgclf.training import trainer

    seen = {}

    def fake_train_run(cfg, verbose=0, started=None):
        seen.update(started=started, entered=time.perf_counter())
        raise KeyboardInterrupt  # stop here: nothing to train

    monkeypatch.setattr(trainer, "train_run", fake_train_run)
    before = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        imgclf.train(make_dataset(tmp_path / "d"), time_budget="45s")
    assert seen["started"] is not None and before <= seen["started"] <= seen["entered"]
