"""The prediction core: order kept, failures reported, temperature changes confidence but not
labels."""

from __future__ import annotations

import numpy as np
from helpers import write_truncated_jpeg


def test_temperature_keeps_the_top_class_and_softens_with_t_above_one():
    from imgclf.evaluation.inference import apply_temperature

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5) * 0.3, size=50)
    assert apply_temperature(p, 1.0) is p
    soft, sharp = apply_temperature(p, 2.0), apply_temperature(p, 0.5)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert (soft.argmax(1) == p.argmax(1)).all() and (sharp.argmax(1) == p.argmax(1)).all()
    assert (soft.max(1) <= p.max(1) + 1e-12).all() and (sharp.max(1) >= p.max(1) - 1e-12).all()
    assert soft.max(1).mean() < p.max(1).mean() < sharp.max(1).mean()


def test_two_class_temperature_is_logit_scaling():
    from imgclf.evaluation.inference import apply_temperature

    q = np.array([0.9, 0.2, 0.5])
    out = apply_temperature(np.stack([1 - q, q], axis=1), 3.0)[:, 1]
    expected = 1 / (1 + np.exp(-np.log(q / (1 - q)) / 3.0))
    np.testing.assert_allclose(out, expected, rtol=1e-9)


def test_score_items_keeps_order_and_lists_failures(trained_run, tmp_path):
    import keras

    from imgclf.data.scan import ImageItem
    from imgclf.evaluation.inference import score_items

    model = keras.saving.load_model(trained_run.run_dir / "model.keras")
    good = (
        sorted((trained_run.data / "fox").glob("*.jpg"))[:3]
        + sorted((trained_run.data / "cat").glob("*.jpg"))[:2]
    )
    bad = write_truncated_jpeg(tmp_path / "broken.jpg")
    items = [ImageItem(str(good[0]), 2), ImageItem(str(bad), 0)] + [
        ImageItem(str(p), -1) for p in good[1:]
    ]
    scores = score_items(model, items, 32, batch_size=2)
    assert scores.paths == [str(p) for p in good]
    assert list(scores.failures) == [str(bad)]
    assert scores.labels.tolist() == [2, -1, -1, -1, -1]
    assert scores.probs.shape == (5, 3)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert scores.predicted.tolist() == scores.probs.argmax(1).tolist()
    calibrated = score_items(model, items, 32, batch_size=2, temperature=2.0)
    assert calibrated.predicted.tolist() == scores.predicted.tolist()
    assert (calibrated.probs.max(1) <= scores.probs.max(1) + 1e-9).all()
