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
from imgclf.data.pipeline import batched, decoded_dataset
from imgclf.data.scan import ImageItem
from imgclf.training.budget import REPORT_SECONDS, fixed_cost_factor
from imgclf.training.distribution import replicas_in_scope, replicated

__all__ = ["forward_rate", "top_rate", "report_seconds", "slowdown"]

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
    batch_size *= replicas_in_scope()  # under a strategy: its global batch, split by replicated()
    sample = items[:: max(1, len(items) // (batches * batch_size))][: batches * batch_size]
    forward = replicated(lambda x: model(x, training=False))
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
