"""Wire a TrainConfig to Keras ``fit``: scan → split → run folder → train (one or two stages) → test.

Pretrained backbones follow the keras.io transfer-learning recipe:

1. **head**: the backbone is frozen; its features are computed once per image and the head trains on
   them (seconds, not minutes);
2. **fine_tune**: the whole backbone is unfrozen with a lower, warmed-up cosine learning rate, its
   BatchNorm layers kept in inference mode. The checkpoint only moves when validation loss beats
   the head stage's best, so fine-tuning can never leave a worse model behind.

The from-scratch ``cnn`` trains in one stage. Ctrl-C at any point keeps the best model so far and
still writes a usable, tested run.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import keras

from imgclf.config import TrainConfig
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset, fits_cache, labels_of
from imgclf.data.scan import scan_folder
from imgclf.data.split import SPLITS, assign_splits, write_manifest
from imgclf.evaluation.evaluate import evaluate_items
from imgclf.evaluation.metrics import Metrics, format_metrics
from imgclf.models.classifier import Classifier, build_classifier, loss_and_metric, set_backbone_trainable
from imgclf.models.registry import choose_image_size, get_spec
from imgclf.reporting.curves import plot_history
from imgclf.runs import RunFiles, create_run_dir, library_versions, write_config, write_json
from imgclf.training.callbacks import HistoryCSV

__all__ = ["TrainResult", "train_run"]

MONITOR = "val_loss"


@dataclass
class TrainResult:
    run_dir: Path
    config: TrainConfig
    classes: list[str]
    metrics: Metrics
    interrupted: bool
    seconds: float


class _Session:
    """State shared by the stages of one training run."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, clf: Classifier, num_classes: int, verbose: int):
        self.cfg, self.run_dir, self.clf, self.verbose = cfg, run_dir, clf, verbose
        self.num_classes = num_classes
        self.epochs_done = 0
        self.model_path = run_dir / RunFiles.MODEL

    def say(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    @property
    def fit_verbose(self) -> int:
        if not self.verbose:
            return 0
        return 1 if sys.stdout.isatty() else 2

    def callbacks(self, stage: str, checkpoint_threshold: float | None = None, restore_best: bool = False) -> list:
        history = HistoryCSV(self.run_dir / RunFiles.HISTORY, stage, first_epoch=self.epochs_done)
        self._history = history
        out: list = [history, keras.callbacks.EarlyStopping(MONITOR, patience=self.cfg.patience, restore_best_weights=restore_best)]
        if not restore_best:
            out.append(
                keras.callbacks.ModelCheckpoint(
                    self.model_path, monitor=MONITOR, save_best_only=True, initial_value_threshold=checkpoint_threshold
                )
            )
        return out

    def end_stage(self) -> None:
        self.epochs_done += self._history.epochs_done

    def compile(self, model: keras.Model, learning_rate) -> None:
        loss, metric = loss_and_metric(self.num_classes)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=[metric])


def _images_only(images, labels):
    return images


def _train_head(s: _Session, train_raw, val_raw) -> float:
    """Stage 1: frozen backbone, head trained on features computed once. Returns the best val loss."""
    cfg, clf = s.cfg, s.clf
    set_backbone_trainable(clf.backbone, False)
    s.say(f"stage head: computing {clf.spec.name} features once per image …")
    t = time.perf_counter()
    features = {
        name: clf.backbone.predict(batched(raw, cfg.batch_size).map(_images_only), verbose=0)
        for name, raw in (("train", train_raw), ("val", val_raw))
    }
    labels = {"train": labels_of(train_raw), "val": labels_of(val_raw)}
    s.say(f"  features of {len(labels['train']) + len(labels['val'])} images in {time.perf_counter() - t:.1f}s; training the head")
    s.compile(clf.head, cfg.learning_rate)
    clf.head.fit(
        features["train"],
        labels["train"],
        validation_data=(features["val"], labels["val"]),
        epochs=cfg.head_epochs,
        batch_size=cfg.batch_size,
        shuffle=True,
        callbacks=s.callbacks("head", restore_best=True),
        verbose=s.fit_verbose,
    )
    s.end_stage()
    val_loss = float(clf.head.evaluate(features["val"], labels["val"], verbose=0)[0])
    clf.model.save(s.model_path)
    s.say(f"  head: val_loss {val_loss:.4f}")
    return val_loss


def _fit_full(s: _Session, stage: str, train_raw, val_raw, n_train: int, learning_rate, threshold: float | None) -> None:
    cfg, clf = s.cfg, s.clf
    s.compile(clf.model, learning_rate)
    clf.model.fit(
        batched(train_raw, cfg.batch_size, shuffle_seed=cfg.seed, buffer=n_train),
        validation_data=batched(val_raw, cfg.batch_size),
        epochs=cfg.epochs,
        shuffle=False,  # the pipeline shuffles, seeded
        callbacks=s.callbacks(stage, checkpoint_threshold=threshold),
        verbose=s.fit_verbose,
    )
    s.end_stage()


def _fine_tune_schedule(cfg: TrainConfig, n_train: int) -> keras.optimizers.schedules.LearningRateSchedule:
    steps_per_epoch = max(1, -(-n_train // cfg.batch_size))
    warmup = steps_per_epoch if cfg.epochs > 2 else 0
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.fine_tune_learning_rate / 10 if warmup else cfg.fine_tune_learning_rate,
        decay_steps=max(1, steps_per_epoch * cfg.epochs - warmup),
        warmup_target=cfg.fine_tune_learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def _run_stages(s: _Session, train_raw, val_raw, n_train: int) -> bool:
    """Train every stage; returns True if the user pressed Ctrl-C (the best checkpoint is kept)."""
    cfg, clf = s.cfg, s.clf
    try:
        if clf.spec.pretrained:
            head_loss = _train_head(s, train_raw, val_raw)
            if cfg.fine_tune:
                s.say(f"stage fine_tune: backbone unfrozen (BatchNorm frozen), peak learning rate {cfg.fine_tune_learning_rate:g}")
                set_backbone_trainable(clf.backbone, True)
                _fit_full(s, "fine_tune", train_raw, val_raw, n_train, _fine_tune_schedule(cfg, n_train), head_loss)
        else:
            _fit_full(s, "train", train_raw, val_raw, n_train, cfg.learning_rate, None)
    except KeyboardInterrupt:
        s.say("\ninterrupted: keeping the best model so far and testing it (Ctrl-C again to abort)")
        return True
    return False


def train_run(config: TrainConfig, verbose: int = 1) -> TrainResult:
    """Train as ``config`` says and write a complete run folder. See the module docstring."""
    cfg = config.validate()
    start = time.perf_counter()
    data = scan_folder(cfg.data)
    spec = get_spec(cfg.model)
    image_size = cfg.image_size or choose_image_size(spec, [min(i.width, i.height) for i in data.items])
    items = assign_splits(data, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    by_split = {name: [i for i in items if i.split == name] for name in SPLITS}
    clf = build_classifier(spec, len(data.classes), image_size, cfg.augment, cfg.seed)

    cfg = replace(cfg, image_size=image_size, data=str(Path(data.root).resolve()))
    run_dir = create_run_dir(cfg.out, cfg.name or Path(data.root).resolve().name)
    write_config(run_dir / RunFiles.CONFIG, cfg)
    write_json(run_dir / RunFiles.CLASSES, data.classes)
    write_manifest(run_dir / RunFiles.SPLIT, items, data.classes, data.root)
    write_json(run_dir / RunFiles.VERSIONS, library_versions())

    s = _Session(cfg, run_dir, clf, len(data.classes), verbose)
    counts = ", ".join(f"{len(by_split[k])} {k}" for k in SPLITS)
    s.say(f"imgclf: {len(items)} images, {len(data.classes)} classes ({counts}); model {spec.name} at {image_size}px")
    for skipped in data.skipped:
        s.say(f"  skipped {skipped.path}: {skipped.reason}")
    s.say(f"  run folder: {run_dir}")

    log = DecodeLog()
    cache = fits_cache(len(by_split["train"]) + len(by_split["val"]), image_size, cfg.cache_mb) and cfg.cache_mb > 0
    train_raw = decoded_dataset(by_split["train"], image_size, log, cache)
    val_raw = decoded_dataset(by_split["val"], image_size, log, cache)
    with warnings.catch_warnings():  # filtered datasets have unknown length; Keras warns each time one ends
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        interrupted = _run_stages(s, train_raw, val_raw, len(by_split["train"]))

    if s.model_path.exists():
        model = keras.saving.load_model(s.model_path)
    else:  # interrupted before the first checkpoint
        model = clf.model
        model.save(s.model_path)
    test_items = by_split["test"] or by_split["val"]
    split_name = "test" if by_split["test"] else "val (also used for model selection: optimistic)"
    metrics = evaluate_items(model, test_items, data.classes, image_size, cfg.batch_size, split_name)
    seconds = time.perf_counter() - start
    write_json(run_dir / RunFiles.METRICS, {**metrics.to_dict(), "interrupted": interrupted, "train_seconds": round(seconds, 1)})
    decode_failures = {**log.failures, **{row["path"]: row["reason"] for row in metrics.skipped}}
    for path, reason in sorted(decode_failures.items()):
        s.say(f"  skipped {path}: {reason}")
    skipped = [{"path": k.path, "reason": k.reason} for k in data.skipped]
    skipped += [{"path": p, "reason": r} for p, r in sorted(decode_failures.items())]
    write_json(run_dir / RunFiles.DATA_REPORT, {"skipped": skipped, "counts": data.counts()})
    plot_history(run_dir / RunFiles.HISTORY, run_dir / RunFiles.CURVES)
    s.say("\n" + format_metrics(metrics))
    s.say(f"\nrun saved to {run_dir} ({seconds:.0f}s)")
    return TrainResult(run_dir, cfg, data.classes, metrics, interrupted, seconds)

