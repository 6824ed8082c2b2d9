"""The run's Keras model as an engine, and the model as it is exported (no training-only layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imgclf.engines.base import Engine

if TYPE_CHECKING:
    import keras

__all__ = ["KerasEngine", "as_engine", "inference_model"]


class KerasEngine(Engine):
    """A Keras model as an engine (``predict_on_batch``).

    Args:
        model: a run's Keras model (preprocessing inside).
    """

    name = "keras"

    def __init__(self, model: keras.Model):
        self.model = model

    @property
    def num_classes(self) -> int:
        return max(2, int(self.model.output_shape[-1]))

    def raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x))


def as_engine(model: Engine | keras.Model) -> Engine:
    """``model`` itself if it is an :class:`Engine`, else a :class:`KerasEngine` around it.

    Args:
        model: an engine or a Keras model.
    """
    return model if isinstance(model, Engine) else KerasEngine(model)


def inference_model(model: keras.Model) -> keras.Model:
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
