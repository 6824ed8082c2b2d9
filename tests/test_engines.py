"""Prediction engines (issue 11): a parity-checked TFLite copy of the run's model, cached, gives the
same predictions as Keras through every feature of predict; auto falls back to Keras and says so."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import write_bad_files

from imgclf.cli import main
from imgclf.engines import choose as engines
from imgclf.engines.keras_engine import KerasEngine
from imgclf.engines.tflite_engine import TFLiteEngine
from imgclf.errors import ConfigError, ModelError
from imgclf.serving.predictor import load_run


def jpgs(data: Path, cls: str) -> list[str]:
    return [str(p) for p in sorted((data / cls).glob("*.jpg"))]


@pytest.fixture(scope="module")
def copied(trained_run, tmp_path_factory) -> Path:
    """A copy of the session run with its TFLite copy made (the session run itself stays as it is),
    and a stale copy of an 'earlier model' that the conversion must delete."""
    folder = tmp_path_factory.mktemp("engines") / "shapes"
    # without a TFLite copy another test file's server may have left in the session run (one process
    # runs several files): this module makes and checks its own
    shutil.copytree(trained_run.run_dir, folder, ignore=shutil.ignore_patterns("engines"))
    (folder / "engines" / "0123-tf0.0").mkdir(parents=True)
    (folder / "engines" / "0123-tf0.0" / "parity.json").write_text(
        '{"agreement": 1.0, "path": "x.tflite"}'
    )
    assert isinstance(load_run(folder, "tflite").engine, TFLiteEngine)
    return folder


def same(a, b, atol=1e-4) -> None:
    assert [p.path for p in a] == [p.path for p in b]
    assert [p.label for p in a] == [p.label for p in b]
    assert [p.error for p in a] == [p.error for p in b]
    for p, q in zip(a, b, strict=True):
        assert [lbl for lbl, _ in p.top_k] == [lbl for lbl, _ in q.top_k]
        np.testing.assert_allclose([x for _, x in p.top_k], [x for _, x in q.top_k], atol=atol)


def test_the_copy_is_cached_once_and_replaces_an_earlier_models(copied, monkeypatch):
    (key,) = [d.name for d in (copied / "engines").iterdir()]  # the stale copy is gone
    assert key == engines.engine_key(copied / "model.keras")
    parity = json.loads((copied / "engines" / key / "parity.json").read_text())
    assert parity["agreement"] >= 0.99 and parity["split"] == "test" and parity["n"] > 0
    # the record names the model inside its own folder, never the temporary one it was made in
    assert parity["path"] == "model_float32.tflite" and "staging" not in json.dumps(parity)
    assert (copied / "engines" / key / parity["path"]).is_file()
    assert parity["n"] == parity["available"] and len(parity["interval"]) == 2
    assert not [p for p in (copied / "engines").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(engines, "_convert", lambda *a, **k: pytest.fail("converted again"))
    assert isinstance(
        load_run(copied).engine, TFLiteEngine
    )  # auto reuses it, whatever the job size


def test_the_key_follows_the_model_file(tmp_path):
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    a.write_bytes(b"model one")
    b.write_bytes(b"model two")
    assert engines.engine_key(a) != engines.engine_key(b)
    assert engines.engine_key(a) == engines.engine_key(a)


def test_every_predict_feature_agrees_between_the_engines(copied, trained_run, tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    paths = (
        jpgs(trained_run.data, "cat")[:7]
        + [str(bad["truncated"])]
        + jpgs(trained_run.data, "dog")[:7]
        + jpgs(trained_run.data, "fox")[:7]
    )
    keras_run, lite_run = load_run(copied, "keras"), load_run(copied, "tflite")
    assert isinstance(keras_run.engine, KerasEngine) and isinstance(lite_run.engine, TFLiteEngine)
    plain = lite_run.predict(paths)
    same(keras_run.predict(paths), plain)
    assert not plain[7].ok  # the error row is there in both
    for options in ({"top_k": 1, "min_confidence": 0.5, "batch_size": 5}, {"tta": True}):
        same(keras_run.predict(paths, **options), lite_run.predict(paths, **options))
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        keras_run.predict_arrays(pixels), lite_run.predict_arrays(pixels), atol=1e-4
    )
    calibrated = tmp_path / "calibrated"
    shutil.copytree(copied, calibrated)  # the copy travels with the run folder
    (calibrated / "calibration.json").write_text(json.dumps({"temperature": 3.0}))
    soft = load_run(calibrated, "tflite").predict(paths)
    same(load_run(calibrated, "keras").predict(paths), soft)
    assert max(p.confidence for p in soft if p.ok) < max(p.confidence for p in plain if p.ok)


def test_output_and_resume_agree_between_the_engines(copied, trained_run, tmp_path, capsys):
    paths = jpgs(trained_run.data, "dog") + jpgs(trained_run.data, "fox")
    out_k, out_t = tmp_path / "k.csv", tmp_path / "t.csv"
    assert main(["predict", str(copied), *paths, "-o", str(out_k), "--engine", "keras", "-q"]) == 0
    assert (
        main(["predict", str(copied), *paths[:9], "-o", str(out_t), "--engine", "tflite", "-q"])
        == 0
    )
    assert (
        main(["predict", str(copied), *paths, "-o", str(out_t), "--resume", "-q"]) == 0
    )  # auto: the cached copy
    capsys.readouterr()
    rows_k, rows_t = (list(csv.DictReader(io.StringIO(f.read_text()))) for f in (out_k, out_t))
    assert [r["path"] for r in rows_t] == paths
    assert [r["label"] for r in rows_k] == [r["label"] for r in rows_t]
    np.testing.assert_allclose(
        [float(r["confidence"]) for r in rows_k],
        [float(r["confidence"]) for r in rows_t],
        atol=1e-4,
    )


@pytest.mark.usefixtures("private_cache")
def test_a_read_only_run_keeps_its_copy_in_the_user_cache(
    copied, trained_run, tmp_path, monkeypatch, caplog
):
    """Where the copy goes and when auto makes it; the conversion itself is the module fixture's
    (here the conversion copies its result, so no second conversion is paid for)."""
    folder = tmp_path / "readonly"
    shutil.copytree(copied, folder, ignore=shutil.ignore_patterns("engines"))
    writable = engines._writable
    monkeypatch.setattr(
        engines, "_writable", lambda p: not str(p).startswith(str(folder)) and writable(p)
    )
    (made,) = (copied / "engines").iterdir()
    monkeypatch.setattr(
        engines,
        "_convert",
        lambda run, folder: shutil.copytree(made, folder, dirs_exist_ok=True),
    )
    monkeypatch.setattr(engines, "AUTO_CONVERT_MIN_IMAGES", 2)
    paths = jpgs(trained_run.data, "cat")[:3]
    small = load_run(folder)
    assert (
        small.predict(paths[:1])[0].ok and small._engine is None
    )  # one image: Keras, no conversion
    assert all(p.ok for p in small.predict(paths))  # a job big enough: converted
    assert isinstance(small._engine, TFLiteEngine)
    assert "converting the model to TFLite once" in caplog.text  # logged (the CLI shows it)
    caplog.clear()
    key = engines.engine_key(folder / "model.keras")
    assert (tmp_path / "cache" / "engines" / key / "parity.json").is_file() and not (
        folder / "engines"
    ).exists()
    assert isinstance(load_run(folder).engine, TFLiteEngine)
    assert "converting" not in caplog.text  # found in the cache, not converted again


def test_a_disagreeing_copy_falls_back_to_keras_and_says_so(copied, tmp_path, caplog):
    folder = tmp_path / "disagrees"
    shutil.copytree(copied, folder)
    (key,) = list((folder / "engines").iterdir())
    parity = json.loads((key / "parity.json").read_text())
    (key / "parity.json").write_text(json.dumps({**parity, "agreement": 0.5, "good": False}))
    run = load_run(folder)
    assert isinstance(run.engine, KerasEngine) and isinstance(run.engine, KerasEngine)
    err = caplog.text  # a warning record (the CLI shows it on stderr)
    assert err.count("predicting with Keras") == 1 and "50.00%" in err  # said once, not per batch
    with pytest.raises(ModelError, match="agrees with Keras on 50.00%"):
        load_run(folder, "tflite").engine  # noqa: B018


def test_a_bad_engine_name_is_refused(copied, capsys):
    with pytest.raises(ConfigError, match="engine"):
        load_run(copied, "onnx")
    with pytest.raises(SystemExit) as usage:
        main(["predict", str(copied), "x.jpg", "--engine", "fast"])
    assert usage.value.code == 2
