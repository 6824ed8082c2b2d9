"""Calibration: how far the model's confidence can be trusted, and temperature scaling to fix it.

The temperature T is fitted on the validation split only (never the test split), by minimising the
negative log-likelihood of ``softmax(log p / T)`` (Guo et al., 2017). It is stored in the run as
``calibration.json``; predict, evaluate and serve read it with :func:`read_temperature`. Scaling by
T never changes which class is most probable, only how confident the model says it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imgclf.evaluation.inference import apply_temperature
from imgclf.runs import RunFiles

__all__ = [
    "ECE_BINS",
    "calibrate",
    "expected_calibration_error",
    "fit_temperature",
    "read_temperature",
    "reliability_bins",
]

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al.
_T_RANGE = (0.05, 20.0)


def read_temperature(run_dir: str | Path) -> float:
    """The run's calibration temperature; 1.0 (no scaling) when the run has no ``calibration.json``.

    Args:
        run_dir: the run folder.
    """
    path = Path(run_dir) / RunFiles.CALIBRATION
    if not path.is_file():
        return 1.0
    return float(json.loads(path.read_text(encoding="utf-8"))["temperature"])


def _nll(probs: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = apply_temperature(probs, t)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels``: SciPy's bounded
    scalar minimisation over log T (the NLL is unimodal in T). 1.0 when there is nothing to fit on,
    or when no temperature fits better than none.

    Args:
        probs: ``(n, num_classes)`` uncalibrated validation probabilities.
        labels: ``(n,)`` true class indices.

    Returns:
        T > 0: above 1 the model was over-confident, below 1 under-confident.

    >>> probs = np.array([[0.99, 0.01], [0.99, 0.01], [0.01, 0.99], [0.99, 0.01]])
    >>> fit_temperature(probs, np.array([0, 0, 1, 1])) > 1  # sure of all four, wrong on one
    True
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        return 1.0
    found = minimize_scalar(
        lambda log_t: _nll(probs, labels, float(np.exp(log_t))),
        bounds=(np.log(_T_RANGE[0]), np.log(_T_RANGE[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    t = float(np.exp(found.x))
    return t if _nll(probs, labels, t) < _nll(probs, labels, 1.0) else 1.0


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per confidence bin: its range, the number of images, mean confidence and accuracy.

    Args:
        probs: ``(n, num_classes)`` probabilities.
        labels: ``(n,)`` true class indices.
        bins: number of equal-width bins over [0, 1].
    """
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = probs.argmax(axis=1) == np.asarray(labels) if len(probs) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": n,
                "confidence": float(conf[mask].mean()) if n else 0.0,
                "accuracy": float(correct[mask].mean()) if n else 0.0,
            }
        )
    return out


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the image-weighted mean gap between confidence and accuracy over confidence bins.

    Args:
        probs: ``(n, num_classes)`` probabilities.
        labels: ``(n,)`` true class indices.
        bins: number of equal-width bins.
    """
    rows = reliability_bins(probs, labels, bins)
    total = sum(r["n"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def calibrate(
    val_probs: np.ndarray, val_labels: np.ndarray, test_probs: np.ndarray, test_labels: np.ndarray
) -> dict:
    """Fit T on the validation split and measure ECE before and after on both splits; the result is
    what ``calibration.json`` holds (``temperature`` first, then the evidence for it). The fitted T
    is kept only if it lowers the validation ECE; otherwise ``temperature`` is 1.0 and ``kept``
    false.

    Args:
        val_probs: uncalibrated validation probabilities (the fit uses these only).
        val_labels: validation labels. test_probs: uncalibrated test probabilities (measured, never
        fitted on). test_labels: test labels.
    """
    fitted = fit_temperature(val_probs, val_labels)
    # NLL can prefer T > 1 for a model that is right on ~99 % of images and still raise its ECE: T
    # is kept
    # only when it also lowers the validation ECE (still decided on the validation split alone)
    kept = expected_calibration_error(
        apply_temperature(val_probs, fitted), val_labels
    ) < expected_calibration_error(val_probs, val_labels)
    t = fitted if kept else 1.0
    out = {
        "temperature": t,
        "fitted_temperature": fitted,
        "kept": kept,
        "fitted_on": "val",
        "n_val": int(len(val_labels)),
        "n_test": int(len(test_labels)),
        "bins": ECE_BINS,
    }
    for split, probs, labels in (("val", val_probs, val_labels), ("test", test_probs, test_labels)):
        after = apply_temperature(
            probs, fitted
        )  # the evidence: what the fitted T does, kept or not
        out[f"{split}_ece_before"] = expected_calibration_error(probs, labels)
        out[f"{split}_ece_after"] = expected_calibration_error(after, labels)
        out[f"{split}_reliability_before"] = reliability_bins(probs, labels)
        out[f"{split}_reliability_after"] = reliability_bins(after, labels)
    return out
