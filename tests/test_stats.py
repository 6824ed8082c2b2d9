"""The vectorised bootstrap gives exactly what one scikit-learn call per resample gives."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.evaluation.stats import (
    balanced_accuracy,
    bootstrap_interval,
    f1_from_counts,
    macro_f1,
    recall_from_counts,
    summary_statistics,
)


def _slow_interval(fn, y_true, y_pred, samples, seed):
    rng = np.random.default_rng(seed)
    # the classes present in each resample, as the point estimate averages over the classes present
    values = [
        fn(y_true[i], y_pred[i]) for i in rng.integers(0, len(y_true), size=(samples, len(y_true)))
    ]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


@pytest.mark.parametrize(
    "fast, slow", [(f1_from_counts, macro_f1), (recall_from_counts, balanced_accuracy)]
)
def test_the_bootstrap_matches_scikit_learn_per_resample(fast, slow):
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 5, 60)
    y_true[y_true == 4] = 3  # class 4 never true, but predicted: counts as a false positive only
    y_pred = np.where(rng.random(60) < 0.7, y_true, rng.integers(0, 5, 60))
    got = bootstrap_interval(fast, y_true, y_pred, samples=200, seed=1)
    assert got == pytest.approx(_slow_interval(slow, y_true, y_pred, 200, 1), abs=1e-12)
    assert got[0] < got[1]


def test_blocks_of_resamples_give_the_same_interval_as_one_block(monkeypatch):
    monkeypatch.setattr("imgclf.evaluation.stats._BLOCK_CELLS", 7_000)  # 35 resamples a block
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(len(y_true)) < 0.8, y_true, 0)
    whole = bootstrap_interval(f1_from_counts, y_true, y_pred, samples=300, seed=2)
    assert whole == pytest.approx(_slow_interval(macro_f1, y_true, y_pred, 300, 2), abs=1e-12)


def test_summary_statistics_of_a_perfect_and_an_empty_evaluation():
    probs = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    stats = summary_statistics(probs, np.array([0, 1, 2, 3, 0, 1]))
    assert stats["macro_f1"] == {"value": 1.0, "low": 1.0, "high": 1.0, "method": "bootstrap"}
    assert stats["balanced_accuracy"]["low"] == 1.0
    empty = summary_statistics(np.zeros((0, 4)), np.zeros(0, np.int64))
    assert empty["macro_f1"]["low"] == 0.0


def test_a_proportion_carries_its_wilson_interval_and_count():
    from imgclf.evaluation.stats import proportion, wilson_interval

    assert proportion(0, 0) == {"value": 0.0, "low": 0.0, "high": 0.0, "method": "Wilson", "n": 0}
    p = proportion(9, 10)
    assert (p["value"], p["n"], p["method"]) == (0.9, 10, "Wilson")
    assert (p["low"], p["high"]) == wilson_interval(9, 10)
