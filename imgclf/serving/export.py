"""``imgclf export``: the run's model as a SavedModel, TFLite (float32, float16, int8) or ONNX file,
each proven against the Keras model on the run's held-out test images.

Every export folder holds the model, ``labels.txt`` (class names in output order) and
``parity.json``.
The exported model takes what the Keras model takes — ``(n, size, size, 3)`` float32 RGB pixels in
[0, 255], preprocessing inside — and returns the same probabilities (one sigmoid column for two
classes). Parity: top-1 agreement with the Keras model and the largest probability difference on the
test split (the validation split if the run has no test split); below :data:`MIN_AGREEMENT` an
export
is not called good. int8 is calibrated on images from the run's training split.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.config import EXPORT_FORMATS, EXPORT_PRECISIONS
from imgclf.errors import DataError, ImgclfError, ModelError, invalid_value
from imgclf.evaluation.inference import Engine

__all__ = [
    "FORMATS",
    "MIN_AGREEMENT",
    "PRECISIONS",
    "Parity",
    "TFLiteEngine",
    "export_run",
    "inference_model",
]

FORMATS, PRECISIONS = (
    EXPORT_FORMATS,
    EXPORT_PRECISIONS,
)  # in imgclf.config: the CLI lists them without importing TensorFlow
MIN_AGREEMENT = 0.99
INT8_CALIBRATION_IMAGES = 100
MAX_INTERPRETERS = 8  # TFLite interpreters kept per engine, one per batch shape seen


@dataclass
class Parity:
    """How an exported model compares with the Keras model on held-out images."""

    format: str
    path: str
    split: str
    n: int
    agreement: float  # share of images with the same top-1 class
    max_abs_diff: float  # largest |p_export - p_keras| over images and classes
    good: bool

    def summary(self) -> str:
        verdict = "good" if self.good else f"NOT good (below {MIN_AGREEMENT:.0%} agreement)"
        return (
            f"{self.format}: {self.path}\n  parity on {self.n} {self.split} images: top-1 "
            "agreement "
            f"{self.agreement:.2%}, largest probability difference "
            f"{self.max_abs_diff:.2e} — {verdict}"
        )


def _held_out_pixels(run, split: str, limit: int | None = None) -> tuple[np.ndarray, str]:
    from imgclf.data.decode import DecodeLog
    from imgclf.data.pipeline import batched, decoded_dataset
    from imgclf.data.split import read_manifest
    from imgclf.runs import RunFiles

    for name in (split, "val") if split == "test" else (split,):
        items = read_manifest(run.path / RunFiles.SPLIT, run.classes, run.config.data, split=name)
        items = [i for i in items if Path(i.path).exists()][:limit]
        if items:
            x = [
                b.numpy()
                for b, _ in batched(
                    decoded_dataset(items, run.image_size, DecodeLog(), cache=False), 64
                )
            ]
            return np.concatenate(x), name
    raise DataError(
        f"run {str(run.path)!r} has no {split} images left on disk to check an export against"
    )


def inference_model(model):
    """``model`` without its training-only augmentation block (same layers, same weights).

    The random augmentation ops do nothing at inference but stay in a traced graph, and neither
    TFLite nor ONNX can convert them.

    Args:
        model: a run's Keras model (input → [augmentation] → backbone → dropout → predictions).
    """
    import keras

    names = [layer.name for layer in model.layers]
    if "augmentation" not in names:
        return model
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:
        if layer.name != "augmentation":
            x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _savedmodel(run, out: Path) -> tuple[Path, Callable]:
    import tensorflow as tf

    path = out / "saved_model"
    inference_model(run.model).export(str(path), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(path))
    return path, lambda x: loaded.serve(tf.constant(x, tf.float32)).numpy()


def _onnx(run, out: Path) -> tuple[Path, Callable]:
    """tf2onnx on the frozen graph: Keras' own ``export(format="onnx")`` (tf2onnx's
    ``from_function``)
    leaves the EfficientNet-Lite0 normalisation constants as unfed graph inputs on TF 2.21."""
    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )
    except ImportError as exc:
        raise DataError(
            f"--format onnx needs tf2onnx, onnx and onnxruntime ({exc}); pip install imgclf[onnx]"
        ) from None
    model = inference_model(run.model)
    spec = tf.TensorSpec((None, run.image_size, run.image_size, 3), tf.float32, name="image")
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    )
    path = out / "model.onnx"
    tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs],
        opset=17,
        output_path=str(path),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return path, lambda x: session.run(None, {name: x.astype(np.float32)})[0]


def _tflite(run, out: Path, precision: str) -> tuple[Path, Callable]:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        inference_model(run.model).export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if precision != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8":
            calibration, _ = _held_out_pixels(run, "train", INT8_CALIBRATION_IMAGES)
            converter.representative_dataset = lambda: (
                [calibration[i : i + 1].astype(np.float32)] for i in range(len(calibration))
            )
        data = converter.convert()
    path = out / f"model_{precision}.tflite"
    path.write_bytes(data)
    return path, TFLiteEngine(path).raw


class TFLiteEngine(Engine):
    """A ``.tflite`` file as a prediction engine (XNNPACK on the CPU, one interpreter per batch
    size).

    The export's parity check and ``imgclf predict --engine tflite`` both run it. Not thread-safe by
    itself, so calls are serialised.

    Args:
        path: the ``.tflite`` model (input: float32 RGB pixels in [0, 255], preprocessing inside).
        threads: interpreter threads (default: the machine's CPU count).
    """

    name = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path, self.threads = Path(path), threads or os.cpu_count() or 1
        self._interpreters: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def _interpreter(self, shape: tuple | None):
        """The interpreter allocated for input ``shape`` (None: the file's own, for reading
        details)."""
        if shape not in self._interpreters:
            import warnings

            import tensorflow as tf

            if len(self._interpreters) >= MAX_INTERPRETERS:  # e.g. a stream of odd last-batch sizes
                self._interpreters.clear()
            with (
                warnings.catch_warnings()
            ):  # tf.lite.Interpreter's notice that LiteRT will replace it
                warnings.simplefilter("ignore")
                it = tf.lite.Interpreter(model_path=str(self.path), num_threads=self.threads)
            if shape is not None:
                it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
                it.allocate_tensors()
            self._interpreters[shape] = it
        return self._interpreters[shape]

    @property
    def num_classes(self) -> int:
        with self._lock:
            return max(2, int(self._interpreter(None).get_output_details()[0]["shape"][-1]))

    def raw(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        with self._lock:
            it = self._interpreter(x.shape)
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64)


def _compare(run, runner: Callable, pixels: np.ndarray) -> tuple[float, float]:
    from imgclf.evaluation.inference import score_arrays
    from imgclf.models.classifier import class_probabilities

    keras_p = np.concatenate(
        [score_arrays(run.model, pixels[i : i + 64]) for i in range(0, len(pixels), 64)]
    )
    export_p = np.concatenate(
        [class_probabilities(runner(pixels[i : i + 64])) for i in range(0, len(pixels), 64)]
    )
    return float((keras_p.argmax(1) == export_p.argmax(1)).mean()), float(
        np.abs(keras_p - export_p).max()
    )


def export_run(run, fmt: str, precision: str = "float32", out: str | Path | None = None) -> Parity:
    """Export ``run``'s model and check it against the Keras model on held-out images.

    Args:
        run: the run to export (an :class:`imgclf.serving.predictor.Run`; not imported here, which
            would close the cycle predictor -> engines -> export -> predictor).
        fmt: ``savedmodel``, ``tflite`` or ``onnx``.
        precision: TFLite weights: ``float32``, ``float16`` or ``int8`` (calibrated on training
        images).
        out: the export folder (default ``RUN/exports/<format>[_<precision>]``); must not exist.
    """
    if fmt not in FORMATS:
        raise invalid_value("format", fmt, ", ".join(FORMATS))
    if precision not in PRECISIONS or (precision != "float32" and fmt != "tflite"):
        raise invalid_value(
            "precision",
            precision,
            "float32 for savedmodel/onnx; float32, float16 or int8 for tflite",
        )
    folder = (
        Path(out)
        if out
        else run.path / "exports" / (fmt if fmt != "tflite" else f"tflite_{precision}")
    )
    if folder.exists():
        raise DataError(
            f"export folder {str(folder)!r} already exists; remove it or pass another --out"
        )
    pixels, split = _held_out_pixels(run, "test")
    folder.mkdir(parents=True)
    try:
        path, runner = (
            {"savedmodel": _savedmodel, "onnx": _onnx}[fmt](run, folder)
            if fmt != "tflite"
            else _tflite(run, folder, precision)
        )
        agreement, diff = _compare(run, runner, pixels)
    except ImgclfError:
        shutil.rmtree(folder, ignore_errors=True)  # no half-written export passed off as one
        raise
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets one line)
        shutil.rmtree(folder, ignore_errors=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{fmt} export failed: {first}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / "labels.txt").write_text("".join(f"{c}\n" for c in run.classes), encoding="utf-8")
    name = fmt if fmt != "tflite" else f"tflite {precision}"
    parity = Parity(
        name, str(path), split, len(pixels), agreement, diff, agreement >= MIN_AGREEMENT
    )
    info = {
        **asdict(parity),
        "image_size": run.image_size,
        "input": "float32 RGB pixels in [0, 255], (n, size, size, 3)",
        "temperature": run.temperature,
    }
    (folder / "parity.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return parity
