"""Process set-up that must happen before TensorFlow is first imported for a command, and the
``imgclf`` program's quick exit once a command is done.

Importing :mod:`imgclf` changes nothing in the environment; the CLI and the API functions that load
TensorFlow (``train``, ``load_run`` and what uses them) call :func:`quiet_tensorflow_logs` first.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["exit_now", "process_started", "quiet_tensorflow_logs"]


def quiet_tensorflow_logs() -> None:
    """Silence TensorFlow's C++ start-up chatter (not for users), unless the user set the levels.
    Takes effect only before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def exit_now(rc: int) -> int:
    """End the process with status ``rc`` without the interpreter's teardown, which after TensorFlow
    was
    imported takes seconds (~4 s wall, ~2.5 s CPU on the busy 2-core VM; docs/benchmarks.md) and has
    nothing left to do: output is flushed first. Returns ``rc`` (for a normal exit) instead when
    TensorFlow was never imported or another Python thread that is not a daemon is still running.

    Args:
        rc: the exit status.
    """
    if "tensorflow" not in sys.modules or _working_threads():
        return rc
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _working_threads() -> list[threading.Thread]:
    """Python threads other than the main one that the interpreter would wait for (not daemons)."""
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]


def process_started() -> float:
    """The ``time.perf_counter()`` value at which this process started (Linux: from ``/proc``), so
    that
    ``--time`` counts the interpreter's start and every import as the user's wait; elsewhere,
    now."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = float(
                fh.read().rsplit(")", 1)[1].split()[19]
            )  # field 22, after the command name
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.perf_counter()
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    return time.perf_counter() - min(max(age, 0.0), 600.0)
