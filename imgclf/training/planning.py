"""``--time`` applied to a run: measure throughput on a sample of the real images, plan with
:mod:`imgclf.training.budget`, say the plan and apply it (input size, images, views, epochs,
reserve).

Measuring is kept cheap (one traced forward function, a few batches, the first not counted): under a
45 s budget every second spent measuring is a second not spent training.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from imgclf.config import parse_duration
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.models.classifier import build_classifier
from imgclf.runs import RunFiles, write_config
from imgclf.training.budget import (
    PER_IMAGE_FLOOR_S,
    REPORT_SECONDS,
    BudgetPlan,
    Rates,
    budget_image_size,
    plan_budget,
    stratified_subset,
)

if TYPE_CHECKING:
    from imgclf.models.registry import ModelSpec
    from imgclf.training.session import Session

__all__ = ["fit_size_to_budget", "forward_rate", "plan_run", "report_seconds", "slowdown"]

EXTRACT_SHARE_MIN = 0.3  # the frozen bottom's share of a forward pass is taken as at least this
SLOWDOWN_SAMPLE_S = 0.25  # how long slowdown() watches the other processes' use of the CPUs


def forward_rate(
    model: keras.Model, items: list[ImageItem], image_size: int, batch_size: int, batches: int = 4
) -> float:
    """Seconds per image of decoding and ``model``'s forward pass, from per-batch timestamps of one
    stream of up to ``batches`` batches spread over ``items`` (the first batch, which traces, is not
    counted unless it is the only one).

    Args:
        model: the model (a backbone).
        items: images to sample.
        image_size: input size.
        batch_size: images per batch.
        batches: batches to run.
    """
    sample = items[:: max(1, len(items) // (batches * batch_size))][: batches * batch_size]
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    stamps, start = [], time.perf_counter()
    for x, _ in batched(decoded_dataset(sample, image_size, DecodeLog(), cache=False), batch_size):
        forward(x).numpy()
        stamps.append((time.perf_counter(), int(x.shape[0])))
    if not stamps:
        return 0.0
    timed = sum(n for _, n in stamps[1:])
    return (
        (stamps[-1][0] - stamps[0][0]) / timed if timed else (stamps[0][0] - start) / stamps[0][1]
    )


def _top_rate(bottom: keras.Model, top: keras.Model, image_size: int, batch_size: int) -> float:
    """Seconds per image of ``top`` (the backbone above the cache cut) on a batch of ``bottom``'s
    output shape."""
    forward = tf.function(lambda a: top(a, training=False))
    shape = bottom.compute_output_shape((batch_size, image_size, image_size, 3))
    batch = np.zeros(shape, np.float32)
    forward(batch).numpy()  # traces
    t = time.perf_counter()
    for _ in range(2):
        forward(batch).numpy()
    return (time.perf_counter() - t) / (2 * batch_size)


def _parse_cpu_line(line: str) -> tuple[float, float]:
    """(seconds of CPU normal-priority work used, seconds of CPU there were) from ``/proc/stat``'s
    first line."""
    fields = [float(v) for v in line.split()[1:9]]
    user, _nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = float(os.sysconf("SC_CLK_TCK"))
    return (user + system + irq + softirq + steal) / tick, sum(fields) / tick


def _cpu_times() -> tuple[float, float] | None:
    """:func:`_parse_cpu_line` of Linux's ``/proc/stat`` now (all cores since boot); None elsewhere.
    Niced
    work (``nice``) is left out: it yields to ours."""
    try:
        with open("/proc/stat") as fh:
            return _parse_cpu_line(fh.readline())
    except (OSError, ValueError):
        return None


def slowdown(sample_s: float = SLOWDOWN_SAMPLE_S) -> float:
    """How much slower than a quiet machine this one is now, from 1 to 4: 1 / the share of the CPUs
    that
    other normal-priority processes leave free, measured over ``sample_s`` seconds (``/proc/stat``);
    where that can't be read, the load average per core. Niced background work does not count, and
    neither does the minute-old history a load average carries. (With Linux's autogroup scheduling a
    niced process in *another* terminal session still gets that session's fair share unless the
    session
    itself is niced, ``/proc/PID/autogroup``; there this measure under-states the slowdown.)

    Args:
        sample_s: seconds to sample for. Defaults to :data:`SLOWDOWN_SAMPLE_S`.
    """
    before, own = _cpu_times(), time.process_time()
    if before is None:
        return min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))
    time.sleep(sample_s)
    after, own = _cpu_times(), time.process_time() - own
    busy, total = after[0] - before[0] - own, after[1] - before[1]  # type: ignore[index]
    others = min(1.0, max(0.0, busy / total)) if total > 0 else 0.0
    return min(4.0, 1.0 / max(0.25, 1.0 - others))


def report_seconds(report: bool, factor: float) -> float:
    """Seconds for the report (or only saving, with ``--no-report``) beyond scoring: the quiet
    machine's
    :data:`REPORT_SECONDS` times ``factor``.

    Args:
        report: whether report.html is built.
        factor: how much slower than a quiet machine this one is (:func:`slowdown`, measured once by
        the caller).
    """
    return (REPORT_SECONDS if report else REPORT_SECONDS / 3) * factor


def fit_size_to_budget(
    setup: Any,
    spec: ModelSpec,
    by_split: dict[str, list[ImageItem]],
    deadline: float,
    verbose: int,
    shrink: bool,
) -> tuple[Any, float]:
    """Measure the backbone's rate and, with ``shrink``, take a smaller input size (model rebuilt,
    config.yaml rewritten) when the size chosen from the data cannot score and extract every image
    in
    the time left (:func:`~imgclf.training.budget.budget_image_size`).

    Args:
        setup: the new run (:class:`~imgclf.training.trainer.RunSetup`; not imported: trainer
        imports this module).
        spec: its model's registry entry.
        by_split: its images by split.
        deadline: ``time.perf_counter()`` value at which ``--time`` runs out.
        verbose: 0 says nothing.
        shrink: whether the size may change (not when the user gave ``--image-size``).

    Returns:
        ``(setup, rate)``: the run, and the backbone's seconds per image at its input size.
    """
    cfg = setup.cfg
    rate = forward_rate(setup.clf.backbone, by_split["train"], cfg.image_size, cfg.batch_size)
    n = [len(by_split[k]) for k in ("train", "val", "test")]
    sides = sorted(min(i.width, i.height) for i in setup.items) or [cfg.image_size]
    native = (
        sides[len(sides) // 2] // 32 * 32
    )  # the images' own resolution: shrinking below it loses detail
    left = deadline - time.perf_counter()
    slow = slowdown()
    floor_s = PER_IMAGE_FLOOR_S * slow
    size = budget_image_size(
        cfg.image_size,
        rate,
        left,
        *n,
        report_s=report_seconds(cfg.report, slow),
        floor=native,
        per_image_floor=floor_s,
    )
    if not shrink or size >= cfg.image_size:
        return setup, rate
    if verbose:
        print(
            f"--time: {cfg.image_size}px does not fit ({rate * 1000:.1f} ms per image); "
            f"input size {size}px",
            flush=True,
        )
    scaled = max(rate * (size / cfg.image_size) ** 2, min(rate, floor_s))
    cfg = replace(cfg, image_size=size)
    write_config(setup.run_dir / RunFiles.CONFIG, cfg)
    return replace(
        setup,
        cfg=cfg,
        clf=build_classifier(spec, len(setup.data.classes), size, cfg.augment, cfg.seed),
    ), scaled


def plan_run(
    session: Session,
    rate: float,
    bottom: keras.Model,
    top: keras.Model | None,
    train_items: list[ImageItem],
    val_items: list[ImageItem],
    n_test: int,
    views: int,
    fine_tune: bool,
) -> tuple[list[ImageItem], list[ImageItem], int]:
    """Plan (:func:`~imgclf.training.budget.plan_budget`), say the plan and apply it to ``session``
    (head and fine-tuning epochs, reserve, ``budget_plan``).

    Args:
        session: the run's trainer, with a deadline.
        rate: the whole backbone's measured seconds per image, decoding included
        (:func:`forward_rate`).
        bottom: the frozen part of the backbone whose output is cached.
        top: the backbone above the cache cut (None: the head trains on the backbone's output).
        train_items: the train split.
        val_items: the validation split.
        n_test: test images (scored whole after training).
        views: the most views asked for.
        fine_tune: whether a fine-tuning stage follows the head.

    Returns:
        ``(train_items, val_items, views)`` to extract: stratified subsamples when not all fit.
    """
    cfg = session.cfg
    top_rate = (
        min(_top_rate(bottom, top, cfg.image_size, cfg.batch_size), (1 - EXTRACT_SHARE_MIN) * rate)
        if top is not None
        else 0.0
    )
    slow = slowdown()
    rates = Rates.measured(rate - top_rate, top_rate, cached=top is not None, slowdown=slow)
    left = session.deadline - time.perf_counter()

    def make(report: bool) -> BudgetPlan:
        return plan_budget(
            parse_duration(cfg.time_budget),
            left,
            len(train_items),
            len(val_items),
            n_test,
            session.num_classes,
            rates,
            views=views,
            head_epochs=cfg.head_epochs,
            fine_tune_epochs=cfg.epochs if fine_tune else 0,
            report_s=report_seconds(report, slow),
        )

    plan = make(cfg.report)
    if (
        cfg.report
        and plan.train_images < len(train_items)
        and (lean := make(False)).train_images > plan.train_images
    ):
        # a model that saw more of the data is worth more than its report, which can be built later
        session.say(
            f"--time {cfg.time_budget}: no report, so that {lean.train_images:,} training "
            "images fit instead of "
            f"{plan.train_images:,} (`imgclf report RUN` builds it afterwards)"
        )
        plan, session.cfg = lean, replace(cfg, report=False)
    session.say(plan.line())
    if plan.needed_s:
        session.say(
            f"WARNING: --time {cfg.time_budget} is too short to train on every image on "
            "this machine now: the model will "
            f"see {plan.train_images:,} of {len(train_items):,} and be the weaker for it; "
            "every image needs --time "
            f"{plan.needed_s:.0f}s or more"
        )
    session.head_epochs, session.epochs, session.reserve = (
        plan.head_epochs,
        plan.fine_tune_epochs,
        plan.reserve_s,
    )
    session.budget_plan = {
        **plan.to_dict(),
        "rates_s_per_image": asdict(rates),
        "slowdown": round(slow, 2),
        "image_size": cfg.image_size,
    }
    train = stratified_subset(train_items, plan.train_images, cfg.seed)
    return train, stratified_subset(val_items, plan.val_images, cfg.seed), plan.views
