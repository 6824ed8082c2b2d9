"""``imgclf export``: the run's model as a SavedModel, TFLite (float32, float16, int8) or ONNX file,
each checked against the Keras model on the run's held-out images.

Every export folder holds the model, ``labels.txt`` (class names in output order), ``parity.json``
(:mod:`imgclf.engines.parity`: images used, agreement with its 95 % interval, largest probability
difference, image size, temperature) and ``preprocess.py``, a copy of
:mod:`imgclf.engines.preprocess`: imgclf's decoding, resizing and calibration in numpy and Pillow,
so ``load_images`` → the model → ``probabilities`` gives what ``imgclf predict`` gives, without
imgclf. The exported model takes what the Keras model takes — ``(n, size, size, 3)`` float32 RGB
pixels in [0, 255], preprocessing inside — and returns the same probabilities (one sigmoid column
for two classes). int8 is calibrated on images from the run's training split.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgclf.constants import EXPORT_FORMATS, EXPORT_PRECISIONS
from imgclf.engines import preprocess
from imgclf.engines.base import TrainedRun
from imgclf.engines.parity import (
    Parity,
    check_parity,
    held_out_batches,
    held_out_items,
    write_parity,
)
from imgclf.engines.tflite_engine import TFLiteEngine, convert_tflite
from imgclf.errors import DataError, ImgclfError, ModelError, invalid_value

__all__ = ["FORMATS", "PRECISIONS", "export_run", "export_folder"]

FORMATS, PRECISIONS = EXPORT_FORMATS, EXPORT_PRECISIONS  # in config: the CLI lists them
INT8_CALIBRATION_IMAGES = 100
Runner = Callable[[np.ndarray], np.ndarray]  # float32 pixels → the exported model's outputs


def _savedmodel(run: TrainedRun, out: Path) -> tuple[Path, Runner]:
    import tensorflow as tf

    from imgclf.models.classifier import inference_model

    path = out / "saved_model"
    inference_model(run.model).export(str(path), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(path))
    return path, lambda x: loaded.serve(tf.constant(x, tf.float32)).numpy()


def _onnx(run: TrainedRun, out: Path) -> tuple[Path, Runner]:
    """tf2onnx on the frozen graph: Keras' own ``export(format="onnx")`` (tf2onnx's
    ``from_function``) leaves the EfficientNet-Lite0 normalisation constants as unfed graph inputs
    on TF 2.21."""
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
    from imgclf.models.classifier import inference_model

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


def _calibration_pixels(run: TrainedRun) -> np.ndarray:
    """Up to :data:`INT8_CALIBRATION_IMAGES` training images, for int8's activation ranges."""
    items, _, _ = held_out_items(run, "train", INT8_CALIBRATION_IMAGES)
    return np.concatenate(list(held_out_batches(items, run.image_size)))


def _tflite(run: TrainedRun, out: Path, precision: str) -> tuple[Path, Runner]:
    calibration = _calibration_pixels(run) if precision == "int8" else None
    path = out / f"model_{precision}.tflite"
    path.write_bytes(convert_tflite(run.model, precision, calibration))
    return path, TFLiteEngine(path).raw


def _check_options(fmt: str, precision: str) -> None:
    if fmt not in FORMATS:
        raise invalid_value("format", fmt, ", ".join(FORMATS))
    if precision not in PRECISIONS or (precision != "float32" and fmt != "tflite"):
        raise invalid_value(
            "precision",
            precision,
            "float32 for savedmodel/onnx; float32, float16 or int8 for tflite",
        )


def export_folder(run: TrainedRun, fmt: str, precision: str = "float32") -> Path:
    """The default export folder: ``RUN/exports/<format>`` (``tflite_<precision>`` for TFLite).

    Args:
        run: the run.
        fmt: ``savedmodel``, ``tflite`` or ``onnx``.
        precision: the TFLite precision.
    """
    return run.path / "exports" / (fmt if fmt != "tflite" else f"tflite_{precision}")


def _convert(run: TrainedRun, fmt: str, precision: str, folder: Path) -> tuple[Path, Runner]:
    if fmt == "savedmodel":
        return _savedmodel(run, folder)
    if fmt == "onnx":
        return _onnx(run, folder)
    return _tflite(run, folder, precision)


def export_run(
    run: TrainedRun, fmt: str, precision: str = "float32", out: str | Path | None = None
) -> Parity:
    """Export ``run``'s model and check it against the Keras model on held-out images.

    Args:
        run: the run to export (an :class:`imgclf.serving.predictor.Run`, or anything with what
            :class:`imgclf.engines.base.TrainedRun` lists).
        fmt: ``savedmodel``, ``tflite`` or ``onnx``.
        precision: TFLite weights: ``float32``, ``float16`` or ``int8`` (calibrated on training
            images).
        out: the export folder (default :func:`export_folder`); must not exist.

    Returns:
        The parity check's result (``summary()`` for the terminal, ``good``).

    Raises:
        ConfigError: an unknown format, or a precision the format does not have.
        DataError: ``out`` exists, or the run has no held-out images left on disk.
        ModelError: the converter failed.
    """
    _check_options(fmt, precision)
    folder = Path(out) if out else export_folder(run, fmt, precision)
    if folder.exists():
        raise DataError(
            f"export folder {str(folder)!r} already exists; remove it or pass another --out"
        )
    held_out_items(run)  # no held-out images: say so before converting
    folder.mkdir(parents=True)
    name = fmt if fmt != "tflite" else f"tflite {precision}"
    try:
        path, runner = _convert(run, fmt, precision, folder)
        parity = check_parity(run, runner, name, path)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)  # no half-written export passed off as one
        if isinstance(exc, ImgclfError) or not isinstance(exc, Exception):
            raise
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ModelError(f"{fmt} export failed: {first}") from exc
    write_parity(folder, parity, run)
    shutil.copyfile(preprocess.__file__, folder / "preprocess.py")
    return parity
