"""imgclf.training.views: one cached view per image per epoch, drawn again each epoch, seeded."""

import keras
import numpy as np
import pytest

from imgclf.training.views import DrawViews, ViewBatches

N, V = 10, 3


def views_array() -> np.ndarray:
    # value = 100 * view + image, so every row says which view of which image it is
    return np.array([[[100.0 * v + i] for i in range(N)] for v in range(V)], np.float32)


def epoch_rows(batches: ViewBatches) -> np.ndarray:
    return np.concatenate([batches[k][0][:, 0] for k in range(len(batches))])


def test_each_image_once_per_epoch_with_its_target():
    batches = ViewBatches(views_array(), np.arange(N), batch_size=4, seed=0)
    assert len(batches) == 3
    rows = np.concatenate([batches[k][0][:, 0] for k in range(3)])
    targets = np.concatenate([batches[k][1] for k in range(3)])
    assert sorted(rows.astype(int) % 100) == list(range(N))
    assert (rows.astype(int) % 100 == targets).all()


def test_views_and_order_change_between_epochs_and_repeat_for_the_same_epoch():
    batches = ViewBatches(views_array(), np.arange(N), batch_size=4, seed=0)
    epochs = []
    for epoch in range(4):
        batches.draw(epoch)
        epochs.append(epoch_rows(batches))
    assert len({tuple(e) for e in epochs}) == 4
    seen_views = {int(r) // 100 for e in epochs for r in e}
    assert seen_views == set(range(V))  # every view gets used
    resumed = ViewBatches(views_array(), np.arange(N), batch_size=4, seed=0, epoch=2)
    np.testing.assert_array_equal(epoch_rows(resumed), epochs[2])  # --resume sees the same epoch
    other_seed = ViewBatches(views_array(), np.arange(N), batch_size=4, seed=1, epoch=2)
    assert not np.array_equal(epoch_rows(other_seed), epochs[2])


def test_mismatched_targets_are_refused():
    with pytest.raises(ValueError, match="10 images per view but there are 9 targets"):
        ViewBatches(views_array(), np.arange(N - 1), batch_size=4, seed=0)


def test_fit_draws_a_new_view_set_each_epoch():
    """Through Keras fit: the callback draws before each epoch's first batch is read."""
    batches = ViewBatches(views_array(), np.arange(N) % 2, batch_size=5, seed=0)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append((epoch, tuple(batches.choice)))

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(batches, epochs=3, initial_epoch=1, callbacks=[DrawViews(batches), Spy()], verbose=0)
    assert [e for e, _ in seen] == [1, 2]
    for epoch, choice in seen:
        batches.draw(epoch)
        assert tuple(batches.choice) == choice
