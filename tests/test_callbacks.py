"""imgclf.training.callbacks: history.csv rows, one per epoch, numbered across stages."""

from __future__ import annotations

import csv
import re

import keras
import numpy as np
import pytest

from imgclf.training.callbacks import HISTORY_COLUMNS, HistoryCSV


def tiny_fit(callback, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return model.fit(
        x, y, validation_data=(x, y), epochs=epochs, batch_size=8, callbacks=[callback], verbose=0
    ).history


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_one_row_per_epoch_numbered_across_stages(tmp_path):
    path = tmp_path / "history.csv"
    head = HistoryCSV(path, "head")
    keras_logs = [tiny_fit(head, epochs=2)]
    assert head.epochs_done == 2
    keras_logs.append(tiny_fit(HistoryCSV(path, "fine_tune", first_epoch=head.epochs_done), 3))

    with open(path, newline="") as fh:
        assert next(csv.reader(fh)) == HISTORY_COLUMNS  # header written once
    rows = read_rows(path)
    assert [(r["stage"], int(r["epoch"])) for r in rows] == [
        ("head", 1),
        ("head", 2),
        ("fine_tune", 3),
        ("fine_tune", 4),
        ("fine_tune", 5),
    ]
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):  # what Keras' History says
        logged = [v for stage in keras_logs for v in stage[column]]
        assert [float(r[column]) for r in rows] == pytest.approx(logged, rel=1e-5), column
    for r in rows:
        assert re.fullmatch(r"\d+\.\d\d", r["seconds"])  # seconds, 2 decimals
        assert float(r["learning_rate"]) == 0.01


def test_a_ctrl_c_that_a_library_swallows_still_stops_the_fit():
    """SIGINT while a bare ``except:`` (Keras' loss set-up has several) or a ``__del__`` runs turns
    into a KeyboardInterrupt that is swallowed there: with Interrupts active, RaiseInterrupt raises
    it again at the next batch, and the flag says it came."""
    import os
    import signal

    import pytest

    from imgclf.training.callbacks import RaiseInterrupt
    from imgclf.training.interrupts import Interrupts

    batches = []

    class SwallowsCtrlC(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            batches.append(batch)
            if batch == 1:
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(10_000):  # the handler runs here, between two bytecodes
                        pass
                except KeyboardInterrupt:  # what a bare except in a library does
                    pass

    previous = signal.getsignal(signal.SIGINT)
    with Interrupts() as interrupts:
        with pytest.raises(KeyboardInterrupt):
            tiny_fit_with([SwallowsCtrlC(), RaiseInterrupt(interrupts)], epochs=3)
        assert interrupts.seen
    assert batches == [0, 1]  # stopped right after the batch in which Ctrl-C came
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is put back
    # without the flag and the callback, the same swallowed Ctrl-C is lost: the fit runs to the end
    batches.clear()
    tiny_fit_with([SwallowsCtrlC()], epochs=3)
    assert batches == [0, 1] * 3


def tiny_fit_with(callbacks, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model.fit(x, y, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0)
