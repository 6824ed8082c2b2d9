"""What a prediction engine is, and what engines read from a run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from imgclf.config import TrainConfig
from imgclf.models.classifier import class_probabilities

if TYPE_CHECKING:
    import keras

__all__ = ["Engine", "TrainedRun"]


class TrainedRun(Protocol):
    """What the engines read from a run (:class:`imgclf.serving.predictor.Run` is one).

    Attributes:
        path: the run folder (``model.keras``, ``split.csv``, ``engines/``).
        config: the run's resolved config (``data``: the folder ``split.csv`` paths are under).
        classes: class names in output order. image_size: the square input size. model: the run's
        Keras model (loaded on first use). temperature: the run's calibration temperature (1.0:
        none).
    """

    @property
    def path(self) -> Path: ...

    @property
    def config(self) -> TrainConfig: ...

    @property
    def classes(self) -> list[str]: ...

    @property
    def image_size(self) -> int: ...

    @property
    def model(self) -> keras.Model: ...

    @property
    def temperature(self) -> float: ...


class Engine(ABC):
    """A forward pass: ``engine(batch)`` → ``(n, num_classes)`` class probabilities (float64).

    Subclasses implement :meth:`raw` (the model's own outputs: one sigmoid column for two classes,
    or softmax rows) for ``(n, size, size, 3)`` RGB pixels in [0, 255] (uint8 or float32, NumPy or
    tensor), and :attr:`num_classes`.
    """

    name = "engine"

    @property
    @abstractmethod
    def num_classes(self) -> int:
        """Columns of the probabilities returned (2 for a one-unit sigmoid model)."""

    @abstractmethod
    def raw(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for the batch ``x``."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return class_probabilities(self.raw(x))
