"""Summary statistics of a labelled evaluation, each with a 95 % confidence interval.

Accuracy and top-k accuracy are proportions: their interval is Wilson's score interval. Macro-F1 and
balanced accuracy are not: theirs is a percentile bootstrap over the evaluated images
(:data:`BOOTSTRAP_SAMPLES` resamples, seeded, so a report is reproducible).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "wilson_interval",
    "proportion",
    "bootstrap_interval",
    "top_k_accuracy",
    "balanced_accuracy",
    "macro_f1",
    "f1_from_counts",
    "recall_from_counts",
    "confused_pairs",
    "summary_statistics",
    "BOOTSTRAP_SAMPLES",
]

BOOTSTRAP_SAMPLES = 1000
_BLOCK_CELLS = 2_000_000  # resampled labels held in memory at once


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (SciPy's ``binomtest(...).proportion_ci``); (0, 0) for
    n = 0.

    Args:
        successes: number of correct images.
        n: number of images.
        confidence: the confidence level.
    """
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 0.0
    ci = binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def proportion(successes: int, n: int) -> dict:
    """A proportion with its Wilson 95 % interval and its count, as
    ``{"value", "low", "high", "method", "n"}`` (value 0 and interval (0, 0) when n = 0).

    Args:
        successes: number of correct images.
        n: number of images.
    """
    value = successes / n if n else 0.0
    return {**_stat(value, wilson_interval(successes, n), "Wilson"), "n": int(n)}


def _present(y_true: np.ndarray) -> np.ndarray:
    return np.unique(y_true)


def _macro_average(score, y_true: np.ndarray, y_pred: np.ndarray, labels) -> float:
    """scikit-learn's ``score(..., average="macro")`` over ``labels`` (default: the classes
    present)."""
    labels = _present(y_true) if labels is None else labels
    if len(labels) == 0:
        return 0.0
    return float(score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Mean F1 over ``labels`` (default: the classes present in ``y_true``).

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        labels: classes to average over.
    """
    from sklearn.metrics import f1_score

    return _macro_average(f1_score, y_true, y_pred, labels)


def balanced_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray | None = None
) -> float:
    """Mean recall over ``labels`` (default: the classes present in ``y_true``).

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        labels: classes to average over.
    """
    from sklearn.metrics import recall_score

    labels = _present(y_true) if labels is None else labels
    # the recall of a class without images is undefined: it is left out, not counted as 0
    return _macro_average(recall_score, y_true, y_pred, [c for c in labels if np.any(y_true == c)])


def top_k_accuracy(probs: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable.

    Args:
        probs: ``(n, num_classes)`` probabilities.
        y_true: true class indices.
        k: how many top classes count.
    """
    from sklearn.metrics import top_k_accuracy_score

    if len(y_true) == 0:
        return 0.0
    return float(top_k_accuracy_score(y_true, probs, k=k, labels=np.arange(probs.shape[1])))


def bootstrap_interval(
    metric, y_true: np.ndarray, y_pred: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of a metric, resampling images.

    All resamples are scored at once from their per-class counts (one ``np.bincount`` per block of
    resamples) instead of one scikit-learn call per resample: 1,000 resamples cost milliseconds.

    Args:
        metric: a function of per-resample counts ``(tp, true_n, pred_n, labels)`` → one value per
            resample, e.g. :func:`f1_from_counts`, :func:`recall_from_counts`.
        y_true: true class indices.
        y_pred: predicted class indices.
        samples: number of resamples.
        seed: seed of the resampling.
    """
    n = len(y_true)
    if n == 0:
        return 0.0, 0.0
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    labels = _present(y_true)
    width = int(max(y_true.max(), y_pred.max())) + 1
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    block = max(1, _BLOCK_CELLS // n)  # resamples per block: bounded memory at any test-set size
    values = [
        metric(*_resample_counts(y_true, y_pred, draws[i : i + block], width), labels)
        for i in range(0, samples, block)
    ]
    values = np.concatenate(values)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def _resample_counts(y_true: np.ndarray, y_pred: np.ndarray, draws: np.ndarray, width: int):
    """Per resample (rows of ``draws``) and class: true positives, true count and predicted
    count."""
    rows = np.arange(len(draws))[:, None] * width
    t, p = rows + y_true[draws], rows + y_pred[draws]
    size = len(draws) * width

    def count(keys):
        return np.bincount(keys.ravel(), minlength=size).reshape(len(draws), width)

    return (
        count(t[t == p]),
        count(t),
        count(p),
    )  # same row offset: t == p exactly where the label is right


def f1_from_counts(
    tp: np.ndarray, true_n: np.ndarray, pred_n: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Macro-F1 per row of counts over the ``labels`` that have images in that row (the classes
    present, as :func:`macro_f1`); F1 = 2·TP / (true + predicted), as scikit-learn's ``f1_score``.

    Args:
        tp: ``(resamples, classes)`` true positives.
        true_n: images per true class.
        pred_n: images per predicted class.
        labels: classes to average over.
    """
    present = true_n[:, labels] > 0
    f1 = 2.0 * tp[:, labels] / np.maximum(1, (true_n + pred_n)[:, labels])
    return (f1 * present).sum(axis=1) / np.maximum(1, present.sum(axis=1))


def recall_from_counts(
    tp: np.ndarray, true_n: np.ndarray, pred_n: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Balanced accuracy per row of counts: mean recall over the ``labels`` that have images in that
    row.

    Args:
        tp: ``(resamples, classes)`` true positives.
        true_n: images per true class.
        pred_n: images per predicted class (unused; the signature is shared with
        :func:`f1_from_counts`). labels: classes to average over.
    """
    n = true_n[:, labels]
    recall = np.divide(tp[:, labels], n, out=np.zeros(n.shape), where=n > 0)
    return recall.sum(axis=1) / np.maximum(1, (n > 0).sum(axis=1))


def confused_pairs(confusion: list[list[int]], classes: list[str], top: int = 10) -> list[dict]:
    """The most frequent (true, predicted) mistakes, largest first.

    Args:
        confusion: confusion matrix, rows true, columns predicted.
        classes: class names in label order.
        top: how many pairs to return.
    """
    cm = np.asarray(confusion)
    pairs = [
        {
            "true": classes[i],
            "predicted": classes[j],
            "count": int(cm[i, j]),
            "share_of_true": float(cm[i, j] / max(1, cm[i].sum())),
        }
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j and cm[i, j] > 0
    ]
    return sorted(pairs, key=lambda p: (-p["count"], p["true"], p["predicted"]))[:top]


def summary_statistics(probs: np.ndarray, y_true: np.ndarray, seed: int = 0) -> dict[str, dict]:
    """Accuracy, top-k accuracy (k = 3 from 4 classes, 5 from 10), balanced accuracy and macro-F1
    over the classes present, each as ``{"value", "low", "high", "method"}``.

    Args:
        probs: ``(n, num_classes)`` probabilities.
        y_true: true class indices.
        seed: seed of the bootstrap.
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    n = len(y_true)
    correct = int(np.sum(y_pred == y_true))
    out = {"accuracy": _stat(correct / n if n else 0.0, wilson_interval(correct, n), "Wilson")}
    num_classes = probs.shape[1] if probs.ndim == 2 else 0
    k = 5 if num_classes >= 10 else 3 if num_classes >= 4 else 0
    if k:
        hits = round(top_k_accuracy(probs, y_true, k) * n)
        out[f"top{k}_accuracy"] = _stat(hits / n if n else 0.0, wilson_interval(hits, n), "Wilson")
    for name, fn, from_counts in (
        ("balanced_accuracy", balanced_accuracy, recall_from_counts),
        ("macro_f1", macro_f1, f1_from_counts),
    ):
        out[name] = _stat(
            fn(y_true, y_pred),
            bootstrap_interval(from_counts, y_true, y_pred, seed=seed),
            "bootstrap",
        )
    return out


def _stat(value: float, interval: tuple[float, float], method: str) -> dict:
    return {"value": float(value), "low": interval[0], "high": interval[1], "method": method}
