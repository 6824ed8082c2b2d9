"""``--time`` for a from-scratch model (imgclf.training.scratch_budget): the pure budget
arithmetic, the callback that stops an epoch when the time is up, and one tiny real run whose plan
is recorded, written to config.yaml and obeyed (and which uses precise BatchNorm statistics, the
from-scratch default)."""

from __future__ import annotations

import io
import re
import time
from contextlib import redirect_stdout

import keras
import pytest
import yaml
from helpers import history_rows, make_dataset, manifest_rows

import imgclf
from imgclf.config import TrainConfig
from imgclf.data.scan import ImageItem, scan_folder
from imgclf.models.classifier import build_classifier
from imgclf.models.registry import get_spec
from imgclf.progress import format_seconds
from imgclf.runs import RunFiles, read_json
from imgclf.training import measure, stages
from imgclf.training import plan as plan_module
from imgclf.training.budget import (
    FILL,
    MIN_TRAIN_PER_CLASS,
    SCRATCH_STEP_FACTOR,
    Rates,
    reserve_seconds,
)
from imgclf.training.callbacks import Deadline, StopInEpoch
from imgclf.training.precise_bn import PreciseBatchNorm
from imgclf.training.scratch_budget import budget_scratch

# the cnn at 32 px, quiet machine: ~0.5 ms per image forward, decoding included
QUIET = Rates.measured(0.0005, 0.0, cached=False)
N = {"n_train": 13_991, "n_val": 4_003, "n_test": 2_006}  # 20,000 generated 32 px images


def plan(left_s, rates=QUIET, epochs=25, decode_s=0.0, report_s=10.0, **n):
    n = {**N, **n}
    return budget_scratch(
        left_s,
        left_s,
        n["n_train"],
        n["n_val"],
        n["n_test"],
        10,
        rates,
        epochs=epochs,
        report_s=report_s,
        decode_s=decode_s,
    )


def spent(p) -> float:
    return p.planned_s + p.reserve_s


def test_a_generous_budget_trains_every_epoch_on_every_image():
    p = plan(3600)
    assert (p.train_images, p.val_images, p.epochs, p.note) == (13_991, 4_003, 25, "")
    assert (
        "from scratch on all 13,991 train images, all 4,003 val (model selection), 25 of 25 epochs"
        in p.line()
    )


def test_a_smaller_budget_plans_fewer_epochs_and_keeps_the_reserve():
    p = plan(180, decode_s=0.0008)
    assert 1 <= p.epochs < 25 and p.train_images == 13_991 and p.note == "the rest do not fit"
    assert p.val_images < 4_003  # fewer validation images for model selection before fewer epochs
    assert p.reserve_s == round(
        reserve_seconds(2_006, 4_003, 0.0008, 10.0), 1
    )  # scoring is never cheaper than decoding
    assert spent(p) <= 180 and p.planned_s <= (180 - p.reserve_s) * FILL + 0.05
    assert plan(360, decode_s=0.0008).epochs > p.epochs


def test_when_one_epoch_does_not_fit_a_stratified_subsample_gets_one():
    p = plan(60, rates=Rates.measured(0.004, 0.0, cached=False))
    assert p.epochs == 1 and MIN_TRAIN_PER_CLASS * 10 <= p.train_images < 13_991
    assert (
        "of 13,991 train images" in p.line() and "one epoch on every image does not fit" in p.line()
    )
    assert spent(p) <= 60


def test_when_nothing_fits_the_smallest_subsample_still_trains_one_epoch():
    p = plan(5)
    assert (p.train_images, p.epochs) == (MIN_TRAIN_PER_CLASS * 10, 1)
    assert p.note == "even the smallest subsample overruns"


@pytest.mark.parametrize("left", [30, 60, 180, 600])
def test_the_plan_never_spends_more_than_is_left(left):
    for rates in (QUIET, Rates.measured(0.003, 0.0, cached=False, slowdown=3)):
        p = plan(left, rates=rates, decode_s=0.0008)
        if p.train_images > MIN_TRAIN_PER_CLASS * 10:
            assert spent(p) <= left


# Fashion-MNIST's 60,000 28 px images (48,000 train, 12,000 val, 10,000 test) and the tiny_cnn on a
# quiet 2-core machine: a forward pass ~0.15 ms an image (stop 12's later epoch, 36.8 s, over
# 4.75 × 48,000 + 12,000 passes), decoding ~0.35 ms (docs/benchmarks.md)
FASHION = {"n_train": 48_000, "n_val": 12_000, "n_test": 10_000}
FORWARD = 0.00015
FASHION_RATES = Rates(
    0.0005, 0.0, 0.0005, SCRATCH_STEP_FACTOR * FORWARD, FORWARD, fine_tune_start=3
)


def test_the_first_epoch_pays_decoding_and_start_up_once_and_later_epochs_only_their_steps():
    p = plan(240, rates=FASHION_RATES, epochs=30, decode_s=0.00035, report_s=15.0, **FASHION)
    epoch = 48_000 * SCRATCH_STEP_FACTOR * FORWARD + 12_000 * FORWARD  # 36 s: after the first
    first = epoch + 60_000 * 0.00035 + 3.0  # + decoding every image into the cache, + tracing
    assert p.epoch_s == pytest.approx(epoch, abs=0.05)
    assert p.first_epoch_s == pytest.approx(first, abs=0.05)
    assert p.planned_s == pytest.approx(first + (p.epochs - 1) * epoch, abs=0.1)
    # as many epochs as fit: one more would not
    room = (240 - p.reserve_s) * FILL
    assert p.epochs == 4 and p.planned_s <= room < p.planned_s + epoch
    assert f"(~{format_seconds(epoch)} each, the first ~{format_seconds(first)} with decoding)" in (
        p.line()
    )


def _items(n: int, split: str) -> list[ImageItem]:
    return [ImageItem(f"{split}{k}.png", k % 2, split, 16, 16) for k in range(n)]


@pytest.mark.parametrize("cache_mb", [1024, 0])
def test_a_scratch_plan_counts_decoding_once_when_the_images_are_cached(monkeypatch, cache_mb):
    # decoding 2 ms an image, the forward pass on a decoded image 1 ms: a pass that decodes (what
    # scoring the test images costs) 3 ms
    monkeypatch.setattr(measure, "decode_and_forward", lambda *a, **k: (0.002, 0.001))
    monkeypatch.setattr(plan_module, "slowdown", lambda: 1.0)
    by_split = {"train": _items(400, "train"), "val": _items(100, "val"), "test": _items(50, "t")}
    cfg = TrainConfig(
        data="x", model="tiny_cnn", image_size=16, epochs=30, time_budget="60s", cache_mb=cache_mb
    )
    clf = build_classifier(get_spec("tiny_cnn"), 2, 16, "none", 0)
    deadline = time.perf_counter() + 60
    run_plan, _ = plan_module.plan_run(cfg, clf, by_split, 2, deadline, [].append, True, True)
    record, start = run_plan.record, run_plan.record["rates_s_per_image"]["fine_tune_start"]
    once, every = (0.002, 0.0) if cache_mb else (0.0, 0.002)  # no cache: every epoch decodes
    step = SCRATCH_STEP_FACTOR * 0.001
    assert record["rates_s_per_image"]["fine_tune"] == pytest.approx(step + every)
    assert record["rates_s_per_image"]["score"] == pytest.approx(0.003)  # test images: decoded
    assert record["epoch_s"] == pytest.approx(400 * (step + every) + 100 * (0.001 + every), abs=0.1)
    assert record["first_epoch_s"] == pytest.approx(record["epoch_s"] + 500 * once + start, abs=0.1)


def test_decode_and_forward_measures_decoding_and_the_forward_pass_apart(tmp_path):
    data = make_dataset(tmp_path / "tiny", {"a": 6, "b": 6}, size=(16, 16), seed=3)
    items = scan_folder(data).items
    model = build_classifier(get_spec("tiny_cnn"), 2, 16, "none", 0).model
    decode, forward = measure.decode_and_forward(model, items, 16, 4, batches=3)
    assert decode > 0 and forward > 0
    assert measure.decode_and_forward(model, items[:2], 16, 4)[1] > 0  # one batch: it alone


def test_a_deadline_does_not_say_it_stopped_a_fit_after_its_last_epoch():
    # the last planned epoch ran: timings.json must not say "the time ran out (slower than planned)"
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False
    late = Deadline(time.perf_counter() - 1)
    late.set_model(model)
    late.set_params({"epochs": 2})
    late.on_epoch_begin(1)
    late.on_epoch_end(1)
    assert not late.stopped and not model.stop_training
    late.on_epoch_begin(0)
    late.on_epoch_end(0)  # an epoch before the last: stopped
    assert late.stopped and model.stop_training


def test_stop_in_epoch_stops_after_the_batch_that_reaches_the_time():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit sets it
    later = StopInEpoch(time.perf_counter() + 3600)
    later.set_model(model)
    later.on_epoch_begin(0)
    later.on_train_batch_end(0)
    assert later.stopped is None and not model.stop_training
    now = StopInEpoch(time.perf_counter() - 1)
    now.set_model(model)
    now.on_epoch_begin(2)
    now.on_train_batch_end(4)
    assert now.stopped == (3, 5) and model.stop_training


def test_a_cnn_run_with_a_budget_plans_its_epochs_and_records_the_plan(
    tmp_path, monkeypatch, private_cache
):
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=26)
    # a slow measured forward pass (0.1 s per image, decoding 0.02 s) makes the plan cut the 25
    # default epochs whatever the machine's load
    monkeypatch.setattr(measure, "decode_and_forward", lambda *args, **kwargs: (0.02, 0.1))
    # the recipe's precise BatchNorm statistics (imgclf.training.precise_bn), with the config's
    # default batches
    made = []

    class Recorded(PreciseBatchNorm):
        def __init__(self, backbone, train_raw, batches, batch_size, seed):
            super().__init__(backbone, train_raw, batches, batch_size, seed)
            made.append(batches)

    monkeypatch.setattr(stages, "PreciseBatchNorm", Recorded)
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        result = imgclf.train(
            data,
            model="cnn",
            image_size=32,
            batch_size=8,
            augment="none",
            time_budget="60s",
            report=False,
            out=str(tmp_path / "runs"),
            verbose=1,
        )
    out = stdout.getvalue()
    plan_ = read_json(result.run_dir / RunFiles.TIMINGS)["plan"]
    assert re.search(
        r"--time 1m00s: (\d+m)?\d+s left; from scratch on .* train images, .* val \(model "
        r"selection\), \d+ of 25 epochs",
        out,
    ), out
    assert plan_["line"] in out and out.index(plan_["line"]) < out.index("stage train")
    assert plan_["train_total"] == sum(r["split"] == "train" for r in manifest_rows(result.run_dir))
    assert plan_["epochs_asked"] == 25 and 1 <= plan_["epochs"] < 25
    # a training image: SCRATCH_STEP_FACTOR forward passes of a decoded image (the 24 images fit
    # the cache)
    assert plan_["rates_s_per_image"]["fine_tune"] == pytest.approx(SCRATCH_STEP_FACTOR * 0.1)
    assert plan_["first_epoch_s"] > plan_["epoch_s"]  # decoding every image, once
    assert plan_["reserve_s"] > 0 and plan_["left_s"] <= 60
    rows = history_rows(result.run_dir)
    assert 1 <= len(rows) <= plan_["epochs"] and {r["stage"] for r in rows} == {"train"}
    # config.yaml says the epochs that were planned, not the 25 asked; timings what really ran
    config = yaml.safe_load((result.run_dir / RunFiles.CONFIG).read_text())
    assert config["epochs"] == plan_["epochs"] and config["report"] is False
    assert plan_["planned_epochs"] == {"train": plan_["epochs"]}
    assert plan_["ran_epochs"] == {"train": len(rows)}
    assert (len(rows) < plan_["epochs"]) == ("planned train" in out)
    assert read_json(result.run_dir / RunFiles.METRICS)["interrupted"] is False
    assert made == [TrainConfig().precise_bn] and made[0] > 0
