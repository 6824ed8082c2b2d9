"""Training controls: optimizers and learning-rate schedules, stop-at-accuracy, label smoothing,
class
weights, TensorBoard and the time budget — each through a real (tiny) run, plus their validation."""

from __future__ import annotations

import io
import math
import re
from contextlib import redirect_stdout
from pathlib import Path

import keras
import pytest
import yaml
from helpers import history_rows, make_dataset, manifest_rows

import imgclf
from imgclf.cli import build_parser
from imgclf.config import parse_duration
from imgclf.config_files import resolve_config
from imgclf.errors import ConfigError
from imgclf.models.classifier import loss_and_metric
from imgclf.models.registry import get_spec
from imgclf.runs import RunFiles, read_json
from imgclf.training.optim import OPTIMIZERS, SCHEDULES, make_optimizer, schedule_callbacks

TINY = dict(
    model="cnn", image_size=32, batch_size=8, augment="none", verbose=0, report=False
)  # no test here reads a report
PEAK = 1e-3  # TrainConfig().learning_rate: the peak of the from-scratch schedule


pytestmark = pytest.mark.usefixtures("private_cache")


def lrs(run_dir: Path) -> list[float]:
    return [float(r["learning_rate"]) for r in history_rows(run_dir)]


def train_steps(run_dir: Path, batch_size: int = 8) -> int:
    n = sum(r["split"] == "train" for r in manifest_rows(run_dir))
    return math.ceil(n / batch_size)


# ---------------------------------------------------------------------------- optimizers and
# schedules

# one run per optimizer, each with another schedule (and a feature that needs a run of its own)
RUNS = {
    "adam_cosine": dict(optimizer="adam", lr_schedule="cosine", epochs=3),
    "sgd_constant": dict(optimizer="sgd", lr_schedule="constant", epochs=3, label_smoothing=0.1),
    "rmsprop_plateau": dict(
        optimizer="rmsprop", lr_schedule="plateau", epochs=2, class_weight="auto"
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("controls")
    balanced = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=21)
    imbalanced = make_dataset(base / "skewed", {"cat": 20, "dog": 8}, seed=22)
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    done = {}
    try:
        for name, options in RUNS.items():
            data = imbalanced if options.get("class_weight") == "auto" else balanced
            done[name] = imgclf.train(data, out=str(base / "runs"), name=name, **TINY, **options)
    finally:
        patch.undo()
    return done


@pytest.mark.parametrize("name", list(RUNS))
def test_each_optimizer_trains_and_logs_every_epoch(runs, name):
    result = runs[name]
    rows = history_rows(result.run_dir)
    assert [(r["stage"], int(r["epoch"])) for r in rows] == [
        ("train", e) for e in range(1, RUNS[name]["epochs"] + 1)
    ]
    for r in rows:
        assert math.isfinite(float(r["loss"])) and 0 <= float(r["accuracy"]) <= 1
    config = yaml.safe_load((result.run_dir / RunFiles.CONFIG).read_text())
    assert (
        config["optimizer"] == RUNS[name]["optimizer"]
        and config["lr_schedule"] == RUNS[name]["lr_schedule"]
    )
    assert (
        not (result.run_dir / RunFiles.LAST).exists()
        and not (result.run_dir / RunFiles.STATE).exists()
    )
    assert read_json(result.run_dir / RunFiles.METRICS)["interrupted"] is False


def test_constant_schedule_keeps_the_learning_rate(runs):
    assert lrs(runs["sgd_constant"].run_dir) == [pytest.approx(PEAK, rel=1e-5)] * 3


def test_plateau_schedule_starts_at_the_peak_and_never_rises(runs):
    values = lrs(runs["rmsprop_plateau"].run_dir)
    assert values[0] == pytest.approx(PEAK, rel=1e-5)  # no warm-up
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    (callback,) = schedule_callbacks("plateau", patience=4)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (
        callback.monitor == "val_loss"
        and callback.patience == 2
        and callback.factor == pytest.approx(0.3)
    )
    assert schedule_callbacks("cosine", 4) == [] and schedule_callbacks("constant", 4) == []


def test_cosine_schedule_warms_up_then_decays_to_zero(runs):
    values = lrs(runs["adam_cosine"].run_dir)
    assert len(values) == 3
    assert all(0 <= v <= PEAK * (1 + 1e-6) for v in values)
    assert values[0] > values[1] > values[2]
    assert values[2] == pytest.approx(0.0, abs=1e-9)  # the schedule ends with the last epoch


def test_cosine_schedule_is_exact_per_epoch_on_decoded_images(runs):
    """optim.py: a warm-up of exactly one epoch (peak/10 → peak), then cosine decay to 0 over the
    other
    epochs. history.csv logs the rate at the end of each epoch, i.e. at step k * steps_per_epoch."""
    values = lrs(runs["adam_cosine"].run_dir)
    assert values == [pytest.approx(v, rel=1e-4, abs=1e-9) for v in (PEAK, PEAK * 0.5, 0.0)]


def test_cosine_schedule_formula():
    """The schedule object itself: warm-up from peak/10 over one epoch (only with more than 2
    epochs),
    then cosine decay to 0 at the end of the last epoch; no warm-up for 1-2 epochs."""
    steps, epochs = 4, 5
    lr = make_optimizer(
        "adam", "cosine", PEAK, steps, epochs
    ).learning_rate  # property: at iteration 0
    assert float(lr) == pytest.approx(PEAK / 10)
    schedule = make_optimizer("adam", "cosine", PEAK, steps, epochs)._learning_rate
    at = lambda step: float(schedule(step))  # noqa: E731
    assert at(steps // 2) == pytest.approx(PEAK / 10 + (PEAK - PEAK / 10) / 2, rel=1e-5)
    assert at(steps) == pytest.approx(PEAK, rel=1e-5)
    middle = steps + (steps * epochs - steps) // 2
    assert at(middle) == pytest.approx(PEAK / 2, rel=1e-5)
    assert at(steps * epochs) == pytest.approx(0.0, abs=1e-9)
    short = make_optimizer("adam", "cosine", PEAK, steps, 2)._learning_rate
    assert float(short(0)) == pytest.approx(PEAK) and float(short(steps)) == pytest.approx(
        PEAK / 2, rel=1e-5
    )
    for name in ("constant", "plateau"):
        assert float(
            make_optimizer("adam", name, PEAK, steps, epochs).learning_rate
        ) == pytest.approx(PEAK)


def test_epoch_schedule_is_exact_on_a_stream_of_unknown_length():
    """scheduled_optimizer(known_length=False): on a filtered tf.data stream (Keras counts one extra
    iteration per epoch there) every batch trains at schedule(epoch * steps + batch) and each epoch
    ends at schedule((epoch + 1) * steps): a warm-up epoch, then the cosine reaching 0 at the last
    epoch's end."""
    import numpy as np
    import tensorflow as tf

    from imgclf.training.optim import EpochSchedule, scheduled_optimizer

    steps, epochs = 3, 3
    x, y = np.random.default_rng(0).random((24, 4), np.float32), np.arange(24) % 2
    stream = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(8)
    assert int(stream.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    optimizer, callbacks = scheduled_optimizer(
        "adam", "cosine", PEAK, steps, epochs, known_length=False
    )
    (callback,) = callbacks
    assert isinstance(callback, EpochSchedule)
    schedule = make_optimizer("adam", "cosine", PEAK, steps, epochs)._learning_rate
    seen, ends = [], []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(
            self, batch, logs=None
        ):  # the rate the batch trained at (Keras also begins
            seen.append(
                float(self.model.optimizer.learning_rate)
            )  # an empty extra batch per epoch here)

        def on_epoch_end(self, epoch, logs=None):
            ends.append(logs["learning_rate"])

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer, "binary_crossentropy")
    model.fit(stream, epochs=epochs, callbacks=[callback, Record()], verbose=0)
    assert seen == [
        pytest.approx(float(schedule(k)), rel=1e-5, abs=1e-12) for k in range(steps * epochs)
    ]
    assert ends == [pytest.approx(v, rel=1e-4, abs=1e-9) for v in (PEAK, PEAK * 0.5, 0.0)]
    # known length (arrays), or a schedule without steps: the optimizer alone, no callback
    assert scheduled_optimizer("adam", "cosine", PEAK, steps, epochs)[1] == []
    assert scheduled_optimizer("sgd", "constant", PEAK, steps, epochs, known_length=False)[1] == []


def test_optimizer_classes_and_momentum():
    sgd = make_optimizer("sgd", "constant", 0.01, 1, 1)
    assert (
        isinstance(sgd, keras.optimizers.SGD)
        and sgd.nesterov
        and sgd.momentum == pytest.approx(0.9)
    )
    assert isinstance(make_optimizer("rmsprop", "constant", 0.01, 1, 1), keras.optimizers.RMSprop)
    assert isinstance(make_optimizer("adam", "constant", 0.01, 1, 1), keras.optimizers.Adam)
    assert OPTIMIZERS == ("adam", "sgd", "rmsprop") and SCHEDULES == (
        "cosine",
        "plateau",
        "constant",
    )


def test_bad_optimizer_and_schedule_names(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `optimizer`: received 'adamw'; expected one of adam, sgd, "
        r"rmsprop",
    ):
        resolve_config(data="x", optimizer="adamw")
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `lr_schedule`: received 'linear'; expected one of cosine, "
        r"plateau, constant",
    ):
        resolve_config(data="x", lr_schedule="linear")
    with pytest.raises(ConfigError, match=r"`optimizer`.*'Adam'.*adam, sgd, rmsprop"):
        make_optimizer("Adam", "cosine", 1e-3, 1, 1)
    with pytest.raises(ConfigError, match=r"`lr_schedule`.*'step'.*cosine, plateau, constant"):
        make_optimizer("adam", "step", 1e-3, 1, 1)
    out = tmp_path / "runs"
    with pytest.raises(ConfigError, match="`optimizer`"):
        imgclf.train(tmp_path, optimizer="lion", out=str(out), verbose=0)
    assert not out.exists()  # rejected before anything is written


def test_tensorboard_writes_event_files(tmp_path):
    """`tensorboard --logdir RUN/tensorboard` shows the curves: its own reader finds one scalar per
    epoch
    for loss and accuracy (train and validation), equal to history.csv's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=26)
    result = imgclf.train(data, epochs=2, tensorboard=True, out=str(tmp_path / "runs"), **TINY)
    run_dir = result.run_dir
    events = [p for p in (run_dir / "tensorboard").rglob("*") if p.is_file()]
    assert events and any("tfevents" in p.name for p in events)
    assert all(
        p.relative_to(run_dir / "tensorboard").parts[0] == "train" for p in events
    )  # one folder per stage
    rows = history_rows(run_dir)
    for folder, prefix in (("train", ""), ("validation", "val_")):
        reader = EventAccumulator(str(run_dir / "tensorboard" / "train" / folder))
        reader.Reload()
        for tag, column in (("epoch_loss", "loss"), ("epoch_accuracy", "accuracy")):
            points = reader.Tensors(tag)
            assert [p.step for p in points] == [0, 1], (folder, tag)
            values = [float(tensor_util.make_ndarray(p.tensor_proto)) for p in points]
            assert values == [pytest.approx(float(r[prefix + column]), rel=1e-4) for r in rows], (
                folder,
                tag,
            )


def test_no_tensorboard_folder_by_default(runs):
    assert not (runs["adam_cosine"].run_dir / "tensorboard").exists()


def test_class_weight_auto_trains_on_an_imbalanced_set(runs):
    result = runs["rmsprop_plateau"]
    config = yaml.safe_load((result.run_dir / RunFiles.CONFIG).read_text())
    assert config["class_weight"] == "auto"
    assert read_json(result.run_dir / RunFiles.DATA_REPORT)["counts"] == {"cat": 20, "dog": 8}
    assert result.metrics.n > 0


# ---------------------------------------------------------------------------- label smoothing


def test_label_smoothing_losses():
    loss, metric, one_hot = loss_and_metric(3, 0.1)
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and one_hot
    assert loss.label_smoothing == pytest.approx(0.1)
    assert isinstance(metric, keras.metrics.CategoricalAccuracy)
    loss, _, one_hot = loss_and_metric(2, 0.1)
    assert isinstance(loss, keras.losses.BinaryCrossentropy) and not one_hot
    assert loss.label_smoothing == pytest.approx(0.1)
    loss, _, one_hot = loss_and_metric(3, 0.0)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy) and not one_hot


def test_label_smoothing_three_classes_trains(tmp_path):
    data = make_dataset(tmp_path / "abc", {"ant": 8, "bee": 8, "cow": 8}, seed=23)
    result = imgclf.train(data, epochs=1, label_smoothing=0.1, out=str(tmp_path / "runs"), **TINY)
    rows = history_rows(result.run_dir)
    assert len(rows) == 1
    assert 0 <= float(rows[0]["accuracy"]) <= 1 and 0 <= float(rows[0]["val_accuracy"]) <= 1
    assert keras.saving.load_model(result.run_dir / RunFiles.MODEL).output_shape == (None, 3)
    assert result.metrics.n == 3 and len(result.metrics.confusion_matrix) == 3


def test_label_smoothing_two_classes_trains(runs):
    config = yaml.safe_load((runs["sgd_constant"].run_dir / RunFiles.CONFIG).read_text())
    assert config["label_smoothing"] == pytest.approx(0.1)
    assert len(history_rows(runs["sgd_constant"].run_dir)) == 3


@pytest.mark.parametrize("bad", [0.7, 0.5, -0.1])
def test_label_smoothing_out_of_range(bad):
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `label_smoothing`: received .*; expected a number in \[0, 0\.5\)",
    ):
        resolve_config(data="x", label_smoothing=bad)


# ---------------------------------------------------------------------------- stop at accuracy


def test_stop_at_accuracy_stops_at_the_first_epoch_reaching_it(tmp_path):
    data = make_dataset(
        tmp_path / "colours", {"red": 12, "blue": 12}, seed=24
    )  # one colour per class
    result = imgclf.train(
        data,
        epochs=10,
        patience=10,
        stop_at_accuracy=0.5,
        lr_schedule="constant",
        out=str(tmp_path / "runs"),
        **TINY,
    )
    rows = history_rows(result.run_dir)
    accuracies = [float(r["val_accuracy"]) for r in rows]
    assert len(rows) <= 4, (
        accuracies
    )  # far fewer than 10 (patience 10: early stopping cannot stop it)
    assert accuracies[-1] >= 0.5
    assert all(
        a < 0.5 for a in accuracies[:-1]
    )  # it stops at the first epoch that reaches the target


@pytest.mark.parametrize("bad", [0, 1.5, -0.2])
def test_stop_at_accuracy_out_of_range(bad):
    with pytest.raises(ConfigError, match=r"`stop_at_accuracy`.*\(0, 1\]"):
        resolve_config(data="x", stop_at_accuracy=bad)


# ---------------------------------------------------------------------------- time budget


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("5m", 300), ("1.5h", 5400), ("45", 45), (" 2M ", 120)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "0m", "-5s", "", "m", "5 minutes", "nan"])
def test_bad_durations(bad):
    with pytest.raises(
        ConfigError, match=r"invalid value for `time_budget`.*a duration such as 90s, 5m or 1h"
    ):
        parse_duration(bad)
    with pytest.raises(ConfigError, match="`time_budget`"):
        resolve_config(data="x", time_budget=bad)


def test_cli_accepts_time_and_time_budget():
    parser = build_parser()
    assert parser.parse_args(["train", "data", "--time", "40s"]).time_budget == "40s"
    assert parser.parse_args(["train", "data", "--time-budget", "5m"]).time_budget == "5m"
    args = parser.parse_args(
        [
            "train",
            "data",
            "--optimizer",
            "sgd",
            "--lr-schedule",
            "plateau",
            "--label-smoothing",
            "0.1",
        ]
    )
    assert (args.optimizer, args.lr_schedule, args.label_smoothing) == ("sgd", "plateau", 0.1)
    args = parser.parse_args(
        ["train", "data", "--stop-at-accuracy", "0.9", "--tensorboard", "--no-feature-cache"]
    )
    assert args.stop_at_accuracy == 0.9 and args.tensorboard is True and args.feature_cache is False


def test_time_budget_run_plans_its_work_and_records_the_plan(tmp_path, tiny_backbone):
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=25)
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        result = imgclf.train(
            data,
            model=tiny_backbone,
            image_size=32,
            batch_size=8,
            augment="none",
            time_budget="20s",
            report=False,
            out=str(tmp_path / "runs"),
            verbose=1,
        )
    out = stdout.getvalue()
    metrics = read_json(result.run_dir / RunFiles.METRICS)
    assert metrics["interrupted"] is False
    config = yaml.safe_load((result.run_dir / RunFiles.CONFIG).read_text())
    default_epochs = get_spec(tiny_backbone).default_epochs
    assert config["image_size"] == 32  # given by the user: never shrunk
    # the plan, said before the work and recorded in timings.json (no wall-time assertion: the
    # machine may be busy)
    plan = read_json(result.run_dir / RunFiles.TIMINGS)["plan"]
    # config.yaml says what the plan will really do: the fine-tuning epochs planned (of the model's
    # default asked), or no fine-tuning at all; the head's epochs
    fine = plan["fine_tune_epochs"]
    expected = (fine, "auto") if fine else (default_epochs, "none")
    assert config["time_budget"] == "20s" and (config["epochs"], config["fine_tune"]) == expected
    assert config["head_epochs"] == plan["planned_epochs"]["head"]
    assert plan["ran_epochs"]["fine_tune"] <= fine
    assert re.search(
        r"--time 20s: \d+s left; extracting .* train images, 1 view\(s\), .*head \d+ "
        r"epochs( \(up to \d+ while time is left\))?, (no fine-tuning|fine-tuning \d epoch)",
        out,
    ), out
    assert plan["line"] in out and out.index(plan["line"]) < out.index("stage head")
    assert plan["train_total"] == 18 and plan["views"] == 1 and plan["image_size"] == 32
    assert (
        plan["reserve_s"] > 0 and plan["planned_s"] > 0 and plan["left_s"] <= 20
    )  # what fits depends on the load: not asserted
    assert plan["rates_s_per_image"]["extract"] > 0
    rows = history_rows(result.run_dir)
    assert rows and rows[0]["stage"] == "head"
    # the head's planned epochs, or up to the asked ones when it is the last stage; no more
    assert sum(r["stage"] == "head" for r in rows) <= max(plan["head_epochs"], plan["head_until"])
    assert plan["ran_epochs"]["head"] == sum(r["stage"] == "head" for r in rows)
    assert sum(r["stage"] == "fine_tune" for r in rows) <= plan["fine_tune_epochs"]
