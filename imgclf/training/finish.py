"""The end of a run: test the best model, write what was measured (metrics, data report, timings),
calibrate, write predictions and the report, and say what ran against what was planned."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf.atomic import save_model_atomic
from imgclf.config import TrainConfig
from imgclf.data.decode import DecodeLog
from imgclf.data.scan import one_line
from imgclf.evaluation.evaluate import check_honesty, metrics_from_scores, score_folder
from imgclf.evaluation.inference import score_items
from imgclf.evaluation.metrics import Metrics, format_metrics
from imgclf.models.loading import load_model_file
from imgclf.reporting.report import command_line, finish_run
from imgclf.runs import RunFiles, drop_resume_files, run_status, write_json
from imgclf.training.session import Session
from imgclf.training.setup import RunSetup

__all__ = ["TrainResult", "finish_training", "outcome"]


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


def _best_model(session: Session):
    """The best checkpoint; the model as it is when none was written (interrupted before)."""
    if session.model_path.exists():
        return load_model_file(session.model_path, "best model")
    save_model_atomic(session.clf.model, session.model_path)
    return session.clf.model


def outcome(session: Session, interrupted: bool) -> tuple[dict[str, Any], str]:
    """What ran against what was planned: a record for ``timings.json``, and one line for people
    when a ``--time`` plan and what ran differ ('' when they do not, without ``--time``, or when
    the run was resumed).

    Args:
        session: the run's trainer, after its stages.
        interrupted: whether Ctrl-C stopped training.
    """
    plan, main = session.plan, "train" if session.plan.recipe is None else "fine_tune"
    planned = {"head": plan.head_epochs, main: plan.epochs} if plan.recipe else {main: plan.epochs}
    if plan.recipe is not None and not plan.fine_tunes:
        planned[main] = 0
    ran = {stage: session.ran.get(stage, 0) for stage in planned}
    why = session.stops + (["Ctrl-C"] if interrupted else [])
    record = {"planned_epochs": planned, "ran_epochs": ran, "report": plan.report, "why": why}
    if ran == planned or session.resume is not None or not plan.line:
        return record, ""

    def say(epochs: dict[str, int]) -> str:
        return " + ".join(f"{stage} {n}" for stage, n in epochs.items())

    reason = "; ".join(why) or "early stopping"
    return record, f"planned {say(planned)} epochs, ran {say(ran)}: {reason}"


def _write_data_report(session: Session, setup: RunSetup, log: DecodeLog, metrics) -> None:
    """``data_report.json``: files skipped and why, class counts, the doctor's summary."""
    data = setup.data
    failures = {
        **log.failures,
        **session.decode_failures,
        **{row["path"]: row["reason"] for row in metrics.skipped},
    }
    for path, reason in sorted(failures.items()):
        session.say(f"  skipped {one_line(path)}: {reason}")
    skipped = [{"path": k.path, "reason": k.reason} for k in data.skipped]
    skipped += [{"path": p, "reason": r} for p, r in sorted(failures.items())]
    report = {"skipped": skipped, "counts": data.counts(), "doctor": setup.doctor_report}
    write_json(session.run_dir / RunFiles.DATA_REPORT, report)


def _test(session: Session, setup: RunSetup, model, by_split):
    """Scores and metrics of the test split (the validation split when there is none) and of
    ``--test-dir``; the honesty check between the two."""
    cfg, classes = session.cfg, setup.data.classes
    test_items = by_split["test"] or by_split["val"]
    split_name = "test" if by_split["test"] else "val (also used for model selection: optimistic)"
    test = score_items(model, test_items, cfg.image_size, cfg.batch_size)
    metrics = metrics_from_scores(test, classes, split_name, cfg.seed)
    external = None
    if cfg.test_dir:
        size, batch = cfg.image_size, cfg.batch_size
        external = score_folder(
            model, cfg.test_dir, classes, size, batch, cfg.seed, run_dir=session.run_dir
        )
        check_honesty(metrics, external.metrics)  # internal and external accuracy side by side
    return test, metrics, external


def _say_status(session: Session, interrupted: bool) -> None:
    if interrupted and run_status(session.run_dir) == "incomplete":
        session.say(
            "  nothing was trained before the interrupt: the run is marked incomplete (predict, "
            f"serve and export refuse it); `imgclf train --resume {session.run_dir}` trains it"
        )


def finish_training(
    session: Session,
    setup: RunSetup,
    log: DecodeLog,
    interrupted: bool,
    clock: dict[str, Any],
) -> TrainResult:
    """Test the best model, write metrics, the data report, timings, calibration, predictions and
    the report; drop what only ``--resume`` needs unless interrupted.

    Args:
        session: the run's trainer, after its stages.
        setup: the run.
        log: decode failures of the training streams.
        interrupted: whether Ctrl-C stopped training.
        clock: ``start`` and ``origin`` (``time.perf_counter()`` values: this call's start and
            where ``--time`` counts from) and ``stages`` (wall seconds so far, completed here).
    """
    cfg, run_dir, by_split = session.cfg, session.run_dir, setup.by_split
    model = _best_model(session)
    trained = time.perf_counter()
    test, metrics, external = _test(session, setup, model, by_split)
    stages = {**clock["stages"], "test": round(time.perf_counter() - trained, 1)}
    seconds = time.perf_counter() - clock["start"]
    summary = {"interrupted": interrupted, "train_seconds": round(seconds, 1)}
    write_json(run_dir / RunFiles.METRICS, {**metrics.to_dict(), **summary})
    _write_data_report(session, setup, log, metrics)
    if not interrupted:  # only an interrupted run keeps what --resume needs
        drop_resume_files(run_dir)
    session.say("\n" + format_metrics(metrics))  # curves.png: drawn by the report
    timings: dict[str, Any] = {"command": command_line(), "stages": stages}
    # written before the report, which shows it; again below with the report's own time
    write_json(run_dir / RunFiles.TIMINGS, timings)
    started = time.perf_counter()
    has_val = by_split["test"] and by_split["val"]
    val = score_items(model, by_split["val"], cfg.image_size, cfg.batch_size) if has_val else None
    classes, size = setup.data.classes, cfg.image_size
    finish_run(run_dir, model, classes, test, val, size, report=cfg.report, external=external)
    last = "report" if cfg.report else "calibration and predictions"
    timings["stages"][last] = round(time.perf_counter() - started, 1)
    record, line = outcome(session, interrupted)
    if session.plan.record:
        timings["plan"] = {**session.plan.record, **record}
    timings["total_s"] = round(time.perf_counter() - clock["origin"], 1)
    write_json(run_dir / RunFiles.TIMINGS, timings)
    if cfg.report:
        session.say(f"report: {run_dir / RunFiles.REPORT} ({timings['stages']['report']:.0f}s)")
    else:
        session.say(f"no report: `imgclf report {run_dir}` builds it")
    if line:
        session.say(f"--time: {line}")
    _say_status(session, interrupted)
    session.say(f"\nrun saved to {run_dir} ({seconds:.0f}s)")
    return TrainResult(run_dir, cfg, setup.data.classes, metrics, interrupted, seconds)
