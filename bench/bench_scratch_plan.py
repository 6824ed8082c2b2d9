"""The ``--time`` plan of a from-scratch model against the epochs it plans, in one process (issue
21.3): the plan's estimate of an epoch, as measured before (decoding and the forward pass timed
together, :func:`~imgclf.training.measure.forward_rate`, × 4 for every epoch, plus a guessed
decoding cost in the first) and now (:func:`~imgclf.training.measure.decode_and_forward`: decoding
paid once, in the first epoch), beside the seconds each epoch of a real fit on the same images takes
(the tiny_cnn on Fashion-MNIST at 28 px, the in-memory cache filled in the first epoch, as
``imgclf train`` fits it). One result line per epoch and a ratio estimate / real::

    .venv/bin/python bench/bench_scratch_plan.py --images 20000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _estimates(model, items, n: int, nv: int, load: float) -> dict[str, tuple[float, float]]:
    """(first epoch, each later epoch) in seconds, as the plan estimated them before and now."""
    from imgclf.training.budget import (
        FIT_START_SECONDS,
        PER_IMAGE_FLOOR_S,
        SCRATCH_STEP_FACTOR,
        fixed_cost_factor,
    )
    from imgclf.training.measure import decode_and_forward, forward_rate

    start = FIT_START_SECONDS * fixed_cost_factor(load)
    both = forward_rate(model, items, 28, 32, batches=8)
    before = n * 4 * both + nv * both
    decode, forward = decode_and_forward(model, items, 28, 32, 16)
    now = n * SCRATCH_STEP_FACTOR * forward + nv * forward
    return {
        "before": (before + (n + nv) * PER_IMAGE_FLOOR_S * load + start, before),
        "now": (now + (n + nv) * decode + start, now),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20_000, help="Fashion-MNIST training images used")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    from bench_tiny import make_fashion

    with tempfile.TemporaryDirectory(prefix="bench_scratch_plan_") as tmp:
        # the PNGs written from the arrays are kept in $IMGCLF_CACHE when it is set
        os.environ.setdefault("IMGCLF_CACHE", str(Path(tmp) / "cache"))
        import keras

        from imgclf.data.arrays import materialise_arrays
        from imgclf.data.decode import DecodeLog
        from imgclf.data.pipeline import batched, decoded_dataset
        from imgclf.data.scan import scan_folder
        from imgclf.models.classifier import build_classifier
        from imgclf.models.registry import get_spec
        from imgclf.training.measure import slowdown

        data, what = make_fashion(Path(tmp))
        folder, _ = materialise_arrays(data)
        items = scan_folder(folder / "train").items[: args.images]
        nv = len(items) // 5
        train, val = items[nv:], items[:nv]
        clf = build_classifier(get_spec("tiny_cnn"), 10, 28, "none", 0)
        load, avg = slowdown(), os.getloadavg()[0]
        est = _estimates(clf.model, train, len(train), nv, load)
        print(f"data: {what}, {len(train)} train + {nv} val; slowdown {load:.2f}, load {avg:.1f}")
        train_ds = batched(decoded_dataset(train, 28, DecodeLog()), 32, 0, len(train))
        val_ds = batched(decoded_dataset(val, 28, DecodeLog()), 32)
        clf.model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        seconds: list[float] = []
        timer = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda e, logs: seconds.append(time.perf_counter()),
            on_epoch_end=lambda e, logs: seconds.append(time.perf_counter() - seconds.pop()),
        )
        clf.model.fit(
            train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=[timer], verbose=0
        )
        for epoch, real in enumerate(seconds, 1):
            line = {"epoch": epoch, "real_s": round(real, 1)}
            for name, (first, later) in est.items():
                guess = first if epoch == 1 else later
                line[f"{name}_s"] = round(guess, 1)
                line[f"{name}/real"] = round(guess / real, 2)
            print(json.dumps(line), flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
