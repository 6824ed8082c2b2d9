"""imgclf export: every format's parity with the Keras model on a two-class and a multi-class
run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import train_tiny_run

from imgclf.cli import main
from imgclf.engines.parity import MIN_AGREEMENT
from imgclf.errors import ConfigError, DataError
from imgclf.serving.export import export_run
from imgclf.serving.predictor import load_run

CASES = [
    ("savedmodel", "float32"),
    ("tflite", "float32"),
    ("tflite", "float16"),
    ("tflite", "int8"),
    ("onnx", "float32"),
]


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    # with augmentation layers in the model: the export must leave them out (TFLite/ONNX cannot
    # convert them)
    two = train_tiny_run(
        tmp_path_factory.mktemp("export"),
        {"no": 16, "yes": 16},
        "binary",
        seed=3,
        augment="flip,rotate=10",
    )
    return {"multi": load_run(trained_run.run_dir), "two": load_run(two)}


def pixels_of(run, n=4) -> np.ndarray:
    from imgclf.data.decode import load_image
    from imgclf.data.split import read_manifest

    items = read_manifest(run.path / "split.csv", run.classes, run.config.data, split="test")[:n]
    return np.stack([load_image(i.path, run.image_size) for i in items]).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(kind, format, precision) → (exit status, printed text, folder): each export made once."""
    done = {}

    def export(run, kind, fmt, precision, capsys):
        key = (kind, fmt, precision)
        if key not in done:
            out = tmp_path_factory.mktemp("exports") / f"{kind}_{fmt}_{precision}"
            code = main(
                [
                    "export",
                    str(run.path),
                    "--format",
                    fmt,
                    "--precision",
                    precision,
                    "--out",
                    str(out),
                ]
            )
            done[key] = (code, capsys.readouterr().out, out)
        return done[key]

    return export


@pytest.mark.parametrize("kind", ["two", "multi"])
@pytest.mark.parametrize(("fmt", "precision"), CASES)
def test_export_parity(runs, exported, kind, fmt, precision, capsys):
    run = runs[kind]
    code, printed, out = exported(run, kind, fmt, precision, capsys)
    info = json.loads((out / "parity.json").read_text())
    assert (out / "labels.txt").read_text().splitlines() == run.classes
    assert (
        info["split"] == "test"
        and info["n"] > 0
        and f"parity on {info['n']} test images" in printed
    )
    assert info["image_size"] == run.image_size
    if precision == "int8":  # reported as it is; quantization may cost agreement
        assert code == 0 and f"{info['agreement']:.2%}" in printed
        assert ("— good" in printed) == (info["agreement"] >= MIN_AGREEMENT)
    else:
        assert code == 0, printed
        assert info["good"] and info["agreement"] >= MIN_AGREEMENT and "— good" in printed
        assert info["max_abs_diff"] < (1e-2 if precision == "float16" else 1e-4)


def test_exports_run_without_imgclf(runs, exported, capsys):
    """The README's snippets: plain TensorFlow / onnxruntime on raw pixels give the Keras
    probabilities."""
    import onnxruntime as ort
    import tensorflow as tf

    run = runs["multi"]
    x = pixels_of(run)
    expected = run.model.predict_on_batch(x)
    folders = {
        fmt: exported(run, "multi", fmt, "float32", capsys)[2]
        for fmt in ("savedmodel", "onnx", "tflite")
    }
    sm = tf.saved_model.load(str(folders["savedmodel"] / "saved_model"))
    np.testing.assert_allclose(sm.serve(x).numpy(), expected, atol=1e-5)
    session = ort.InferenceSession(str(folders["onnx"] / "model.onnx"))
    np.testing.assert_allclose(
        session.run(None, {session.get_inputs()[0].name: x})[0], expected, atol=1e-4
    )
    interpreter = tf.lite.Interpreter(model_path=str(folders["tflite"] / "model_float32.tflite"))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), expected, atol=1e-4
    )


def test_the_two_class_run_has_augmentation_and_its_export_does_not(runs):
    from imgclf.engines.keras_engine import inference_model

    model = runs["two"].model
    assert "augmentation" in [layer.name for layer in model.layers]
    stripped = inference_model(model)
    assert "augmentation" not in [layer.name for layer in stripped.layers]
    x = pixels_of(runs["two"])
    np.testing.assert_allclose(stripped.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_export_refuses_bad_options_and_an_existing_folder(runs, tmp_path):
    run = runs["two"]
    with pytest.raises(ConfigError, match="precision"):
        export_run(run, "onnx", precision="int8")
    with pytest.raises(ConfigError, match="format"):
        export_run(run, "coreml")
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists"):
        export_run(run, "savedmodel", out=tmp_path / "taken")
