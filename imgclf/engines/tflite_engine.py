"""A ``.tflite`` file as an engine, and the converter that makes one from the run's Keras model.

The interpreter is LiteRT's (``pip install ai-edge-litert``, in ``requirements.lock`` and the
``imgclf[litert]`` extra), the successor of ``tf.lite.Interpreter``, which TensorFlow 2.21 warns is
scheduled for deletion; without it, TensorFlow's own interpreter runs the file (same kernels, same
XNNPACK delegate).
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgclf.engines.base import Engine
from imgclf.runtime import quiet_native_stderr

if TYPE_CHECKING:
    import keras

__all__ = ["MAX_INTERPRETERS", "TFLiteEngine", "convert_tflite", "interpreter"]

MAX_INTERPRETERS = 8  # TFLite interpreters kept per engine, one per batch shape seen


def interpreter(path: str | Path, threads: int) -> Any:
    """A TFLite interpreter for ``path``: LiteRT's when installed, else TensorFlow's.

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():  # its notice that LiteRT replaces it: LiteRT is not here
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    return Interpreter(model_path=str(path), num_threads=threads)


class TFLiteEngine(Engine):
    """A ``.tflite`` file as a prediction engine (XNNPACK on the CPU, one interpreter per batch
    size).

    The parity check and ``imgclf predict --engine tflite`` both run it. Not thread-safe by itself,
    so calls are serialised.

    Args:
        path: the ``.tflite`` model (input: float32 RGB pixels in [0, 255], preprocessing inside).
        threads: interpreter threads (default: the machine's CPU count).
    """

    name = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path, self.threads = Path(path), threads or os.cpu_count() or 1
        self._interpreters: dict[tuple[int, ...] | None, Any] = {}
        self._lock = threading.Lock()

    def _interpreter(self, shape: tuple[int, ...] | None) -> Any:
        """The interpreter allocated for input ``shape`` (None: the file's own, for reading
        details)."""
        if shape not in self._interpreters:
            if len(self._interpreters) >= MAX_INTERPRETERS:  # e.g. a stream of odd last-batch sizes
                self._interpreters.clear()
            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate …"
                it = interpreter(self.path, self.threads)
                if shape is not None:
                    it.resize_tensor_input(it.get_input_details()[0]["index"], list(shape))
                    it.allocate_tensors()
            self._interpreters[shape] = it
        return self._interpreters[shape]

    @property
    def num_classes(self) -> int:
        with self._lock:
            return max(2, int(self._interpreter(None).get_output_details()[0]["shape"][-1]))

    def raw(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        with self._lock:
            it = self._interpreter(tuple(x.shape))
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64)


def convert_tflite(
    model: keras.Model, precision: str = "float32", calibration: np.ndarray | None = None
) -> bytes:
    """The TFLite flatbuffer of ``model`` (without its augmentation layers).

    Args:
        model: the run's Keras model.
        precision: ``float32``, ``float16`` (weights) or ``int8`` (weights and activations).
        calibration: for ``int8``: ``(n, size, size, 3)`` pixels the activation ranges are measured
            on (training images).
    """
    import tensorflow as tf

    from imgclf.models.classifier import inference_model

    with tempfile.TemporaryDirectory() as tmp:
        inference_model(model).export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if precision != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "int8" and calibration is not None:
            images = calibration
            converter.representative_dataset = lambda: (
                [images[i : i + 1].astype(np.float32)] for i in range(len(images))
            )
        return converter.convert()
