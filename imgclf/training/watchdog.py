"""A bound on how long a worker of a multi-worker run waits for the others, and the error that says
a worker was lost.

A collective operation whose peer died fails on its own after ``CommunicationOptions
(timeout_seconds=…)`` (:mod:`imgclf.training.distribution`), but some waits have no such timeout:
joining a cluster whose other worker never started, or one that died before its first collective,
blocks inside TensorFlow for ever. While a :class:`Watchdog` is :meth:`~Watchdog.waiting`, a
daemon thread ends the process with a clear one-line error once nothing happened for ``timeout``
seconds — a blocked native call cannot be interrupted any other way.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

import tensorflow as tf

from imgclf.errors import ModelError

__all__ = ["EXIT_LOST_WORKER", "LOST", "Watchdog", "collective_failure", "lost_worker"]

# what a collective raises when a peer died, cut the network or took longer than the timeout
LOST = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError)

EXIT_LOST_WORKER = 1  # the exit status of any other imgclf error


class Watchdog:
    """Ends the process when a wait lasts longer than ``timeout`` seconds.

    Args:
        timeout: seconds without progress (:meth:`pet`) before the process ends.
        who: how the message names this process (``worker 1 of 2``).
    """

    def __init__(self, timeout: float, who: str):
        self.timeout, self.who = float(timeout), who
        self._deadline: float | None = None
        self._what = ""
        self._thread: threading.Thread | None = None

    @contextmanager
    def waiting(self, what: str):
        """Watch the block: ``what`` says in the message what the worker was doing."""
        self._what = what
        self.pet()
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="imgclf-watchdog", daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            self._deadline = None

    def pet(self) -> None:
        """Progress: the wait starts again."""
        self._deadline = time.monotonic() + self.timeout

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                self._fire()

    def _fire(self) -> None:
        sys.stdout.flush()
        sys.stderr.write(
            f"imgclf: error: {self.who}: no answer from the other workers for "
            f"{self.timeout:.0f}s while {self._what}: a worker stopped or cannot be reached; "
            "start every worker again ($IMGCLF_WORKER_TIMEOUT sets the wait)\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_LOST_WORKER)


def collective_failure(exc: BaseException | None) -> BaseException | None:
    """The TensorFlow error behind ``exc`` when a collective operation failed (Keras wraps one
    raised while it builds a layer in a TypeError); None for any other error."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, LOST) or "Collective ops is aborted" in str(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def lost_worker(dist, exc: Exception) -> ModelError:
    """The clear error of a collective operation that failed (a worker died, the network broke, a
    worker waited longer than the timeout)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keys = ("unhealthy", "aborted", "timed out", "deadline", "unavailable")
    said = next((line for line in lines if any(k in line.lower() for k in keys)), "")
    return ModelError(
        f"worker {dist.worker} of {dist.workers}: training stopped because another worker did "
        f"not answer ({type(exc).__name__}: {str(said)[:200]}); a worker stopped or the network "
        "failed: start every worker again"
    )
