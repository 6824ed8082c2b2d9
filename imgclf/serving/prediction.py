"""One image's result, :class:`Prediction`, made from its class probabilities the same way for
every front end (``imgclf predict``, the web API, :meth:`imgclf.Run.predict`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgclf.errors import ConfigError, invalid_value

__all__ = ["UNSURE", "Prediction", "check_options", "to_prediction"]

UNSURE = "unsure"  # the label of an image whose top probability is below --min-confidence


@dataclass
class Prediction:
    """One image's result: ``label`` and ``confidence`` of the top class, ``top_k`` as (label,
    probability), most likely first.

    ``label`` is :data:`UNSURE` when the top probability is below the ``min_confidence`` asked for
    (``confidence`` and ``top_k`` still say what the model thought); ``error`` says why a file could
    not be predicted (``label`` and ``confidence`` are then None).

    >>> p = Prediction("a.jpg", "cat", 0.9, [("cat", 0.9), ("dog", 0.1)])
    >>> p.ok, p.to_dict()["top_k"][1]
    (True, {'label': 'dog', 'probability': 0.1})
    """

    path: str
    label: str | None
    confidence: float | None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the image was predicted (False: ``error`` says why not)."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The prediction as JSON-ready values (what ``imgclf predict --format json`` writes).

        Returns:
            ``path``, ``label``, ``confidence``, ``top_k`` (a list of ``{label, probability}``)
            and ``error``.
        """
        return {
            "path": self.path,
            "label": self.label,
            "confidence": self.confidence,
            "top_k": [{"label": lbl, "probability": p} for lbl, p in self.top_k],
            "error": self.error,
        }


def check_options(
    classes: list[str], top_k: int, min_confidence: float | None, threshold: float | None
) -> int:
    """Check the options of a prediction; one-line errors name the option.

    Args:
        classes: the run's class names.
        top_k: classes listed per image (an integer >= 1).
        min_confidence: a probability, or None.
        threshold: two-class runs only: a probability strictly between 0 and 1, or None.

    Returns:
        The number of classes listed: ``top_k``, at most the number of classes.

    >>> check_options(["cat", "dog"], 5, None, 0.3)
    2
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise invalid_value("top_k", top_k, "an integer >= 1")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise invalid_value("min_confidence", min_confidence, "a probability between 0 and 1")
    if threshold is not None:
        if len(classes) != 2:
            raise ConfigError(
                f"threshold applies to two-class runs only; this run has {len(classes)} classes"
            )
        if not 0.0 < threshold < 1.0:
            raise invalid_value(
                "threshold", threshold, f"a probability of {classes[1]!r} strictly between 0 and 1"
            )
    return min(top_k, len(classes))


def to_prediction(
    classes: list[str],
    path: str,
    p: np.ndarray,
    top_k: int = 3,
    min_confidence: float | None = None,
    threshold: float | None = None,
) -> Prediction:
    """One image's :class:`Prediction` from its class probabilities.

    Args:
        classes: the run's class names (the columns of ``p``).
        path: the image's path or name.
        p: its ``(num_classes,)`` probabilities.
        top_k: classes listed.
        min_confidence: below this top probability the label is ``"unsure"``.
        threshold: two-class runs: the second class's probability from which it is predicted.

    Returns:
        The :class:`Prediction`.

    >>> to_prediction(["cat", "dog"], "a.jpg", np.array([0.7, 0.3]), threshold=0.25).label
    'dog'
    """
    k = min(top_k, len(classes))
    order = np.argsort(-p, kind="stable")[:k]
    top = [(classes[i], float(p[i])) for i in order]
    best = int(order[0]) if threshold is None else int(p[1] >= threshold)
    label, confidence = classes[best], float(p[best])
    if min_confidence is not None and confidence < min_confidence:
        label = UNSURE
    return Prediction(path, label, confidence, top)
