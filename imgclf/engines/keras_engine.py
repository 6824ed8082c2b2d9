"""The run's Keras model as an engine (the model as it is exported, without its training-only
layers: :func:`imgclf.models.classifier.inference_model`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from imgclf.engines.base import Engine

if TYPE_CHECKING:
    import keras

__all__ = ["KerasEngine", "as_engine"]


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
