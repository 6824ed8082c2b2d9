"""Wire a TrainConfig to a finished run: scan → doctor → split → run folder → train → test → report.

The stages themselves (head on cached features, fine-tuning, from-scratch training) are in
:mod:`imgclf.training.stages`, driven by :class:`~imgclf.training.session.Session`; where the
backbone
is cut for the cache is in :mod:`imgclf.training.recipe`. A run starts either new (:func:`_new_run`)
or
from an interrupted run (:func:`_resume_run`); both give a :class:`RunSetup`. Ctrl-C at any point
keeps the best model so far and still writes a
usable, tested run.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from imgclf.atomic import save_model_atomic
from imgclf.config import TrainConfig, parse_duration
from imgclf.data.augment import augmentation_layers
from imgclf.data.balance import train_class_weights
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import decoded_dataset, fits_cache
from imgclf.data.prepare import prepare_training_data
from imgclf.data.scan import ImageItem, ScannedData, one_line, scan_folder
from imgclf.data.split import SPLITS, read_manifest, write_manifest
from imgclf.errors import DataError
from imgclf.evaluation.evaluate import check_honesty, metrics_from_scores, score_folder
from imgclf.evaluation.inference import score_items
from imgclf.evaluation.metrics import Metrics, format_metrics
from imgclf.models.choose import resolve_model
from imgclf.models.classifier import Classifier, build_classifier
from imgclf.models.loading import load_model_file
from imgclf.models.registry import ModelSpec, get_spec
from imgclf.reporting.augmentation import PREVIEW_IMAGES, plot_augmentation_preview
from imgclf.reporting.report import command_line, finish_run
from imgclf.runs import (
    RunFiles,
    check_run_dir,
    create_run_dir,
    library_versions,
    read_config,
    read_json,
    write_config,
    write_json,
)
from imgclf.training.planning import fit_size_to_budget
from imgclf.training.recipe import Plan, plan_fine_tune
from imgclf.training.session import Session
from imgclf.training.stages import train_pretrained, train_scratch

__all__ = ["TrainResult", "RunSetup", "train_run", "configure_devices"]


def configure_devices(cfg: TrainConfig) -> None:
    """Reproducible on CPU when asked; on a GPU, grow memory as needed and train in mixed precision.

    Args:
        cfg: the run's options; ``deterministic`` turns on TensorFlow op determinism (CPU).
    """
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices and the like are not actionable for users
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "float32")
    if cfg.deterministic and not gpus:
        tf.config.experimental.enable_op_determinism()


@dataclass
class TrainResult:
    """What :func:`imgclf.train` returns: the run folder, its resolved options, classes and test
    metrics."""

    run_dir: Path
    config: TrainConfig
    classes: list[str]
    metrics: Metrics
    interrupted: bool  # Ctrl-C stopped training; the best model so far was tested
    seconds: float


@dataclass
class RunSetup:
    """A run ready to train: its resolved options, folder, data with splits, and what resuming
    restores."""

    cfg: TrainConfig  # image size and epochs filled in
    run_dir: Path
    data: ScannedData
    items: list[ImageItem]  # with their splits
    clf: Classifier
    doctor_report: dict[str, Any] | None
    class_weight: dict[int, float] | None  # None unless --class-weight auto
    resume: dict[str, Any] | None = None  # state.json of the interrupted run; None for a new run


def _new_run(cfg: TrainConfig, verbose: int) -> RunSetup:
    """Scan, diagnose and split the data, resolve ``--model auto``, build the model, create and fill
    the run folder."""
    data = scan_folder(cfg.data)
    choice, spec = resolve_model(
        cfg, [min(i.width, i.height) for i in data.items], verbose
    )  # saved in config.yaml
    data, items, doctor = prepare_training_data(
        data, cfg, verbose
    )  # doctor summary; duplicate/--group-by groups kept whole
    cfg = replace(
        cfg,
        model=spec.name,
        image_size=choice.image_size,
        epochs=cfg.epochs or spec.default_epochs,
        data=str(Path(data.root).resolve()),
    )
    # built before the run folder exists, so a model that cannot be had (missing file, no network)
    # leaves none
    clf = build_classifier(spec, len(data.classes), cfg.image_size, cfg.augment, cfg.seed)
    run_dir = create_run_dir(cfg.out, cfg.name or Path(data.root).resolve().name)
    write_config(run_dir / RunFiles.CONFIG, cfg)
    write_json(run_dir / RunFiles.CLASSES, data.classes)
    write_manifest(run_dir / RunFiles.SPLIT, items, data.classes, data.root)
    write_json(run_dir / RunFiles.VERSIONS, library_versions())
    return RunSetup(cfg, run_dir, data, items, clf, doctor.to_dict(), doctor.train_class_weights)


def _resumable(run_dir: str | Path) -> Path:
    """``run_dir`` if it can be resumed, else a DataError saying why not: it finished, or it was
    stopped
    (Ctrl-C, SIGKILL, a crash) before its first checkpoint, so there is nothing to continue from."""
    path = Path(run_dir).expanduser()
    if (path / RunFiles.STATE).is_file() and (path / RunFiles.LAST).is_file():
        return check_run_dir(path)
    if (path / RunFiles.CONFIG).is_file() and not (path / RunFiles.METRICS).is_file():
        data = read_config(path / RunFiles.CONFIG).data
        raise DataError(
            f"run {str(run_dir)!r} cannot be resumed: it was stopped before its first "
            f"checkpoint ({RunFiles.LAST} and "
            f"{RunFiles.STATE}, written after each epoch of the main training stage), so "
            "there is nothing to continue "
            f"from; train it again: `imgclf train {data}`"
        )
    check_run_dir(path)
    raise DataError(
        f"run {str(run_dir)!r} has nothing to resume (no {RunFiles.STATE}): it finished, "
        "or was stopped before "
        "its main training stage began; train it again instead"
    )


def _resume_run(run_dir: str | Path, cfg: TrainConfig, spec: ModelSpec) -> RunSetup:
    """Reopen an interrupted run: its folder, classes and split as saved, its state, its model
    rebuilt."""
    path = _resumable(run_dir)
    classes = read_json(path / RunFiles.CLASSES)
    items = read_manifest(path / RunFiles.SPLIT, classes, cfg.data)
    missing = [i.path for i in items if not Path(i.path).exists()]
    if missing:
        raise DataError(
            f"image {missing[0]!r} of run {str(run_dir)!r} no longer exists; was the data "
            "folder moved?"
        )
    state = read_json(path / RunFiles.STATE)
    _truncate_history(path / RunFiles.HISTORY, state)
    old = path / RunFiles.DATA_REPORT
    doctor_report = read_json(old).get("doctor") if old.exists() else None
    data = ScannedData(cfg.data, classes, items)
    class_weight = train_class_weights(items, len(classes), cfg.class_weight)
    clf = build_classifier(spec, len(classes), cfg.image_size, cfg.augment, cfg.seed)
    return RunSetup(cfg, path, data, items, clf, doctor_report, class_weight, state)


def _preview_augmentation(
    cfg: TrainConfig, train_items, classes: list[str], image_size: int, run_dir: Path
) -> None:
    """``augmentation.png``: a few training images, one per class, each with random augmented views.
    The views come from a copy of the run's augmentation layers, so training's random state is
    untouched."""
    layers = augmentation_layers(cfg.augment, cfg.seed + 1)
    if not layers or not train_items:
        return
    layer = keras.Sequential(layers, name="augmentation_preview")
    picked, seen = [], set()
    for item in train_items:  # one image of each class, in class order, until the preview is full
        if item.label not in seen:
            seen.add(item.label)
            picked.append(item)
    picked = sorted(picked, key=lambda i: i.label)[:PREVIEW_IMAGES]
    captions = [f"{classes[i.label]}: {Path(i.path).name}"[:28] for i in picked]
    plot_augmentation_preview(
        [i.path for i in picked], captions, image_size, layer, run_dir / RunFiles.AUGMENTATION
    )


def _truncate_history(path: Path, state: dict) -> None:
    """Drop history rows of epochs that ``last.keras`` does not hold (the epoch Ctrl-C cut
    short)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    stage_rows = [r for r in body if r[0] == state["stage"]][: int(state["stage_epochs"])]
    kept = [r for r in body if r[0] != state["stage"]] + stage_rows
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])


def _plan_cache(
    session: Session, spec: ModelSpec, by_split: dict[str, list[ImageItem]]
) -> Plan | None:
    """Where the backbone is cut for the activation cache (None for a from-scratch model); no cut
    when the activations would exceed ``--cache-mb``."""
    cfg, image_size = session.cfg, session.cfg.image_size
    if not spec.pretrained:
        return None
    act_bytes = (len(by_split["train"]) * cfg.views + len(by_split["val"])) * 4
    plan = plan_fine_tune(session.clf.backbone, spec, cfg, cache_allowed=True)
    cut_shape = (
        plan.bottom.compute_output_shape((1, image_size, image_size, 3))
        if plan.top is not None
        else (1,)
    )
    if plan.top is not None and act_bytes * int(np.prod(cut_shape[1:])) > cfg.cache_mb * 2**20:
        session.say("  activations exceed --cache-mb: fine-tuning on decoded images instead")
        plan = replace(plan, bottom=None, top=None)
    return plan


def _run_stages(
    session: Session, plan: Plan | None, by_split: dict[str, list[ImageItem]], train_raw, val_raw
) -> bool:
    """Train every stage; returns True if the user pressed Ctrl-C (the best checkpoint is kept)."""
    try:
        if plan is not None:
            train_pretrained(
                session,
                plan,
                by_split["train"],
                by_split["val"],
                train_raw,
                val_raw,
                len(by_split["test"]),
            )
        else:
            train_scratch(session, train_raw, val_raw, by_split)
    except KeyboardInterrupt:
        session.say(
            "\ninterrupted: keeping the best model so far and testing it (Ctrl-C again to abort)"
        )
        return True
    return False


def _finish(
    session: Session,
    setup: RunSetup,
    by_split: dict[str, list[ImageItem]],
    log: DecodeLog,
    interrupted: bool,
    start: float,
    stages: dict,
) -> TrainResult:
    """Test the best model, write metrics, data report, curves, predictions, calibration and the
    report
    (``stages``: wall seconds so far, completed here), drop what only --resume needs."""
    cfg, run_dir, data = session.cfg, session.run_dir, setup.data
    if session.model_path.exists():
        model = load_model_file(session.model_path, "best model")
    else:  # interrupted before the first checkpoint
        model = session.clf.model
        save_model_atomic(model, session.model_path)
    test_items = by_split["test"] or by_split["val"]
    split_name = "test" if by_split["test"] else "val (also used for model selection: optimistic)"
    trained = time.perf_counter()
    test = score_items(model, test_items, cfg.image_size, cfg.batch_size)
    metrics = metrics_from_scores(test, data.classes, split_name, cfg.seed)
    external = (
        score_folder(
            model,
            cfg.test_dir,
            data.classes,
            cfg.image_size,
            cfg.batch_size,
            cfg.seed,
            run_dir=run_dir,
        )
        if cfg.test_dir
        else None
    )
    if external is not None:  # the honesty check: internal and external accuracy side by side
        check_honesty(metrics, external.metrics)
    seconds = time.perf_counter() - start
    timings = {
        "command": command_line(),
        "stages": {**stages, "test": round(time.perf_counter() - trained, 1)},
    }
    write_json(
        run_dir / RunFiles.METRICS,
        {**metrics.to_dict(), "interrupted": interrupted, "train_seconds": round(seconds, 1)},
    )
    decode_failures = {
        **log.failures,
        **session.decode_failures,
        **{row["path"]: row["reason"] for row in metrics.skipped},
    }
    for path, reason in sorted(decode_failures.items()):
        session.say(f"  skipped {one_line(path)}: {reason}")
    skipped = [{"path": k.path, "reason": k.reason} for k in data.skipped]
    skipped += [{"path": p, "reason": r} for p, r in sorted(decode_failures.items())]
    write_json(
        run_dir / RunFiles.DATA_REPORT,
        {"skipped": skipped, "counts": data.counts(), "doctor": setup.doctor_report},
    )
    for leftover in (
        RunFiles.LAST,
        RunFiles.STATE,
    ):  # only an interrupted run keeps what --resume needs
        if not interrupted:
            (run_dir / leftover).unlink(missing_ok=True)
    session.say(
        "\n" + format_metrics(metrics)
    )  # curves.png: drawn by the report (its training section)
    reported = time.perf_counter()
    val = (
        score_items(model, by_split["val"], cfg.image_size, cfg.batch_size)
        if by_split["test"] and by_split["val"]
        else None
    )
    write_json(run_dir / RunFiles.TIMINGS, timings)
    finish_run(
        run_dir,
        model,
        data.classes,
        test,
        val,
        cfg.image_size,
        report=cfg.report,
        external=external,
    )
    timings["stages"]["report"] = round(time.perf_counter() - reported, 1)
    write_json(run_dir / RunFiles.TIMINGS, timings)
    if cfg.report:
        session.say(f"report: {run_dir / RunFiles.REPORT} ({timings['stages']['report']:.0f}s)")
    else:
        session.say(f"no report: `imgclf report {run_dir}` builds it")
    session.say(f"\nrun saved to {run_dir} ({seconds:.0f}s)")
    return TrainResult(run_dir, cfg, data.classes, metrics, interrupted, seconds)


def train_run(
    config: TrainConfig,
    verbose: int = 1,
    resume_dir: str | Path | None = None,
    started: float | None = None,
) -> TrainResult:
    """Train as ``config`` says and write a complete run folder.

    Args:
        config: the run's options (:class:`~imgclf.config.TrainConfig`); validated here.
        verbose: 0 prints nothing; 1 prints the doctor's findings, progress and the metrics.
        Defaults to 1.
        resume_dir: continue this interrupted run instead (its own config and split; ``config`` then
            supplies nothing but verbosity). Defaults to None.
        started: ``time.perf_counter()`` value from which ``--time`` counts (the CLI's start, so
        that
            importing TensorFlow counts too); None: from this call. Defaults to None.
    """
    if resume_dir is not None:
        config = read_config(_resumable(resume_dir) / RunFiles.CONFIG)
    cfg = config.validate()
    origin = min(
        start := time.perf_counter(), started or start
    )  # where --time and total_s count from
    deadline = origin + parse_duration(cfg.time_budget) if cfg.time_budget else None
    configure_devices(cfg)
    setup = (
        _new_run(cfg, verbose)
        if resume_dir is None
        else _resume_run(resume_dir, cfg, get_spec(cfg.model))
    )
    spec = setup.clf.spec  # --model auto resolved by _new_run
    stages = {"setup (scan, doctor, split, model)": round(time.perf_counter() - start, 1)}
    by_split = {name: [i for i in setup.items if i.split == name] for name in SPLITS}
    budgeted = (
        deadline is not None and setup.resume is None and spec.pretrained
    )  # --time: the backbone's rate; a smaller input if need be
    setup, rate = (
        fit_size_to_budget(setup, spec, by_split, deadline, verbose, config.image_size is None)
        if budgeted
        else (setup, None)
    )
    cfg, data, items, run_dir = setup.cfg, setup.data, setup.items, setup.run_dir
    if cfg.test_dir:  # a --test-dir that cannot be scored fails now, not after training
        scan_folder(cfg.test_dir, classes=data.classes)
    if setup.resume is None:
        _preview_augmentation(cfg, by_split["train"], data.classes, cfg.image_size, run_dir)
    session = Session(
        cfg,
        run_dir,
        setup.clf,
        len(data.classes),
        verbose,
        deadline,
        setup.class_weight,
        setup.resume,
    )
    session.backbone_rate = rate
    counts = ", ".join(f"{len(by_split[k])} {k}" for k in SPLITS)
    session.say(
        f"imgclf: {len(items)} images, {len(data.classes)} classes ({counts}); model "
        f"{spec.name} at {cfg.image_size}px"
    )
    for skipped in data.skipped:
        session.say(f"  skipped {one_line(skipped.path)}: {skipped.reason}")
    session.say(f"  run folder: {run_dir}")
    log = DecodeLog()
    cache = (
        fits_cache(len(by_split["train"]) + len(by_split["val"]), cfg.image_size, cfg.cache_mb)
        and cfg.cache_mb > 0
    )
    train_raw = decoded_dataset(by_split["train"], cfg.image_size, log, cache)
    val_raw = decoded_dataset(by_split["val"], cfg.image_size, log, cache)
    plan = _plan_cache(session, spec, by_split)
    with (
        warnings.catch_warnings()
    ):  # filtered datasets have unknown length; Keras warns each time one ends
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        interrupted = _run_stages(session, plan, by_split, train_raw, val_raw)
    stages["training"] = round(time.perf_counter() - start - sum(stages.values()), 1)
    result = _finish(session, setup, by_split, log, interrupted, start, stages)
    if session.budget_plan is not None:  # the --time plan, beside the time each stage took
        timings = read_json(run_dir / RunFiles.TIMINGS)
        write_json(
            run_dir / RunFiles.TIMINGS,
            {
                **timings,
                "plan": session.budget_plan,
                "total_s": round(time.perf_counter() - origin, 1),
            },
        )
    return result
