""":func:`imgclf.models.loading.load_model_file`: every bad ``.keras`` file gives one line saying
what is wrong — never "File not found" for a file that exists, never advice to turn Keras' safe mode
off — and
a model carrying Python code is refused without running it."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from imgclf.errors import ModelError
from imgclf.models.loading import load_model_file


def small_model() -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")], name="small")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    good = d / "good.keras"
    small_model().save(good)
    data = good.read_bytes()
    out = {"good": good}

    def write(name: str, content: bytes) -> None:
        out[name] = d / f"{name}.keras"
        out[name].write_bytes(content)

    write("empty", b"")
    write("text", b"hello, not a model\n")
    write("truncated", data[: len(data) // 2])
    write("truncated_end", data[:-30])
    with zipfile.ZipFile(good) as src:
        members = {n: src.read(n) for n in src.namelist()}
    weights = bytearray(members["model.weights.h5"])
    weights[len(weights) // 2] ^= 0xFF  # a flipped byte in the middle of the weights
    damaged = d / "damaged.keras"
    with zipfile.ZipFile(damaged, "w") as dst:
        for name, content in members.items():
            dst.writestr(name, bytes(weights) if name == "model.weights.h5" else content)
    # the CRC stored with the entry is that of the tampered bytes, so only the checksum of the
    # original can tell:
    # patch the stored CRC back to the original's, as a bit flip on disk would leave it
    raw = bytearray(damaged.read_bytes())
    info = zipfile.ZipFile(good).getinfo("model.weights.h5")
    tampered = zipfile.ZipFile(damaged).getinfo("model.weights.h5")
    raw = raw.replace(tampered.CRC.to_bytes(4, "little"), info.CRC.to_bytes(4, "little"))
    damaged.write_bytes(bytes(raw))
    out["damaged"] = damaged
    foreign = d / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("notes.txt", "a zip, not a model")
    out["foreign"] = foreign
    unknown = d / "unknown_layer.keras"
    config = json.loads(members["config.json"])
    config["config"]["layers"][-1]["class_name"] = "EvilDense"
    with zipfile.ZipFile(unknown, "w") as dst:
        for name, content in members.items():
            dst.writestr(name, json.dumps(config) if name == "config.json" else content)
    out["unknown_layer"] = unknown
    h5 = d / "legacy.keras"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    out["h5"] = h5
    return out


def test_a_good_model_loads_with_its_weights(files):
    model = load_model_file(files["good"])
    reference = keras.saving.load_model(files["good"])
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(x, verbose=0))
    assert load_model_file(str(files["good"]), "backbone", compile=False).name == "small"


@pytest.mark.parametrize(
    "name, says",
    [
        ("empty", r"the file is empty \(0 bytes\)"),
        ("text", r"it is not a Keras model \(a `\.keras` file is a zip archive"),
        ("truncated", r"the file is truncated or damaged"),
        ("truncated_end", r"the file is truncated or damaged"),
        ("damaged", r"the file is damaged: model\.weights\.h5 inside it fails its checksum"),
        ("foreign", r"it is a zip archive but not a Keras model \(no config\.json inside\)"),
        ("unknown_layer", r"it is not a model Keras can read \(.*EvilDense"),
        ("h5", r"legacy HDF5 \(\.h5\) model"),
    ],
)
def test_bad_files_give_one_line_saying_what_is_wrong(files, name, says):
    with pytest.raises(ModelError) as info:
        load_model_file(files[name], "model")
    message = str(info.value)
    assert message.startswith(f"cannot load the model {str(files[name])!r}: ")
    assert "\n" not in message and len(message) < 400
    assert "File not found" not in message and "safe_mode" not in message
    assert re.search(says, message), message


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(
        ModelError, match=r"cannot load the backbone '.*nope\.keras': the file does not exist$"
    ):
        load_model_file(tmp_path / "nope.keras", "backbone")
    with pytest.raises(ModelError, match=r"it is a folder; expected a \.keras file"):
        load_model_file(tmp_path, "checkpoint")


def test_a_lambda_layer_is_refused_without_running_it(tmp_path):
    """Safe mode: the Lambda's code is never deserialized, let alone run (it would write a file),
    and the
    message explains the refusal instead of telling a CLI user to pass ``safe_mode=False``."""
    marker = tmp_path / "the_lambda_ran"
    inputs = keras.Input((4,))
    code = eval(
        f"lambda x: x * 2 if not open({str(marker)!r}, 'w').close() else x"
    )  # no closure: Keras saves the bytecode
    outputs = keras.layers.Lambda(code)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Dense(2)(outputs)).save(path)
    marker.unlink()  # building the model ran it once, here, by the author
    with pytest.raises(ModelError) as info:
        load_model_file(path, "model")
    message = str(info.value)
    assert "contains Python code (a `Lambda` layer" in message and "refuses it" in message
    assert (
        "safe_mode" not in message
        and "enable_unsafe_deserialization" not in message
        and "\n" not in message
    )
    assert not marker.exists()
    keras.saving.load_model(
        path, safe_mode=False
    )  # what safe mode prevented: loading runs the code
    assert marker.exists()


def test_imgclf_layers_load(tmp_path):
    """imgclf's own registered layers (preprocessing inside the model) load without
    custom_objects."""
    from imgclf.models.layers import ImagenetPreprocess

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, ImagenetPreprocess("tf", name="preprocess")(inputs))
    model.save(tmp_path / "pre.keras")
    assert (
        load_model_file(tmp_path / "pre.keras").get_layer("preprocess").__class__.__name__
        == "ImagenetPreprocess"
    )
