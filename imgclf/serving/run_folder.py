"""A run folder opened for reading: its options, class names, input size, calibration, test
metrics, and the model and engine that predict with it, each loaded on first use and kept.
:class:`imgclf.serving.predictor.Run` predicts and evaluates with them."""

from __future__ import annotations

from pathlib import Path

from imgclf.constants import ENGINES, PREDICT_ENGINE
from imgclf.errors import invalid_value
from imgclf.evaluation.metrics import Metrics
from imgclf.runs import RunFiles, read_config, read_json, require_trained

__all__ = ["RunFolder"]


class RunFolder:
    """A finished run folder, read: the arguments and attributes are :class:`~imgclf.serving.
    predictor.Run`'s."""

    def __init__(self, path: str | Path, engine: str = PREDICT_ENGINE, *, untrained: bool = False):
        if engine not in ENGINES:
            raise invalid_value("engine", engine, ", ".join(ENGINES))
        self.path = Path(path).expanduser() if untrained else require_trained(path)
        self.config = read_config(self.path / RunFiles.CONFIG)
        self.classes: list[str] = read_json(self.path / RunFiles.CLASSES)
        self.image_size = int(self.config.image_size or 224)
        self.engine_name = engine
        self._model = None
        self._engine = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model!r}, classes={len(self.classes)})"

    @property
    def model(self):
        """The run's Keras model (preprocessing inside), loaded on first use and kept."""
        if self._model is None:
            from imgclf.models.loading import load_model_file

            require_trained(self.path)
            self._model = load_model_file(self.path / RunFiles.MODEL, "run's model", compile=False)
        return self._model

    @property
    def engine(self):
        """The :class:`imgclf.engines.base.Engine` predictions run on (made on first use)."""
        return self.engine_for_job()

    def engine_for_job(self, images: int | None = None):
        """The engine for a job of ``images`` images (None: unknown or long-running, e.g. a server).

        Args:
            images: the job's size; with ``engine="auto"`` a small job does not pay for a first
                TFLite conversion (see :func:`imgclf.engines.choose.engine_for`).

        Returns:
            An :class:`~imgclf.engines.base.Engine`: ``engine(pixels)`` → probabilities.

        >>> run.engine_for_job(3).num_classes
        3
        """
        if self._engine is None:
            require_trained(self.path)
            from imgclf.engines.choose import engine_for
            from imgclf.engines.keras_engine import KerasEngine

            self._engine = engine_for(self, self.engine_name, images)
            if self._engine is None:  # Keras for this job only
                return KerasEngine(self.model)
        return self._engine

    @property
    def metrics(self) -> Metrics | None:
        """The test metrics training saved (``metrics.json``); None if there are none."""
        p = self.path / RunFiles.METRICS
        return Metrics.from_dict(read_json(p)) if p.exists() else None

    @property
    def temperature(self) -> float:
        """The run's calibration temperature (1.0 when it has none): applied to every prediction."""
        from imgclf.evaluation.calibration import read_temperature

        return read_temperature(self.path)
