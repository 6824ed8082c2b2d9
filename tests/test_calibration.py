"""imgclf.evaluation.calibration: the temperature fitted on validation probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.evaluation.calibration import _nll, fit_temperature
from imgclf.evaluation.inference import apply_temperature


def overconfident(t_true: float, n: int = 4000, classes: int = 4, seed: int = 0):
    """Labels drawn from calibrated probabilities, and what a model ``t_true`` times too sharp
    says."""
    rng = np.random.default_rng(seed)
    calibrated = rng.dirichlet(np.ones(classes), size=n)
    labels = np.array([rng.choice(classes, p=row) for row in calibrated])
    return apply_temperature(calibrated, 1.0 / t_true), labels


@pytest.mark.parametrize("t_true", [0.5, 2.0, 3.0])
def test_the_fitted_temperature_undoes_a_known_miscalibration(t_true):
    probs, labels = overconfident(t_true)
    assert fit_temperature(probs, labels) == pytest.approx(t_true, rel=0.1)


def test_the_fitted_temperature_is_the_minimum_of_the_nll():
    probs, labels = overconfident(2.0, n=500, seed=1)
    t = fit_temperature(probs, labels)
    best = _nll(probs, labels, t)
    assert best < _nll(probs, labels, 1.0)
    assert best <= _nll(probs, labels, t * 1.01) and best <= _nll(probs, labels, t / 1.01)


def test_nothing_to_fit_on_or_nothing_to_gain_is_no_scaling():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0
    # every image right with full confidence: no T lowers the NLL below T = 1's
    one_hot = np.eye(3)[[0, 1, 2, 1]]
    assert fit_temperature(one_hot, np.array([0, 1, 2, 1])) == 1.0
