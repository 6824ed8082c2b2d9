"""A trained run as an object: ``load_run(path).predict(paths)`` and ``.evaluate(folder)``.

Everything is read from the run folder — class names, input size, the model with its preprocessing
inside — so a user never re-types preprocessing at prediction time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.data.scan import IMAGE_EXTENSIONS, ImageItem
from imgclf.errors import DataError, invalid_value
from imgclf.evaluation.metrics import Metrics
from imgclf.runs import RunFiles, check_run_dir, read_config, read_json

__all__ = ["Prediction", "Run", "load_run", "expand_paths"]


@dataclass
class Prediction:
    """One image's result: ``label`` and ``confidence`` of the top class, ``top_k`` as (label, prob)."""

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


def expand_paths(paths: Iterable[str | Path]) -> list[str]:
    """Files as given; folders walked recursively for image files (sorted). Missing paths are an error."""
    out: list[str] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            out.extend(
                str(f)
                for f in sorted(p.rglob("*"))
                if f.is_file()
                and f.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.exists():
            out.append(str(p))
        else:
            raise DataError(f"path {str(raw)!r} does not exist")
    return out


class Run:
    """A finished run folder. The model is loaded on first use."""

    def __init__(self, path: str | Path):
        self.path = check_run_dir(path)
        self.config = read_config(self.path / RunFiles.CONFIG)
        self.classes: list[str] = read_json(self.path / RunFiles.CLASSES)
        self.image_size = int(self.config.image_size or 224)
        self._model = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model!r}, classes={len(self.classes)})"

    @property
    def model(self):
        if self._model is None:
            import keras

            import imgclf.models.layers  # noqa: F401  (registers custom layers for loading)

            self._model = keras.saving.load_model(self.path / RunFiles.MODEL)
        return self._model

    @property
    def metrics(self) -> Metrics | None:
        p = self.path / RunFiles.METRICS
        return Metrics.from_dict(read_json(p)) if p.exists() else None

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a ``(n, size, size, 3)`` batch of RGB pixels in [0, 255]."""
        from imgclf.evaluation.inference import score_arrays

        return score_arrays(self.model, images)

    def predict(self, paths: str | Path | Sequence[str | Path], top_k: int = 3, batch_size: int = 32) -> list[Prediction]:
        """Predict files and folders. An unreadable file gets a Prediction with ``error`` set."""
        from imgclf.evaluation.inference import score_items

        if top_k < 1:
            raise invalid_value("top_k", top_k, "an integer >= 1")
        files = expand_paths([paths] if isinstance(paths, (str, Path)) else paths)
        k = min(top_k, len(self.classes))
        scores = score_items(self.model, [ImageItem(f, -1) for f in files], self.image_size, batch_size)
        results = {f: Prediction(f, None, None, [], reason) for f, reason in scores.failures.items()}
        for f, p in zip(scores.paths, scores.probs):
            order = np.argsort(-p)[:k]
            top = [(self.classes[i], float(p[i])) for i in order]
            results[f] = Prediction(f, top[0][0], top[0][1], top)
        return [results[f] for f in files]

    def evaluate(self, data: str | Path | None = None, batch_size: int | None = None, verbose: int = 0, on_metrics=None) -> Metrics:
        """Metrics on the run's own test split, or on a separate labelled folder (saved under evaluations/);
        see :func:`imgclf.evaluation.evaluate.evaluate_run` for the arguments."""
        from imgclf.evaluation.evaluate import evaluate_run

        return evaluate_run(self, data, batch_size, verbose, on_metrics)


def load_run(path: str | Path) -> Run:
    """Open a run folder made by ``imgclf train``."""
    return Run(path)
