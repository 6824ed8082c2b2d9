"""One progress helper for every long step: a rich bar with rate and time left on a terminal, and
at most one plain line every few seconds when the output is piped to a file (no log spam)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress", "PIPED_INTERVAL_S"]

PIPED_INTERVAL_S = 5.0  # seconds between two plain lines when not attached to a terminal


@contextmanager
def progress(description: str, total: int | None, enabled: bool = True, stream=None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``, to be called as work gets done.

    Args:
        description: what is being done, e.g. ``"evaluating"``.
        total: the amount of work (images, files), or None if unknown.
        enabled: False shows nothing (``verbose=0``).
        stream: where to write (default ``sys.stderr``).
    """
    stream = stream or sys.stderr
    if not enabled:
        yield lambda n=1: None
        return
    if stream.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class _Rate(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.speed:.1f}/s" if task.speed else "")

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
        with Progress(*columns, console=Console(file=stream), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    state = {"done": 0, "start": time.monotonic(), "last": time.monotonic()}

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] >= PIPED_INTERVAL_S:
            state["last"] = now
            stream.write(_plain_line(description, state["done"], total, now - state["start"]) + "\n")
            stream.flush()

    yield advance


def _plain_line(description: str, done: int, total: int | None, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        left = (total - done) / rate if rate > 0 else float("nan")
        return f"{description}: {done}/{total} ({rate:.1f}/s, {left:.0f}s left)"
    return f"{description}: {done} ({rate:.1f}/s)"
