"""What ``--time`` measures before it plans (:mod:`imgclf.training.plan`): a model's seconds per
image on a sample of the real images, the top of a cut backbone's, and how busy the machine is.

Measuring is kept cheap (one traced forward function, a few batches, the first not counted): under a
45 s budget every second spent measuring is a second not spent training.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np

from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset, fits_cache
from imgclf.data.scan import ImageItem
from imgclf.training.budget import (
    FIT_START_SECONDS,
    REPORT_SECONDS,
    SCRATCH_STEP_FACTOR,
    Rates,
    fixed_cost_factor,
)
from imgclf.training.distribution import replicas_in_scope, replicated

__all__ = [
    "decode_and_forward",
    "forward_rate",
    "scratch_rates",
    "top_rate",
    "report_seconds",
    "slowdown",
]

EXTRACT_SHARE_MIN = 0.3  # the frozen bottom's share of a forward pass is taken as at least this
SLOWDOWN_SAMPLE_S = 0.25  # how long slowdown() watches the other processes' use of the CPUs
# decode_and_forward times a model's forward pass over at least this many seconds (a tiny model's
# 16 batches take ~0.1 s, where one time slice lost to another process is 10 %) …
FORWARD_MIN_S = 0.5
FORWARD_PASSES_MAX = 4  # … going over its decoded batches up to this many times


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
    sample, batch_size = _spread(items, batch_size, batches)
    forward = replicated(lambda x: model(x, training=False))
    stamps, start = [], time.perf_counter()
    for x, _ in batched(decoded_dataset(sample, image_size, DecodeLog(), cache=False), batch_size):
        forward(x).numpy()
        stamps.append((time.perf_counter(), int(x.shape[0])))
    return _per_image(stamps, start)


def _spread(items: list[ImageItem], batch_size: int, batches: int) -> tuple[list, int]:
    """Up to ``batches`` batches of ``items``, spread over them, and the batch size: under a
    strategy its global batch, which :func:`replicated` splits over the replicas."""
    batch_size *= replicas_in_scope()
    n = batches * batch_size
    return items[:: max(1, len(items) // n)][:n], batch_size


def _per_image(stamps: list[tuple[float, int]], start: float) -> float:
    """Seconds per image from per-batch ``(time, images)`` stamps: the batches after the first
    (which traces or starts a pipeline), or the first alone when it is the only one."""
    if not stamps:
        return 0.0
    timed = sum(n for _, n in stamps[1:])
    return (
        (stamps[-1][0] - stamps[0][0]) / timed if timed else (stamps[0][0] - start) / stamps[0][1]
    )


def decode_and_forward(
    model: keras.Model, items: list[ImageItem], image_size: int, batch_size: int, batches: int = 8
) -> tuple[float, float]:
    """Seconds per image of decoding and, apart, of ``model``'s forward pass on decoded images,
    over up to ``batches`` batches spread over ``items`` (the forward pass over them again, up to
    :data:`FORWARD_PASSES_MAX` times, until it has run :data:`FORWARD_MIN_S`): a from-scratch fit
    decodes each image once, into its in-memory cache during the first epoch, and every epoch after
    reads it decoded (:func:`forward_rate` times the two together, as a pass that decodes every
    time pays them).

    Args:
        model: the whole model.
        items: images to sample.
        image_size: input size.
        batch_size: images per batch.
        batches: batches to run. Defaults to 8.

    Returns:
        ``(decode, forward)``, seconds per image.
    """
    sample, batch_size = _spread(items, batch_size, batches)
    stamps, cpu, decoded = [], [], []
    start, cpu_start = time.perf_counter(), time.process_time()
    for x, _ in batched(decoded_dataset(sample, image_size, DecodeLog(), cache=False), batch_size):
        decoded.append(x)
        stamps.append((time.perf_counter(), int(x.shape[0])))
        cpu.append((time.process_time(), int(x.shape[0])))
    # the cache fill's decoding runs beside the training steps, which take the cores the parallel
    # decoding had here: it costs its CPU seconds, not less (Fashion-MNIST, quiet machine: the first
    # epoch ~0.35 ms an image longer, decoding ~0.4 ms of CPU an image)
    decode = max(_per_image(stamps, start), _per_image(cpu, cpu_start))
    forward = replicated(lambda x: model(x, training=False))
    stamps, start = [], time.perf_counter()
    for x in decoded * FORWARD_PASSES_MAX:  # a small model's batches again, to time enough
        forward(x).numpy()
        stamps.append((time.perf_counter(), int(x.shape[0])))
        if len(stamps) >= len(decoded) and stamps[-1][0] - stamps[0][0] >= FORWARD_MIN_S:
            break
    return decode, _per_image(stamps, start)


def scratch_rates(
    model: keras.Model, items: list[ImageItem], cfg, n_images: int, load: float
) -> tuple[Rates, float]:
    """The rates of a from-scratch fit of ``model`` on decoded images, and the seconds per image it
    pays once to decode them all (0 when they do not fit the in-memory cache: then every epoch
    decodes, and its rates say so). A training image costs
    :data:`~imgclf.training.budget.SCRATCH_STEP_FACTOR` forward passes, a validation image one, a
    scored image (test, report) decoding and one; the fit's start-up traces the whole model's step.

    Args:
        model: the whole model.
        items: training images to sample.
        cfg: the run's options (``image_size``, ``batch_size``, ``cache_mb``).
        n_images: the train and validation images the fit would cache.
        load: :func:`slowdown`, measured once by the caller.
    """
    decode, forward = decode_and_forward(model, items, cfg.image_size, cfg.batch_size, 16)
    cached = cfg.cache_mb > 0 and fits_cache(n_images, cfg.image_size, cfg.cache_mb)
    every = 0.0 if cached else decode  # decoding in every epoch
    rates = Rates(
        decode + forward,
        0.0,
        decode + forward,
        SCRATCH_STEP_FACTOR * forward + every,
        forward + every,
        fine_tune_start=FIT_START_SECONDS * fixed_cost_factor(load),
    )
    return rates, decode if cached else 0.0


def top_rate(bottom: keras.Model, top: keras.Model, image_size: int, batch_size: int) -> float:
    """Seconds per image of ``top`` (the backbone above the cache cut) on a batch of ``bottom``'s
    output shape."""
    batch_size *= replicas_in_scope()  # under a strategy: its global batch, split by replicated()
    forward = replicated(lambda a: top(a, training=False))
    shape = bottom.compute_output_shape((batch_size, image_size, image_size, 3))
    batch = np.zeros(shape, np.float32)
    forward(batch).numpy()  # traces
    t = time.perf_counter()
    for _ in range(2):
        forward(batch).numpy()
    return (time.perf_counter() - t) / (2 * batch_size)


def _parse_cpu_line(line: str, niced: bool = False) -> tuple[float, float]:
    """(seconds of CPU work that competes with ours, seconds of CPU there were) from
    ``/proc/stat``'s first line. Niced work (``nice``) yields to a normal-priority process and is
    left out, unless ``niced``: then this process is niced itself and niced work competes with it.

    Args:
        line: the ``cpu`` line.
        niced: whether this process runs niced.
    """
    fields = [float(v) for v in line.split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = float(os.sysconf("SC_CLK_TCK"))
    busy = user + system + irq + softirq + steal + (nice if niced else 0.0)
    return busy / tick, sum(fields) / tick


def _cpu_times() -> tuple[float, float] | None:
    """:func:`_parse_cpu_line` of Linux's ``/proc/stat`` now (all cores since boot), niced work
    counted when this process is niced itself; None elsewhere."""
    try:
        niced = os.getpriority(os.PRIO_PROCESS, 0) > 0
        with open("/proc/stat") as fh:
            return _parse_cpu_line(fh.readline(), niced)
    except (OSError, ValueError):
        return None


def slowdown(sample_s: float = SLOWDOWN_SAMPLE_S) -> float:
    """How much slower than a quiet machine this one is now, from 1 to 4: 1 / the share of the CPUs
    that competing processes leave free, measured over ``sample_s`` seconds (``/proc/stat``); where
    that can't be read, the load average per core. Niced background work counts only when this
    process is niced too (``nice imgclf train …`` on a machine full of niced jobs is as slow as a
    busy machine), and the minute-old history a load average carries does not count. (With Linux's
    autogroup scheduling a niced process in *another* terminal session still gets that session's
    fair share unless the session itself is niced, ``/proc/PID/autogroup``; there this measure
    under-states the slowdown.)

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
    machine's :data:`REPORT_SECONDS` times :func:`fixed_cost_factor` of ``factor``.

    Args:
        report: whether report.html is built.
        factor: how much slower than a quiet machine this one is (:func:`slowdown`, measured once by
        the caller).
    """
    return (REPORT_SECONDS if report else REPORT_SECONDS / 3) * fixed_cost_factor(factor)
