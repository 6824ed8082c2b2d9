"""The training stages, wired to Keras ``fit``.

Pretrained backbones (the keras.io transfer-learning recipe, made fast):

1. **head** — the backbone is frozen. Its output (or, when fine-tuning follows, the activations at the
   cut below the trainable top) is computed once per image and per augmented view, kept in the
   feature cache, and the head trains on it in seconds.
2. **fine_tune** — the top of the backbone is unfrozen (BatchNorm frozen, inference mode) and trains
   with the head on the cached activations at a lower, warmed-up learning rate. The checkpoint only
   moves when validation loss beats the head stage's best. Where no cache is possible
   (``--fine-tune all``, no clean cut, over the memory budget) the whole model trains on decoded
   images with augmentation applied on the fly.

From-scratch models train in one stage (**train**) on decoded images.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imgclf.config import TrainConfig
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import Classifier, loss_and_metric
from imgclf.runs import RunFiles
from imgclf.training.callbacks import Deadline, HistoryCSV, RunState, SaveBest, StopAtAccuracy
from imgclf.training.feature_cache import FeatureCache, default_cache_root
from imgclf.training.optim import make_optimizer, schedule_callbacks
from imgclf.training.recipe import Plan, freeze_below
from imgclf.training.views import DrawViews, ViewBatches

__all__ = ["Session", "Activations", "train_pretrained", "train_scratch", "MONITOR"]

MONITOR = "val_loss"
RESERVE_SECONDS = 8.0  # kept back from a time budget for testing and saving


class Session:
    """State shared by the stages of one run: config, run folder, model parts, epoch count, clock."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, clf: Classifier, num_classes: int, verbose: int, deadline: float | None):
        self.cfg, self.run_dir, self.clf, self.verbose = cfg, run_dir, clf, verbose
        self.num_classes = num_classes
        self.deadline = deadline
        self.epochs_done = 0
        self.model_path = run_dir / RunFiles.MODEL
        self.class_weight: dict[int, float] | None = None
        self.loss, self.metric, self.one_hot = loss_and_metric(num_classes, cfg.label_smoothing)
        self._history: HistoryCSV | None = None
        self.decode_failures: dict[str, str] = {}
        self.resume: dict | None = None  # state.json of an interrupted run being resumed
        self.head_loss: float | None = None

    def say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    @property
    def fit_verbose(self) -> int:
        if not self.verbose:
            return 0
        return 1 if sys.stdout.isatty() else 2

    def seconds_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.perf_counter() - RESERVE_SECONDS

    def targets(self, labels: np.ndarray) -> np.ndarray:
        return keras.utils.to_categorical(labels, self.num_classes) if self.one_hot else labels

    def resume_epoch(self, stage: str) -> int:
        """Epochs of ``stage`` already done by the run being resumed (0 if none)."""
        return int(self.resume["stage_epochs"]) if self.resume and self.resume["stage"] == stage else 0

    def restore(self, model: keras.Model) -> None:
        """Load ``last.keras`` weights and optimizer state into ``model`` (compiled the same way)."""
        last = keras.saving.load_model(self.run_dir / RunFiles.LAST)
        model.set_weights(last.get_weights())
        model.optimizer.build(model.trainable_variables)
        for mine, saved in zip(model.optimizer.variables, last.optimizer.variables):
            mine.assign(saved)

    def callbacks(self, stage: str, *, save: keras.Model | None = None, threshold: float | None = None) -> list:
        """History, early stopping and the optional controls; ``save``: checkpoint that model on
        improvement (and the trained model every epoch, for --resume), else restore the best weights."""
        cfg = self.cfg
        self._history = HistoryCSV(self.run_dir / RunFiles.HISTORY, stage, first_epoch=self.epochs_done)
        out: list = [self._history, keras.callbacks.EarlyStopping(MONITOR, patience=cfg.patience, restore_best_weights=save is None)]
        if save is not None:
            best = SaveBest(save, self.model_path, monitor=MONITOR, initial_value_threshold=threshold)
            out += [best, keras.callbacks.ModelCheckpoint(self.run_dir / RunFiles.LAST)]
            out.append(RunState(self.run_dir / RunFiles.STATE, stage, self.head_loss, best))
        if cfg.stop_at_accuracy is not None:
            out.append(StopAtAccuracy(cfg.stop_at_accuracy))
        if self.deadline is not None:
            out.append(Deadline(self.deadline - RESERVE_SECONDS))
        if cfg.tensorboard:
            out.append(keras.callbacks.TensorBoard(str(self.run_dir / "tensorboard" / stage)))
        return out + schedule_callbacks(cfg.lr_schedule, cfg.patience)

    def end_stage(self) -> None:
        if self._history is not None:
            self.epochs_done += self._history.epochs_done

    def compile(self, model: keras.Model, peak_lr: float, steps_per_epoch: int, epochs: int, schedule: str | None = None) -> None:
        optimizer = make_optimizer(self.cfg.optimizer, schedule or self.cfg.lr_schedule, peak_lr, steps_per_epoch, epochs)
        model.compile(optimizer=optimizer, loss=self.loss, metrics=[self.metric])


class Activations:
    """Frozen-bottom activations of the train (all views) and val (view 0) images, via the feature cache."""

    def __init__(self, s: Session, bottom: keras.Model, cut_name: str):
        cfg = s.cfg
        root = default_cache_root() if cfg.feature_cache else None
        key = (s.clf.spec.name, _weights_id(s.clf), cut_name, cfg.image_size, cfg.augment, cfg.seed)
        self.s, self.bottom, self.cache = s, bottom, FeatureCache(root, key)
        self.log = DecodeLog()
        # one traced function for every batch and view (predict_on_batch would retrace per shape)
        self._forward = tf.function(lambda x: bottom(x, training=False), reduce_retracing=True)

    def _compute(self, items: list[ImageItem], view: int):
        """Returns a compute(indices) for FeatureCache: decode, augment (view > 0), run the bottom."""
        cfg, s = self.s.cfg, self.s
        augment = s.clf.model.get_layer("augmentation") if view and _has_augmentation(s.clf) else None

        def compute(indices: list[int]) -> tuple[list[int], np.ndarray]:
            subset = [replace(items[i], label=i) for i in indices]  # the label slot carries the position
            kept, out = [], []
            for x, pos in batched(decoded_dataset(subset, cfg.image_size, self.log, cache=False), cfg.batch_size):
                if augment is not None:
                    x = augment(x, training=True)
                out.append(self._forward(x).numpy())
                kept.extend(int(p) for p in pos.numpy())
            shape = (0, *self.bottom.output.shape[1:])
            return kept, (np.concatenate(out) if out else np.zeros(shape, np.float32))

        return compute

    def get(self, items: list[ImageItem], view: int) -> tuple[np.ndarray, np.ndarray]:
        hashes = FeatureCache.digests([i.path for i in items])
        kept, acts = self.cache.get(hashes, view, self._compute(items, view))
        return acts, np.array([items[i].label for i in kept], np.int32)


def _has_augmentation(clf: Classifier) -> bool:
    return any(layer.name == "augmentation" for layer in clf.model.layers)


def _weights_id(clf: Classifier) -> str:
    """Identifies the backbone's pretrained weights (cheap: a digest of a few weight tensors)."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    for w in clf.backbone.weights[:3] + clf.backbone.weights[-3:]:
        h.update(np.asarray(w.numpy()).tobytes()[:4096])
    return h.hexdigest()


def _history_rows(s: Session, stage: str) -> int:
    import csv

    with open(s.run_dir / RunFiles.HISTORY, newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row["stage"] == stage)


def _steps(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def _views_within_budget(s: Session, first_view_seconds: float) -> int:
    views = s.cfg.views if _has_augmentation(s.clf) else 1
    while views > 1 and first_view_seconds * (views - 1) > 0.25 * s.seconds_left():
        views -= 1
    return views


def _fit_arrays(
    s: Session, model: keras.Model, stage: str, x, y, xv, yv, peak_lr: float, save=None, threshold=None, views: int = 1
) -> None:
    """Fit on arrays. With ``views`` > 1, ``x``/``y`` are that many equal blocks (one per cached view)
    and each epoch draws one view per image (:mod:`imgclf.training.views`), so an epoch costs one view."""
    cfg = s.cfg
    n = len(x) // views
    epochs = cfg.head_epochs if stage == "head" else cfg.epochs
    if stage != "head":
        epochs = _epochs_within_budget(s, model, x[:n], y[:n], len(xv), epochs)
        if epochs == 0:
            s.say("  no time left for this stage")
            return
    s.compile(model, peak_lr, _steps(n, cfg.batch_size), epochs, schedule="constant" if stage == "head" else None)
    start = s.resume_epoch(stage)
    if start:
        s.restore(model)
        s.say(f"  resuming {stage} after epoch {start}")
    callbacks = s.callbacks(stage, save=save, threshold=threshold)
    if views > 1:
        data = ViewBatches(x.reshape(views, n, *x.shape[1:]), s.targets(y[:n]), cfg.batch_size, cfg.seed, start)
        fit_args: dict = {"x": data}
        callbacks.insert(0, DrawViews(data))
    else:
        fit_args = {"x": x, "y": s.targets(y), "batch_size": cfg.batch_size, "shuffle": True}
    model.fit(
        **fit_args, validation_data=(xv, s.targets(yv)), epochs=epochs, initial_epoch=start,
        class_weight=s.class_weight, callbacks=callbacks, verbose=s.fit_verbose,
    )
    s.end_stage()


def _epochs_within_budget(s: Session, model: keras.Model, x, y, n_val: int, epochs: int) -> int:
    """With a time budget, time a few training steps (weights restored after) and fit the epochs to it."""
    left = s.seconds_left()
    if left == float("inf"):
        return epochs
    bs = s.cfg.batch_size
    batch_x, batch_y = x[:bs], s.targets(y[:bs])
    saved = model.get_weights()
    s.compile(model, 1e-9, 1, 1, schedule="constant")
    model.train_on_batch(batch_x, batch_y)  # the first step traces the graph
    t = time.perf_counter()
    for _ in range(3):
        model.train_on_batch(batch_x, batch_y)
    per_step = (time.perf_counter() - t) / 3
    model.set_weights(saved)
    # a validation step (forward only) costs about a third of a training step; 20 % for overheads
    per_epoch = per_step * 1.2 * (_steps(len(x), bs) + _steps(n_val, bs) / 3)
    fit = int((s.seconds_left() - 5) // per_epoch)  # - 5 s: the fit's own start-up
    s.say(f"  time budget: ~{per_epoch:.0f}s per epoch, {max(0, min(fit, epochs))} epoch(s) fit in the {left:.0f}s left")
    return max(0, min(fit, epochs))


def train_pretrained(s: Session, plan: Plan, train_items: list[ImageItem], val_items: list[ImageItem], train_raw, val_raw) -> None:
    """Head stage on cached features, then fine-tuning (on cached activations, or the whole model on
    decoded images), as ``plan`` says."""
    cfg, clf = s.cfg, s.clf
    freeze_below(clf.backbone, None)
    bottom = clf.backbone if plan.bottom is None else plan.bottom
    cut_name = "output" if plan.top is None else plan.top.layers[1].name
    acts = Activations(s, bottom, cut_name)
    t = time.perf_counter()
    a_val, y_val = acts.get(val_items, 0)
    a_train, y_train = acts.get(train_items, 0)
    first_view = time.perf_counter() - t
    views = _views_within_budget(s, first_view * len(train_items) / max(1, len(train_items) + len(val_items)))
    train_views = [a_train]
    labels = [y_train]
    for v in range(1, views):
        a, y = acts.get(train_items, v)
        train_views.append(a)
        labels.append(y)
    a_train, y_train = np.concatenate(train_views), np.concatenate(labels)
    s.say(
        f"  {len(y_train)} training activations ({views} view(s)) + {len(y_val)} val at {cut_name!r} in "
        f"{time.perf_counter() - t:.1f}s (cache: {acts.cache.hits} hit, {acts.cache.misses} computed)"
    )
    s.decode_failures = acts.log.failures

    top = plan.top
    f_train = top.predict(a_train, batch_size=256, verbose=0) if top is not None else a_train
    f_val = top.predict(a_val, batch_size=256, verbose=0) if top is not None else a_val
    if s.resume and s.resume["stage"] != "head":
        head_loss = float(s.resume["head_loss"])  # the head's weights come back with last.keras
        s.epochs_done = _history_rows(s, "head")
    else:
        s.say("stage head: backbone frozen, training the new head")
        _fit_arrays(s, clf.head, "head", f_train, y_train, f_val, y_val, cfg.learning_rate)
        s.compile(clf.head, cfg.learning_rate, 1, 1, schedule="constant")
        head_loss = float(clf.head.evaluate(f_val, s.targets(y_val), verbose=0)[0])
        clf.model.save(s.model_path)
        s.say(f"  head: val_loss {head_loss:.4f}")
    s.head_loss = head_loss
    if s.resume and s.resume.get("best") is not None:
        head_loss = min(head_loss, float(s.resume["best"]))  # the checkpoint must beat the best so far
    if plan.first is None:
        return

    freeze_below(clf.backbone, plan.first)
    trainable = sum(1 for layer in clf.backbone.layers if layer.trainable and layer.weights)
    where = clf.backbone.layers[plan.first].name
    if top is not None:
        s.say(f"stage fine_tune: {trainable} backbone layers from {where!r} trainable on cached activations (BatchNorm frozen)")
        inputs = keras.Input(a_train.shape[1:], name="activations")
        model = keras.Model(inputs, clf.apply_head(top(inputs, training=False)), name="top_and_head")
        # every view holds the same images (a file that fails to decode fails in every view); if not, no sampling
        same_images = all(np.array_equal(labels[0], other) for other in labels[1:])
        _fit_arrays(
            s, model, "fine_tune", a_train, y_train, a_val, y_val, cfg.fine_tune_learning_rate,
            save=clf.model, threshold=head_loss, views=views if same_images else 1,
        )
        return
    s.say(f"stage fine_tune: {trainable} backbone layers from {where!r} trainable on decoded images (BatchNorm frozen)")
    _fit_dataset(s, "fine_tune", train_raw, val_raw, len(train_items), cfg.fine_tune_learning_rate, threshold=head_loss)


def _fit_dataset(s: Session, stage: str, train_raw, val_raw, n_train: int, peak_lr: float, threshold: float | None) -> None:
    cfg, model = s.cfg, s.clf.model
    if s.one_hot:
        encode = lambda x, y: (x, keras.ops.one_hot(y, s.num_classes))  # noqa: E731
        train_raw, val_raw = train_raw.map(encode), val_raw.map(encode)
    epochs = cfg.epochs
    if s.deadline is not None:  # no cheap calibration on a stream: let the Deadline callback stop it
        s.say(f"  time budget: training until {s.seconds_left():.0f}s from now")
    s.compile(model, peak_lr, _steps(n_train, cfg.batch_size), epochs)
    start = s.resume_epoch(stage)
    if start:
        s.restore(model)
        s.say(f"  resuming {stage} after epoch {start}")
    model.fit(
        batched(train_raw, cfg.batch_size, shuffle_seed=cfg.seed, buffer=n_train),
        validation_data=batched(val_raw, cfg.batch_size),
        epochs=epochs,
        initial_epoch=start,
        shuffle=False,  # the pipeline shuffles, seeded
        class_weight=s.class_weight,
        callbacks=s.callbacks(stage, save=model, threshold=threshold),
        verbose=s.fit_verbose,
    )
    s.end_stage()


def train_scratch(s: Session, train_raw, val_raw, n_train: int) -> None:
    s.say(f"stage train: {s.clf.spec.name} from scratch")
    best = s.resume.get("best") if s.resume else None
    _fit_dataset(s, "train", train_raw, val_raw, n_train, s.cfg.learning_rate, threshold=best)
