"""The prediction core: order kept, failures reported, temperature changes confidence but not
labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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

    from imgclf.data.decode import load_image
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
    pixels = np.stack([load_image(str(p), 32) for p in good])  # each row is its own file's
    np.testing.assert_allclose(scores.probs, model.predict_on_batch(pixels), atol=1e-3)
    assert scores.positions.tolist() == [0, 2, 3, 4, 5]
    calibrated = score_items(model, items, 32, batch_size=2, temperature=2.0)
    assert calibrated.predicted.tolist() == scores.predicted.tolist()
    assert (calibrated.probs.max(1) <= scores.probs.max(1) + 1e-9).all()


def test_failures_anywhere_keep_every_row_on_its_own_file(trained_run, tmp_path):
    """Failures first, in the middle, several in a row and last: each row keeps its file and
    label, the failures are all listed, and the items' labels are what they were (no position
    carried in them)."""
    import keras

    from imgclf.data.scan import ImageItem
    from imgclf.evaluation.inference import iter_scores

    model = keras.saving.load_model(trained_run.run_dir / "model.keras")
    good = sorted(trained_run.data.rglob("*.jpg"))[:6]
    bad = [write_truncated_jpeg(tmp_path / f"broken{i}.jpg") for i in range(4)]
    (tmp_path / "empty.png").write_bytes(b"")
    order = [bad[0], good[0], good[1], bad[1], bad[2], good[2], tmp_path / "empty.png"]
    order += [good[3], good[4], good[5], bad[3]]
    items = [ImageItem(str(p), i % 3) for i, p in enumerate(order)]
    before = [(i.path, i.label) for i in items]
    parts = list(iter_scores(model, items, 32, batch_size=2))
    rows = [
        (path, int(label))
        for part in parts
        for path, label in zip(part.paths, part.labels, strict=True)
    ]
    assert rows == [(i.path, i.label) for i in items if Path(i.path) in good]
    positions = [int(p) for part in parts for p in part.positions]
    assert [items[p].path for p in positions] == [r[0] for r in rows]
    failed = [f for part in parts for f in part.failures]
    assert failed == [i.path for i in items if Path(i.path) not in good]
    assert [(i.path, i.label) for i in items] == before


def test_the_core_refuses_rows_out_of_step_with_their_files():
    from imgclf.data.decode import DecodeLog
    from imgclf.data.scan import ImageItem
    from imgclf.evaluation.inference import _positions

    items = [ImageItem("a.jpg", 0), ImageItem("b.jpg", 1), ImageItem("c.jpg", 2)]
    log = DecodeLog()
    log.record("b.jpg", OSError("truncated"))
    assert _positions(items, log, 0, np.array([0, 2])).tolist() == [0, 2]
    with pytest.raises(RuntimeError, match="out of step"):
        _positions(items, DecodeLog(), 0, np.array([0, 2]))
