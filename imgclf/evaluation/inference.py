"""The one prediction core: images → tf.data decode → batches → model → class probabilities.

``imgclf predict``, ``imgclf evaluate``, the test split at the end of training, the report's mistakes
gallery and the web API all go through :func:`score_items` (files on disk) or :func:`score_arrays`
(pixels already in memory), so preprocessing and calibration can never differ between them. Front
ends only format the :class:`Scores` they get back.

Calibration: a run may store a softmax *temperature* T (fitted on its validation split).
:func:`apply_temperature` rescales probabilities as ``softmax(log(p) / T)``, which is temperature
scaling of the logits for a softmax model (``log p`` differs from the logits by a constant per image)
and of the logit for a two-class sigmoid model. It never changes which class is most probable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import class_probabilities

__all__ = ["Scores", "score_items", "score_arrays", "apply_temperature"]


@dataclass
class Scores:
    """Probabilities of the images that decoded, in input order, and why the others did not.

    Attributes:
        paths: path of each scored image (row order of ``probs``).
        probs: ``(n, num_classes)`` float64 class probabilities (calibrated if a temperature was given).
        labels: the items' labels for those rows (``-1`` where unknown, e.g. new pictures).
        failures: path → reason for every image that could not be decoded.
    """

    paths: list[str]
    probs: np.ndarray
    labels: np.ndarray
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        """Index of the most probable class per row."""
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, np.int64)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(p) / T)``; ``T == 1`` returns ``probs`` unchanged.

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


def score_items(
    model,
    items: Sequence[ImageItem],
    image_size: int,
    batch_size: int = 32,
    temperature: float = 1.0,
    on_batch: Callable[[int], None] | None = None,
) -> Scores:
    """Run ``model`` over image files through the training pipeline's decoder.

    Args:
        model: a Keras model taking uint8/float RGB pixels (preprocessing inside), as saved in a run.
        items: the images; ``label`` may be ``-1`` for unlabelled pictures.
        image_size: the run's square input size.
        batch_size: images per forward pass.
        temperature: the run's calibration temperature (1.0: none).
        on_batch: called with the number of images decoded in each batch (for a progress bar).
    """
    log = DecodeLog()
    indexed = [replace(item, label=i) for i, item in enumerate(items)]  # the label slot carries the position
    outputs, positions = [], []
    for x, pos in batched(decoded_dataset(indexed, image_size, log, cache=False), batch_size):
        outputs.append(model.predict_on_batch(x))
        positions.append(pos.numpy())
        if on_batch is not None:
            on_batch(len(positions[-1]))
    num_classes = max(2, int(model.output_shape[-1]))
    if outputs:
        probs = apply_temperature(class_probabilities(np.concatenate(outputs)), temperature)
        order = np.concatenate(positions)
    else:
        probs, order = np.zeros((0, num_classes)), np.zeros(0, np.int64)
    return Scores(
        paths=[items[i].path for i in order],
        probs=probs,
        labels=np.array([items[i].label for i in order], np.int64),
        failures=dict(sorted(log.failures.items())),
    )


def score_arrays(model, images: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities for a ``(n, size, size, 3)`` batch of RGB pixels in [0, 255]."""
    outputs = model.predict_on_batch(np.asarray(images, np.float32))
    return apply_temperature(class_probabilities(outputs), temperature)
