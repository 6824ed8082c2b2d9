"""The mixed-precision path, run on this CPU: what a GPU with tensor cores gets by default
(``--mixed-precision auto``) is forced here with the policy's chooser, so the run's float16 layers,
its float32 output, the checkpoint, the export and the prediction are all exercised without a GPU.
Whether float16 is *faster* is a GPU question (docs/scaling.md); that it trains, saves and predicts
the same way is tested here."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from helpers import make_distinct_dataset

import imgclf
from imgclf.training import trainer


@pytest.fixture
def mixed_float16(monkeypatch):
    """Every run in the test chooses ``mixed_float16``; the global policy is float32 again
    afterwards, so the next test in this worker builds float32 models."""
    monkeypatch.setattr(trainer, "choose_precision", lambda setting: "mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_a_mixed_float16_run_trains_and_predicts_in_float32(
    tmp_path, private_cache, tiny_backbone, mixed_float16
):
    data = make_distinct_dataset(tmp_path / "data", {"cat": 12, "dog": 12, "fox": 12}, seed=4)
    result = imgclf.train(
        data,
        model=tiny_backbone,
        image_size=32,
        head_epochs=3,
        epochs=1,
        batch_size=4,
        augment="none",
        test_fraction=0.25,
        out=str(tmp_path / "runs"),
        name="mixed",
        verbose=0,
        report=False,
        seed=5,
    )
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    model = keras.saving.load_model(result.run_dir / "model.keras", compile=False)
    dtypes = {layer.name: layer.dtype_policy.name for layer in model.layers}
    assert dtypes["predictions"] == "float32"  # the softmax stays float32 under the policy
    assert "mixed_float16" in dtypes.values()
    history = (result.run_dir / "history.csv").read_text().splitlines()
    losses = [float(row.split(",")[2]) for row in history[1:]]
    assert all(np.isfinite(losses)), history  # the first epoch's NaN check had nothing to stop
    keras.mixed_precision.set_global_policy("float32")  # prediction in a float32 process
    rows = imgclf.Run(result.run_dir).predict(sorted((data / "cat").iterdir())[:4], top_k=3)
    assert all(row.ok for row in rows)
    probabilities = np.array([[p for _label, p in row.top_k] for row in rows])
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
