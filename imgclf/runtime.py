"""Process set-up that must happen before TensorFlow is first imported for a command, and the
``imgclf`` program's quick exit once a command is done.

Importing :mod:`imgclf` changes nothing in the environment; the CLI and the API functions that load
TensorFlow (``train``, ``load_run`` and what uses them) call :func:`quiet_tensorflow_logs` first.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

__all__ = [
    "exit_now",
    "native_lines_dropped",
    "process_started",
    "quiet_native_stderr",
    "quiet_tensorflow_logs",
]


def quiet_tensorflow_logs() -> None:
    """Keep TensorFlow's start-up chatter (not for users) off standard error, unless the user set
    the log levels: sets ``TF_CPP_MIN_LOG_LEVEL`` and quiets the ``tensorflow`` Python logger (TF1
    deprecation notices), and, since TensorFlow 2.21's C++ start-up lines (absl's "All log messages
    before absl::InitializeLog()", oneDNN's notice) ignore those levels, imports TensorFlow with
    file descriptor 2 caught, then passes on every line that is not such chatter (see
    :data:`CHATTER`). Takes effect only before TensorFlow is imported; calling it again does
    nothing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1"):
        return  # the user asked to see TensorFlow's messages
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietImport())


# TensorFlow's native log lines (glog format: level, date, time, thread, file:line]) of levels
# I and W, absl's preamble, the CUDA probes of a CPU-only machine, and TFLite's note when an
# interpreter first allocates its tensors
CHATTER = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|E\d{4} .*(?:Unable to register cu|cuda|CUDA)"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.)"
)


@contextmanager
def quiet_native_stderr():
    """Catch what native code writes to file descriptor 2 while the block runs; afterwards pass on
    every line that is not :data:`CHATTER` (unless the user set ``TF_CPP_MIN_LOG_LEVEL`` to 0 or 1:
    then nothing is caught)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        yield
        return
    with native_lines_dropped(CHATTER):
        yield


@contextmanager
def native_lines_dropped(pattern: re.Pattern[str]):
    """Catch what native code writes to file descriptor 2 while the block runs; afterwards pass on
    every line that ``pattern`` does not match.

    Args:
        pattern: the lines to drop (matched from the start of each line).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines(True) if not pattern.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with a loader that runs its import under
    :func:`quiet_native_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        with quiet_native_stderr():
            self.inner.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def exit_now(rc: int) -> int:
    """End the process with status ``rc`` without the interpreter's teardown, which after TensorFlow
    was imported takes seconds (~4 s wall, ~2.5 s CPU on the busy 2-core VM; docs/benchmarks.md) and
    has nothing left to do: output is flushed first. Returns ``rc`` (for a normal exit) instead when
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
    that ``--time`` counts the interpreter's start and every import as the user's wait; elsewhere,
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
