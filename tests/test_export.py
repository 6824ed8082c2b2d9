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


def test_the_parity_record_uses_the_whole_test_split_and_says_what_it_proves(
    runs, exported, capsys
):
    from imgclf.data.split import read_manifest
    from imgclf.evaluation.stats import wilson_interval

    run = runs["multi"]
    code, printed, out = exported(run, "multi", "tflite", "float32", capsys)
    info = json.loads((out / "parity.json").read_text())
    test = read_manifest(run.path / "split.csv", run.classes, run.config.data, split="test")
    assert info["n"] == info["available"] == len(test)  # all of them (fewer than the cap)
    assert info["interval"] == list(wilson_interval(info["agreed"], info["n"]))
    assert info["interval"][0] < info["agreement"] <= info["interval"][1]
    assert info["path"] == "model_float32.tflite" and (out / info["path"]).is_file()
    low = f"{info['interval'][0]:.1%}"
    assert f"at least {low}" in info["proves"] and f"95 % interval {low}" in printed
    assert info["proves"] in printed


def test_parity_spreads_a_capped_check_over_the_split(runs, monkeypatch):
    from imgclf.engines import parity

    items, split, available = parity.held_out_items(runs["multi"], limit=None)
    capped, _, same = parity.held_out_items(runs["multi"], limit=4)
    assert split == "test" and same == available == len(items) > 4
    assert len(capped) == 4 and capped[0] == items[0] and capped[-1] == items[-1]
    record = parity.Parity("onnx", runs["multi"].path / "m.onnx", "test", 4, 12, 4, 0.0).record()
    assert record["path"] == "m.onnx" and "(spread over 12)" in record["proves"]


def test_every_export_folder_carries_preprocess_py_that_decodes_as_imgclf(
    runs, exported, mixed_images, tmp_path, capsys
):
    """preprocess.py (numpy and Pillow only) gives the pixels imgclf's decoder gives, for every
    kind of file imgclf reads, and imgclf's calibrated probabilities from the model's outputs."""
    import importlib.util

    from PIL import Image

    from imgclf.data.decode import load_image
    from imgclf.evaluation.inference import apply_temperature
    from imgclf.models.classifier import class_probabilities

    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (700, 500, 3), np.uint8)).save(big)
    for kind, fmt in (("multi", "onnx"), ("two", "savedmodel")):
        run = runs[kind]
        out = exported(run, kind, fmt, "float32", capsys)[2]
        spec = importlib.util.spec_from_file_location(f"pre_{kind}", out / "preprocess.py")
        pre = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pre)
        assert pre.image_size() == run.image_size and pre.labels() == run.classes
        for path in [*mixed_images.values(), big]:
            for size in (run.image_size, 224):
                np.testing.assert_array_equal(
                    pre.load_image(path, size), load_image(str(path), size)
                )
        outputs = run.model.predict_on_batch(pre.load_images([big, mixed_images["jpeg"]]))
        np.testing.assert_allclose(
            pre.probabilities(outputs),
            apply_temperature(class_probabilities(outputs), run.temperature),
            rtol=1e-12,
        )


def test_the_two_class_run_has_augmentation_and_its_export_does_not(runs):
    from imgclf.models.classifier import inference_model

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
