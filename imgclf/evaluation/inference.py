"""The one prediction core: images → tf.data decode → batches → model → class probabilities.

``imgclf predict``, ``imgclf evaluate``, the test split at the end of training, the report's
mistakes gallery and the web API all go through :func:`score_items` (files on disk) or
:func:`score_arrays` (pixels already in memory), so preprocessing and calibration can never differ
between them. Front ends only format the :class:`Scores` they get back.

Engines: the forward pass is an :class:`imgclf.engines.base.Engine` (Keras, or a TFLite copy of
the run's model: :mod:`imgclf.engines`); a Keras model passed where an engine is expected is wrapped
in a :class:`imgclf.engines.keras_engine.KerasEngine`.

Calibration: a run may store a softmax *temperature* T (fitted on its validation split).
:func:`apply_temperature` rescales probabilities as ``softmax(log(p) / T)``, which is temperature
scaling of the logits for a softmax model (``log p`` differs from the logits by a constant per
image) and of the logit for a two-class sigmoid model. It never changes which class is most
probable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.engines.base import Engine
from imgclf.engines.keras_engine import as_engine
from imgclf.evaluation.tta import average_views, tta_views

if TYPE_CHECKING:
    import keras

__all__ = [
    "Scores",
    "tta_views",
    "iter_scores",
    "score_items",
    "score_arrays",
    "apply_temperature",
]


@dataclass
class Scores:
    """Probabilities of the images that decoded, in input order, and why the others did not.

    Attributes:
        paths: path of each scored image (row order of ``probs``).
        probs: ``(n, num_classes)`` float64 class probabilities (calibrated if a temperature was
        given). labels: the items' labels for those rows (``-1`` where unknown, e.g. new pictures).
        failures: path → reason for every image that could not be decoded. positions: index in the
        input sequence of each row.
    """

    paths: list[str]
    probs: np.ndarray
    labels: np.ndarray
    failures: dict[str, str] = field(default_factory=dict)
    positions: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.int64)
    )  # each row's index in the input

    @property
    def predicted(self) -> np.ndarray:
        """Index of the most probable class per row."""
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(p) / T)``; ``T == 1`` returns ``probs``
    unchanged.

    Args:
        probs: ``(n, num_classes)`` probabilities (rows sum to 1).
        temperature: T > 0; above 1 softens over-confident probabilities, below 1 sharpens them.
    """
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def iter_scores(
    model: Engine | keras.Model,
    items: Sequence[ImageItem],
    image_size: int,
    batch_size: int = 32,
    temperature: float = 1.0,
    tta: bool | str | int | tuple = False,
) -> Iterator[Scores]:
    """Run ``model`` over image files through the training pipeline's decoder, one batch at a time.

    Each yielded :class:`Scores` holds one batch's decoded images and the failures among the items
    before them, so together they cover every item once, in input order. Callers that write as they
    go (``imgclf predict --output``) use this; :func:`score_items` collects it.

    Args:
        model: an :class:`Engine`, or a Keras model taking uint8/float RGB pixels (preprocessing
        inside). items: the images; ``label`` may be ``-1`` for unlabelled pictures. image_size: the
        run's square input size. batch_size: images per forward pass. temperature: the run's
        calibration temperature (1.0: none). tta: test-time augmentation: ``"none"``, ``"flip"``
        (True), a number of views, or views from :func:`imgclf.evaluation.tta.tta_views` (a run
        resolves its own, so mirrored views come only where it trained with flips): the
        probabilities averaged over the views, one forward pass each.
    """
    engine, views = as_engine(model), tta_views(tta)  # a bad tta fails before any decoding
    log = DecodeLog()
    seen = 0  # items before this position are accounted for
    for x, labels in batched(decoded_dataset(items, image_size, log, cache=False), batch_size):
        order = _positions(items, log, seen, labels.numpy())
        probs = apply_temperature(average_views(engine, x, views), temperature)
        yield _scores(items, order, probs, log, seen)
        seen = int(order[-1]) + 1
    if seen < len(items):  # trailing items that never decoded
        yield _scores(
            items,
            np.zeros(0, np.int64),
            np.zeros((0, engine.num_classes)),
            log,
            seen,
            until=len(items),
        )


def _positions(
    items: Sequence[ImageItem], log: DecodeLog, start: int, labels: np.ndarray
) -> np.ndarray:
    """Where in ``items`` a batch's images are: the next ``len(labels)`` items from ``start`` that
    did not fail. The pipeline keeps the items' order and records every file it drops in ``log``
    before it yields an image after it; the batch's labels must match the items found."""
    found: list[int] = []
    i = start
    while len(found) < len(labels) and i < len(items):
        if items[i].path not in log.failures:
            found.append(i)
        i += 1
    order = np.array(found, np.int64)
    expected = np.array([items[j].label for j in found], np.int64)
    if len(order) != len(labels) or not np.array_equal(expected, labels.astype(np.int64)):
        raise RuntimeError(  # the decoder broke its contract; never attach a result to another file
            f"decoded images out of step with their files from position {start}"
        )
    return order


def _scores(
    items, order: np.ndarray, probs: np.ndarray, log: DecodeLog, seen: int, until: int | None = None
) -> Scores:
    stop = until if until is not None else (int(order[0]) if len(order) else seen)
    gaps = [range(seen, stop)] + [
        range(int(a) + 1, int(b)) for a, b in zip(order[:-1], order[1:], strict=True)
    ]  # before, inside
    failed = {
        items[i].path: log.failures.get(items[i].path, "cannot decode") for gap in gaps for i in gap
    }
    return Scores(
        paths=[items[i].path for i in order],
        probs=probs,
        labels=np.array([items[i].label for i in order], np.int64),
        failures=failed,
        positions=order,
    )


def score_items(
    model: Engine | keras.Model,
    items: Sequence[ImageItem],
    image_size: int,
    batch_size: int = 32,
    temperature: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
    tta: bool | str | int | tuple = False,
) -> Scores:
    """All of :func:`iter_scores` in one :class:`Scores` (failures sorted by path).

    Args:
        model, items, image_size, batch_size, temperature, tta: as for :func:`iter_scores`.
        on_batch: called with the number of images decoded in each batch (for a progress bar).
    """
    parts = []
    for part in iter_scores(model, items, image_size, batch_size, temperature, tta):
        parts.append(part)
        if on_batch is not None and len(part.paths):
            on_batch(len(part.paths))
    num_classes = as_engine(model).num_classes
    failures = {k: v for part in parts for k, v in part.failures.items()}
    return Scores(
        paths=[p for part in parts for p in part.paths],
        probs=np.concatenate([part.probs for part in parts])
        if parts
        else np.zeros((0, num_classes)),
        labels=np.concatenate([part.labels for part in parts]) if parts else np.zeros(0, np.int64),
        failures=dict(sorted(failures.items())),
        positions=np.concatenate([part.positions for part in parts])
        if parts
        else np.zeros(0, np.int64),
    )


def score_arrays(
    model: Engine | keras.Model,
    images: np.ndarray,
    temperature: float = 1.0,
    tta: bool | str | int | tuple = False,
) -> np.ndarray:
    """Class probabilities for a ``(n, size, size, 3)`` batch of RGB pixels in [0, 255].

    Args:
        model: an :class:`Engine` or a run's Keras model.
        images: the pixels (uint8 or float).
        temperature: the run's calibration temperature (1.0: none).
        tta: test-time augmentation, as for :func:`iter_scores`.
    """
    engine, views = as_engine(model), tta_views(tta)
    x = np.asarray(images, np.float32)
    if len(x) == 0:
        return np.zeros((0, engine.num_classes))
    return apply_temperature(average_views(engine, x, views), temperature)
