"""A trained run as an object: ``load_run(path).predict(paths)`` and ``.evaluate(folder)``.

Everything is read from the run folder — class names, input size, the model with its preprocessing
inside — so a user never re-types preprocessing at prediction time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.config import ENGINES, PREDICT_ENGINE
from imgclf.data.scan import ImageItem
from imgclf.errors import ConfigError, invalid_value
from imgclf.evaluation.metrics import Metrics
from imgclf.runs import RunFiles, read_config, read_json, require_trained
from imgclf.serving.inputs import expand_paths

__all__ = ["Prediction", "Run", "load_run", "expand_paths", "UNSURE"]

UNSURE = "unsure"  # the label of an image whose top probability is below --min-confidence


@dataclass
class Prediction:
    """One image's result: ``label`` and ``confidence`` of the top class, ``top_k`` as (label,
    prob).

    ``label`` is :data:`UNSURE` when the top probability is below the ``min_confidence`` asked for
    (``confidence`` and ``top_k`` still say what the model thought); ``error`` says why a file could
    not be predicted (``label`` and ``confidence`` are then None).
    """

    path: str
    label: str | None
    confidence: float | None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": lbl, "probability": p} for lbl, p in self.top_k],
            "error": self.error,
        }


class Run:
    """A finished run folder. The model is loaded on first use.

    Args:
        path: the run folder.
        engine: how :meth:`predict` and :meth:`predict_arrays` run the model: ``auto`` (a cached,
            parity-checked TFLite copy, else Keras), ``tflite`` or ``keras`` (see
            :mod:`imgclf.serving.engines`). Evaluation and Grad-CAM always use the Keras model.
    """

    def __init__(self, path: str | Path, engine: str = PREDICT_ENGINE):
        if engine not in ENGINES:
            raise invalid_value("engine", engine, ", ".join(ENGINES))
        self.path = require_trained(path)
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
        if self._model is None:
            from imgclf.models.loading import load_model_file

            self._model = load_model_file(self.path / RunFiles.MODEL, "run's model", compile=False)
        return self._model

    @property
    def engine(self):
        """The :class:`imgclf.evaluation.inference.Engine` predictions run on (made on first
        use)."""
        return self.engine_for_job()

    def engine_for_job(self, images: int | None = None):
        """The engine for a job of ``images`` images (None: unknown or long-running, e.g. a server).

        Args:
            images: the job's size; with ``engine="auto"`` a small job does not pay for a first
                TFLite conversion (see :func:`imgclf.serving.engines.engine_for`).
        """
        if self._engine is None:
            from imgclf.evaluation.inference import KerasEngine
            from imgclf.serving.engines import engine_for

            self._engine = engine_for(self, self.engine_name, images)
            if self._engine is None:  # Keras for this job only
                return KerasEngine(self.model)
        return self._engine

    @property
    def metrics(self) -> Metrics | None:
        p = self.path / RunFiles.METRICS
        return Metrics.from_dict(read_json(p)) if p.exists() else None

    @property
    def temperature(self) -> float:
        """The run's calibration temperature (1.0 when it has none): applied to every prediction."""
        from imgclf.evaluation.calibration import read_temperature

        return read_temperature(self.path)

    def predict_arrays(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """Calibrated class probabilities for a ``(n, size, size, 3)`` batch of RGB pixels in [0,
        255].

        Args:
            images: the pixels, already at the run's image size.
            tta: average each image's probabilities with its mirror image's.
        """
        from imgclf.evaluation.inference import score_arrays

        return score_arrays(self.engine_for_job(len(images)), images, self.temperature, tta)

    def predict(
        self,
        paths: str | Path | Sequence[str | Path],
        top_k: int = 3,
        batch_size: int = 32,
        min_confidence: float | None = None,
        threshold: float | None = None,
        tta: bool = False,
    ) -> list[Prediction]:
        """Predict files, folders (recursively), globs and ``@list.txt`` files, in the order given.

        An unreadable file gets a Prediction with ``error`` set; the others are predicted.

        Args:
            paths: one path or a list (see :func:`imgclf.serving.inputs.expand_paths`).
            top_k: classes listed per image.
            batch_size: images per forward pass.
            min_confidence: below this top probability the label is ``"unsure"``.
            threshold: two-class runs only: the probability of the second class from which it is
                predicted (default 0.5, i.e. the more probable class).
            tta: test-time augmentation: each image's probabilities are averaged with those of its
                horizontal mirror image (twice the compute).
        """
        files = expand_paths([paths] if isinstance(paths, (str, Path)) else paths)
        return [
            p
            for chunk in self.iter_predict(files, top_k, batch_size, min_confidence, threshold, tta)
            for p in chunk
        ]

    def iter_predict(
        self,
        files: Sequence[str],
        top_k: int = 3,
        batch_size: int = 32,
        min_confidence: float | None = None,
        threshold: float | None = None,
        tta: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> Iterator[list[Prediction]]:
        """Predictions for ``files`` one batch at a time, in input order (for output written as it
        goes).

        Args:
            files: image paths (already expanded, each once).
            top_k: classes listed per image.
            batch_size: images per forward pass.
            min_confidence: below this top probability the label is ``"unsure"``.
            threshold: two-class runs: the second class's probability from which it is predicted.
            tta: average each image's probabilities with its mirror image's.
            on_batch: called with the number of files each yielded batch accounts for (progress).
        """
        from imgclf.evaluation.inference import iter_scores

        k = self._check_options(top_k, min_confidence, threshold)
        items = [ImageItem(f, -1) for f in files]
        position = {f: i for i, f in enumerate(files)}
        engine = self.engine_for_job(len(files))
        for scores in iter_scores(
            engine, items, self.image_size, batch_size, self.temperature, tta
        ):
            rows = {
                f: Prediction(f, None, None, [], reason) for f, reason in scores.failures.items()
            }
            for f, p in zip(scores.paths, scores.probs, strict=True):
                rows[f] = self.to_prediction(f, p, k, min_confidence, threshold)
            chunk = sorted(rows.values(), key=lambda r: position[r.path])
            if on_batch is not None:
                on_batch(len(chunk))
            yield chunk

    def _check_options(
        self, top_k: int, min_confidence: float | None, threshold: float | None
    ) -> int:
        if not isinstance(top_k, int) or top_k < 1:
            raise invalid_value("top_k", top_k, "an integer >= 1")
        if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
            raise invalid_value("min_confidence", min_confidence, "a probability between 0 and 1")
        if threshold is not None:
            if len(self.classes) != 2:
                raise ConfigError(
                    "threshold applies to two-class runs only; this run has "
                    f"{len(self.classes)} classes"
                )
            if not 0.0 < threshold < 1.0:
                raise invalid_value(
                    "threshold",
                    threshold,
                    f"a probability of {self.classes[1]!r} strictly between 0 and 1",
                )
        return min(top_k, len(self.classes))

    def to_prediction(
        self,
        path: str,
        p: np.ndarray,
        top_k: int = 3,
        min_confidence: float | None = None,
        threshold: float | None = None,
    ) -> Prediction:
        """One image's :class:`Prediction` from its class probabilities (what every front end
        shows).

        Args:
            path: the image's path or name.
            p: its ``(num_classes,)`` probabilities.
            top_k: classes listed.
            min_confidence: below this top probability the label is ``"unsure"``.
            threshold: two-class runs: the second class's probability from which it is predicted.
        """
        k = min(top_k, len(self.classes))
        order = np.argsort(-p, kind="stable")[:k]
        top = [(self.classes[i], float(p[i])) for i in order]
        best = int(order[0]) if threshold is None else int(p[1] >= threshold)
        label, confidence = self.classes[best], float(p[best])
        if min_confidence is not None and confidence < min_confidence:
            label = UNSURE
        return Prediction(path, label, confidence, top)

    def evaluate(
        self,
        data: str | Path | None = None,
        batch_size: int | None = None,
        verbose: int = 0,
        on_metrics=None,
    ) -> Metrics:
        """Metrics on the run's own test split, or on a separate labelled folder (saved under
        evaluations/);
        see :func:`imgclf.evaluation.evaluate.evaluate_run` for the arguments."""
        from imgclf.evaluation.evaluate import evaluate_run

        return evaluate_run(self, data, batch_size, verbose, on_metrics)


def load_run(path: str | Path, engine: str = PREDICT_ENGINE) -> Run:
    """Open a run folder made by ``imgclf train``.

    Args:
        path: the run folder.
        engine: ``auto``, ``tflite`` or ``keras``: how predictions run the model (see :class:`Run`).

    Raises:
        DataError: ``path`` is not a finished run folder (see :func:`imgclf.runs.check_run_dir`).
    """
    return Run(path, engine)
