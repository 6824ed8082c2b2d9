"""Issue 21.2: which head on the frozen multi-depth Lite0 features, and at which input size — the
head of stop 13 (BatchNormalization, dropout 0.2, Dense, Adam at ``--learning-rate`` 1e-3) against
stop 14's (the same with an L2 penalty of ``HEAD_NORM_L2`` on the Dense kernel, at
``HEAD_NORM_LR_SCALE`` × 1e-3), each for a few head-epoch caps, at 128 and 160 px, on several of
imgclf's splits of the digits.

The features of every image are extracted once per size (decoding included; the multi-depth
features of :mod:`imgclf.models.multi_depth`), then split as ``imgclf train --seed S`` splits them.
Each head trains on the train rows with early stopping on the validation loss (patience 4, the best
epoch restored, as imgclf's head stage) and is scored on the test rows. Accuracy only: the wall
times of ``--time`` are measured by the whole command (docs/benchmarks.md).

Run: ``nice .venv/bin/python bench/bench_multi_depth_head.py [--sizes 128,160] [--seeds 42,1,2]
[--epochs 8,30]``; one ``RESULT`` line per (size, seed, head, epochs).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from bench_head_features import extract, split_items  # noqa: E402
from common import DIGITS, result  # noqa: E402 (after the environment is set)

HEADS = {"stop13": (0.0, 1.0), "stop14": None}  # name -> (L2, share of 1e-3); None: imgclf's own


def head_setting(name: str) -> tuple[float, float]:
    """(L2 penalty, learning rate) of head ``name``."""
    from imgclf.models.classifier import HEAD_NORM_L2, HEAD_NORM_LR_SCALE

    l2, share = HEADS[name] or (HEAD_NORM_L2, HEAD_NORM_LR_SCALE)
    return l2, 1e-3 * share


def fit_head(parts, l2: float, lr: float, epochs: int, seed: int) -> tuple[float, float, int]:
    """(val, test accuracy, epochs run) of the multi-depth head's layers trained on ``parts``."""
    import keras

    from imgclf.models.classifier import HEAD_DROPOUT, HEAD_NORM_MOMENTUM

    keras.utils.set_random_seed(seed)
    (x, y), val = parts["train"], parts["val"]
    penalty = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            keras.layers.BatchNormalization(momentum=HEAD_NORM_MOMENTUM),
            keras.layers.Dropout(HEAD_DROPOUT),
            keras.layers.Dense(int(y.max()) + 1, activation="softmax", kernel_regularizer=penalty),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping("val_loss", patience=4, restore_best_weights=True)
    hist = model.fit(
        x, y, validation_data=val, epochs=epochs, batch_size=32, verbose=0, callbacks=[stop]
    )
    score = {k: float(model.evaluate(*parts[k], verbose=0)[1]) for k in ("val", "test")}
    return score["val"], score["test"], len(hist.history["val_loss"])


def all_features(size: int, items) -> tuple[np.ndarray, dict[str, int]]:
    """The multi-depth features of ``items`` at ``size``, and each path's row."""
    from imgclf.models.multi_depth import multi_depth_features
    from imgclf.models.registry import get_spec

    model = multi_depth_features(get_spec("efficientnet_lite0").builder(size))
    rows, _labels = extract(model, items, size)
    return rows, {str(item.path): k for k, item in enumerate(items)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,160")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--epochs", default="8,30", help="head-epoch caps to try")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = {seed: split_items(DIGITS, seed) for seed in seeds}
    everything = [i for part in splits[seeds[0]].values() for i in part]
    for size in (int(s) for s in args.sizes.split(",")):
        rows, row_of = all_features(size, everything)
        for seed in seeds:
            parts = {}
            for name, items in splits[seed].items():
                idx = np.array([row_of[str(i.path)] for i in items])
                parts[name] = (rows[idx], np.array([i.label for i in items]))
            for head in HEADS:
                for cap in (int(e) for e in args.epochs.split(",")):
                    val, test, ran = fit_head(parts, *head_setting(head), cap, seed)
                    result(
                        size=size,
                        seed=seed,
                        head=head,
                        epochs_cap=cap,
                        epochs=ran,
                        val=val,
                        test=test,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
