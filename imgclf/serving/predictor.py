"""A trained run as an object that predicts and evaluates: what ``imgclf predict``, ``evaluate``,
``export`` and ``serve`` work with (:class:`imgclf.Run` adds export, report and serve to it).

Everything is read from the run folder — class names, input size, the model with its preprocessing
inside — so a user never re-types preprocessing at prediction time. The model is loaded once, on
first use, and kept by the :class:`Run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.constants import PREDICT_ENGINE
from imgclf.data.scan import ImageItem
from imgclf.evaluation.metrics import Metrics
from imgclf.serving.images import in_memory_batches, is_in_memory
from imgclf.serving.inputs import expand_paths
from imgclf.serving.prediction import UNSURE, Prediction, check_options, to_prediction
from imgclf.serving.run_folder import RunFolder

__all__ = ["Prediction", "Run", "load_run", "expand_paths", "UNSURE"]


class Run(RunFolder):
    """A finished run folder that predicts and evaluates with its model.

    Args:
        path: the run folder.
        engine: how :meth:`predict` and :meth:`predict_arrays` run the model: ``auto`` (a cached,
            parity-checked TFLite copy, else Keras), ``tflite`` or ``keras`` (see
            :mod:`imgclf.engines.choose`). Evaluation and Grad-CAM always use the Keras model.
        untrained: also open a run stopped before it trained anything (:func:`imgclf.train` after
            an early Ctrl-C); its model is refused when first needed. Defaults to False.

    Attributes:
        path: the run folder.
        config: its resolved :class:`~imgclf.config.TrainConfig` (``config.yaml``).
        classes: its class names, in the order of the model's outputs.
        image_size: the side of the model's square input, in pixels.

    >>> run = Run("runs/photos")
    >>> run.classes, run.image_size, run.config.model
    (['cat', 'dog', 'fox'], 32, 'cnn')
    """

    def predict_arrays(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """Calibrated class probabilities for a batch already at the run's image size.

        Args:
            images: ``(n, size, size, 3)`` RGB pixels in [0, 255] (uint8 or float).
            tta: test-time augmentation: ``"flip"`` or N views (:mod:`imgclf.evaluation.tta`).

        Returns:
            ``(n, num_classes)`` probabilities; each row sums to 1.

        >>> run.predict_arrays(np.zeros((2, 32, 32, 3), np.uint8)).shape
        (2, 3)
        """
        from imgclf.evaluation.inference import score_arrays, tta_views

        views = tta_views(tta, self.config.augment)
        return score_arrays(self.engine_for_job(len(images)), images, self.temperature, views)

    def predict(
        self,
        x: Any,
        top_k: int = 3,
        batch_size: int = 32,
        min_confidence: float | None = None,
        threshold: float | None = None,
        tta: bool = False,
    ) -> list[Prediction]:
        """Predict files, folders (recursively), globs, ``@list.txt`` files, or pictures in memory
        (decoded as a file is: :mod:`imgclf.serving.images`), in order; an unreadable file gets a
        Prediction with ``error`` set.

        Args:
            x: a path or a list of paths (see :func:`imgclf.serving.inputs.expand_paths`); or a
                Pillow image, a list of them, or an array: one ``(H, W, C)`` image or an
                ``(N, H, W, C)`` batch, uint8 or float in [0, 255], any size.
            top_k: classes listed per image.
            batch_size: images per forward pass.
            min_confidence: below this top probability the label is ``"unsure"``.
            threshold: two-class runs only: the second class's probability from which it is
                predicted (default 0.5, i.e. the more probable class).
            tta: average each image's probabilities over ``"flip"`` or N views (N passes).

        Returns:
            One :class:`Prediction` per image; a file's ``path`` is its path, an image in memory's
            the file it was opened from or ``image[i]``.

        >>> [p.path for p in run.predict("photos/cat")][:2]
        ['photos/cat/cat_000.jpg', 'photos/cat/cat_001.jpg']
        >>> from PIL import Image
        >>> run.predict(Image.open("photos/dog/dog_000.jpg"))[0].label in run.classes
        True
        >>> [p.path for p in run.predict(np.zeros((2, 50, 60, 3), np.uint8), top_k=1)]
        ['image[0]', 'image[1]']
        """
        if is_in_memory(x):
            return self._predict_in_memory(x, top_k, batch_size, min_confidence, threshold, tta)
        files = expand_paths([x] if isinstance(x, str | Path) else x)
        options = (top_k, batch_size, min_confidence, threshold, tta)
        return [p for chunk in self.iter_predict(files, *options) for p in chunk]

    def _predict_in_memory(self, x, top_k, batch_size, min_confidence, threshold, tta):
        k = check_options(self.classes, top_k, min_confidence, threshold)
        return [
            to_prediction(self.classes, name, p, k, min_confidence, threshold)
            for names, pixels in in_memory_batches(x, self.image_size, batch_size)
            for name, p in zip(names, self.predict_arrays(pixels, tta), strict=True)
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
            tta: test-time augmentation: ``"flip"`` or N views (:mod:`imgclf.evaluation.tta`).
            on_batch: called with the number of files each yielded batch accounts for (progress).

        Returns:
            An iterator of lists of :class:`Prediction`, one list per batch.

        >>> files = ["photos/cat/cat_000.jpg", "photos/dog/dog_000.jpg", "photos/fox/fox_000.jpg"]
        >>> [len(chunk) for chunk in run.iter_predict(files, batch_size=2)]
        [2, 1]
        """
        from imgclf.evaluation.inference import iter_scores, tta_views

        k = check_options(self.classes, top_k, min_confidence, threshold)
        items = [ImageItem(f, -1) for f in files]
        position = {f: i for i, f in enumerate(files)}
        engine = self.engine_for_job(len(files))
        views = tta_views(tta, self.config.augment)
        for scores in iter_scores(
            engine, items, self.image_size, batch_size, self.temperature, views
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

    def to_prediction(
        self,
        path: str,
        p: np.ndarray,
        top_k: int = 3,
        min_confidence: float | None = None,
        threshold: float | None = None,
    ) -> Prediction:
        """One image's :class:`Prediction` from its probabilities, as every front end shows it.

        Args:
            path: the image's path or name.
            p: its ``(num_classes,)`` probabilities.
            top_k, min_confidence, threshold: as for :meth:`predict`.

        Returns:
            The :class:`Prediction`.

        >>> run.to_prediction("a.jpg", np.array([0.2, 0.5, 0.3]), top_k=1).top_k
        [('dog', 0.5)]
        """
        return to_prediction(self.classes, path, p, top_k, min_confidence, threshold)

    def evaluate(
        self,
        folder: str | Path | None = None,
        batch_size: int | None = None,
        verbose: int = 0,
        on_metrics: Callable[[Metrics], None] | None = None,
        tta: bool | str | int = False,
    ) -> Metrics:
        """Metrics on the run's own test split, or on a separate labelled folder (saved under
        ``evaluations/``); see :func:`imgclf.evaluation.evaluate.evaluate_run`.

        Args:
            folder: a labelled folder whose classes are the run's; None: the run's test split.
            batch_size: images per forward pass; None: the run's.
            verbose: 1 shows a progress bar.
            on_metrics: called with the metrics before they are saved.
            tta: test-time augmentation: ``"flip"`` or N views (:mod:`imgclf.evaluation.tta`).

        Returns:
            The :class:`~imgclf.evaluation.metrics.Metrics` (accuracy with its interval, per-class
            scores, confusion matrix, …).

        >>> metrics = run.evaluate()
        >>> metrics.split, metrics.n
        ('test', 6)
        """
        from imgclf.evaluation.evaluate import evaluate_run

        return evaluate_run(self, folder, batch_size, verbose, on_metrics, tta)


def load_run(path: str | Path, engine: str = PREDICT_ENGINE) -> Run:
    """Open a run folder made by ``imgclf train``.

    Args:
        path: the run folder.
        engine: ``auto``, ``tflite`` or ``keras``: how predictions run the model (see :class:`Run`).

    Returns:
        The :class:`Run` (:func:`imgclf.load_run` gives one that also exports, reports, serves).

    Raises:
        DataError: ``path`` is not a finished run folder (see :func:`imgclf.runs.check_run_dir`).

    >>> load_run("runs/photos").classes
    ['cat', 'dog', 'fox']
    """
    return Run(path, engine)
