"""Wire a TrainConfig to a finished run: set up → plan → run folder → train → test → report.

A run starts either new or from an interrupted run (:mod:`imgclf.training.setup`); its plan —
what will really happen, ``--time`` included — is made once (:mod:`imgclf.training.plan`) and
written to ``config.yaml``; the session is built from it (:mod:`imgclf.training.session`), the
stages carry it out (:mod:`imgclf.training.stages`), and the end of the run tests and reports
(:mod:`imgclf.training.finish`). Ctrl-C during training keeps the best model so far and still
writes a tested run that ``--resume`` continues; a Ctrl-C is never lost
(:mod:`imgclf.training.interrupts`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import keras

from imgclf.config import TrainConfig, parse_duration
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import decoded_dataset, fits_cache
from imgclf.data.scan import one_line, scan_folder
from imgclf.data.split import SPLITS
from imgclf.runs import RunFiles, read_config
from imgclf.training.distribution import (
    Distribution,
    choose_distribution,
    worker_folder,
)
from imgclf.training.ensemble import check_resumable, save_ensemble, train_members
from imgclf.training.finish import TrainResult, finish_training
from imgclf.training.interrupts import Interrupts
from imgclf.training.multiworker import worker_result
from imgclf.training.multiworker_checks import check_multi_worker_data
from imgclf.training.multiworker_control import worker_resume
from imgclf.training.multiworker_plan import multi_worker_plan
from imgclf.training.plan import RunPlan, plan_run
from imgclf.training.precision import choose_precision
from imgclf.training.session import Session
from imgclf.training.setup import (
    RunSetup,
    new_run,
    open_run_dir,
    preview_augmentation,
    resumable,
    resume_run,
)
from imgclf.training.stages import train_pretrained, train_scratch

__all__ = ["TrainResult", "train_run", "configure_devices"]


def configure_devices(cfg: TrainConfig) -> Distribution:
    """Set up the devices before anything touches them: the distribution (``--devices``,
    ``TF_CONFIG``: :mod:`imgclf.training.distribution`), memory growth and mixed precision on a
    GPU (``--mixed-precision``), reproducibility on CPU when asked.

    Args:
        cfg: the run's options; ``deterministic`` turns on TensorFlow op determinism (CPU).

    Returns:
        How the run trains (one device: :data:`~imgclf.training.distribution.SINGLE`).
    """
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices and the like are not actionable for users
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass
    dist = choose_distribution(cfg)
    keras.mixed_precision.set_global_policy(choose_precision(cfg.mixed_precision))
    if cfg.deterministic and not gpus:
        tf.config.experimental.enable_op_determinism()
    return dist


def _planned(
    setup: RunSetup, deadline: float | None, verbose: int, size_given: bool, dist: Distribution
):
    """The run's plan, and the run with its folder open and ``config.yaml`` written from it (a
    resumed run's folder and config are its own); a multi-worker run is checked first
    (:func:`~imgclf.training.multiworker_checks.check_multi_worker`)."""
    say = print if verbose else (lambda _line: None)
    num_classes = len(setup.data.classes)
    budgeted = setup.resume is None  # a resumed run goes on as planned; its deadline still holds
    mine = budgeted and dist.is_chief  # other workers take the chief's --time plan
    plan, clf = plan_run(
        setup.cfg, setup.clf, setup.by_split, num_classes, deadline, say, mine, size_given
    )
    if dist.multi_worker:
        plan, clf = multi_worker_plan(dist, setup, plan, clf, budgeted and deadline is not None)
    if setup.resume is not None:
        return plan, setup
    first = "head" if plan.recipe is not None else "train"
    return plan, open_run_dir(setup, plan.config(setup.cfg), clf, first, dist.record())


def _say_start(session: Session, setup: RunSetup) -> None:
    cfg, data, by_split = session.cfg, setup.data, setup.by_split
    counts = ", ".join(f"{len(by_split[k])} {k}" for k in SPLITS)
    session.say(
        f"imgclf: {len(setup.items)} images, {len(data.classes)} classes ({counts}); model "
        f"{setup.clf.spec.name} at {cfg.image_size}px"
    )
    for skipped in data.skipped:
        session.say(f"  skipped {one_line(skipped.path)}: {skipped.reason}")
    session.say(f"  run folder: {session.run_dir}")


def _run_stages(session: Session, plan: RunPlan, log: DecodeLog) -> bool:
    """Train every stage on the plan's images; returns True if the user pressed Ctrl-C (the best
    checkpoint is kept)."""
    cfg = session.cfg
    train_items, val_items = list(plan.train_items), list(plan.val_items)
    n = len(train_items) + len(val_items)
    cache = cfg.cache_mb > 0 and fits_cache(n, plan.image_size, cfg.cache_mb)
    stages = train_pretrained if plan.recipe is not None else train_scratch
    caught = False
    try:
        train_raw = decoded_dataset(train_items, plan.image_size, log, cache)
        val_raw = decoded_dataset(val_items, plan.image_size, log, cache)
        # filtered datasets have unknown length; Keras warns each time one ends
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            stages(session, train_raw, val_raw)
    except KeyboardInterrupt:
        caught = True
    if caught or (session.interrupts is not None and session.interrupts.was_seen()):
        session.say(
            "\ninterrupted: keeping the best model so far and testing it (Ctrl-C again to abort)"
        )
        return True
    return False


def _resumed_config(resume_dir: str | Path) -> TrainConfig:
    """The options of the interrupted run in ``resume_dir``, once it is known to be resumable."""
    path = Path(resume_dir).expanduser()
    if not (path / RunFiles.CONFIG).is_file():
        resumable(resume_dir)  # says why it cannot be resumed
    config = read_config(path / RunFiles.CONFIG)
    check_resumable(config, path)  # an ensemble's refusal, before resumable's "it finished"
    resumable(resume_dir)
    return config


def _train(session: Session, setup: RunSetup, plan: RunPlan, log: DecodeLog) -> bool:
    """Every member's stages (one member unless ``--ensemble``), then the ensemble's model; True
    when Ctrl-C stopped training."""
    interrupted = _run_stages(session, plan, log)
    if session.cfg.ensemble == 1 or interrupted:
        return interrupted

    def run(member: Session) -> bool:  # on the member's own plan: its own backbone's recipe
        return _run_stages(member, member.plan, log)

    interrupted, members = train_members(session, setup, plan, run)
    save_ensemble(session, members)
    return interrupted


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
        resume_dir: continue this interrupted run instead (its own config and split; ``config``
            then supplies nothing but verbosity). Defaults to None.
        started: ``time.perf_counter()`` value from which ``--time`` counts (the CLI's start, so
            that importing TensorFlow counts too); None: from this call. Defaults to None.
    """
    if resume_dir is not None:
        config = _resumed_config(resume_dir)
    cfg = config.validate()
    origin = min(start := time.perf_counter(), started or start)  # where --time counts from
    deadline = origin + parse_duration(cfg.time_budget) if cfg.time_budget else None
    dist = configure_devices(cfg)
    if dist.multi_worker:
        check_multi_worker_data(cfg)
    scratch = worker_folder(dist)  # a worker other than the chief writes nothing to --out
    if scratch is not None:
        cfg = replace(cfg, out=scratch)
    resume_dir = worker_resume(dist, scratch, resume_dir)  # another worker resumes its own copy
    # several devices: every model and optimizer is built under the strategy's scope
    with Interrupts() as interrupts, dist.scope():  # from here on, a Ctrl-C is never lost
        setup = new_run(cfg, verbose) if resume_dir is None else resume_run(resume_dir, cfg)
        if cfg.test_dir:  # a --test-dir that cannot be scored fails now, not after training
            scan_folder(cfg.test_dir, classes=setup.data.classes)
        plan, setup = _planned(setup, deadline, verbose, config.image_size is not None, dist)
        stages = {"setup (scan, doctor, split, model, plan)": round(time.perf_counter() - start, 1)}
        if setup.resume is None:
            preview_augmentation(setup)
        if interrupts.seen:  # a Ctrl-C that a library swallowed while the run was set up
            raise KeyboardInterrupt
        session = Session(
            setup.cfg,
            setup.run_dir,
            setup.clf,
            len(setup.data.classes),
            verbose,
            plan,
            setup.class_weight,
            setup.resume,
            interrupts,
            dist,
        )
        _say_start(session, setup)
        log = DecodeLog()
        interrupted = _train(session, setup, plan, log)
    if scratch is not None:
        return worker_result(session, setup, scratch, interrupted)
    stages["training"] = round(time.perf_counter() - start - sum(stages.values()), 1)
    clock = {"start": start, "origin": origin, "stages": stages}
    return finish_training(session, setup, log, interrupted, clock)
