"""Progress of a long step (scanning, hashing, feature extraction, evaluation, prediction), the same
way everywhere: on a terminal a live bar with count, rate and time left (rich); piped to a file or
another program, one plain line at most every :data:`PIPED_INTERVAL_S` seconds — no log spam, no
control codes.

```python
from imgclf.progress import Progress, progress, track

for path in track(paths, "hashing", unit="files", enabled=verbose > 0):
    ...
with Progress(len(items), "feature extraction", unit="images") as bar:
    for batch in batches:
        ...
        bar.advance(len(batch))
with progress("evaluating", len(items), enabled=verbose > 0) as advance:  # the same, as a callback
    score_items(..., advance)
```

Progress goes to stderr (results go to stdout), so ``imgclf predict … > out.csv`` stays clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Self, TextIO, TypeVar

__all__ = ["PIPED_INTERVAL_S", "Progress", "format_seconds", "progress", "track"]

PIPED_INTERVAL_S = 5.0  # seconds between two progress lines when the output is not a terminal

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: a duration for people.

    Args:
        seconds: the duration (negative counts as 0).
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """A progress display for ``total`` units of work; use it as a context manager and
    :meth:`advance`.

    Args:
        total: units of work expected (None if unknown: no bar, no time left).
        description: what is being done, e.g. ``"hashing"``.
        unit: what is counted, e.g. ``"images"`` ("" names no unit).
        enabled: False shows nothing (``--quiet``, ``verbose=0``).
        stream: where to write (default ``sys.stderr``); a live bar only if it is a terminal.
        interval: seconds between plain lines when ``stream`` is not a terminal (default
            :data:`PIPED_INTERVAL_S`).
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        unit: str = "items",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.total, self.description, self.unit = total, description, unit
        self.enabled = enabled
        self.interval = PIPED_INTERVAL_S if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.lines = 0  # plain lines written (piped mode)
        self._reported = 0  # the count the last plain line showed
        self._start = self._last = 0.0
        self._live = None
        self._task = None

    @property
    def live(self) -> bool:
        """Whether a live bar is shown (enabled and writing to a terminal)."""
        return self.enabled and bool(getattr(self.stream, "isatty", lambda: False)())

    def __enter__(self) -> Self:
        self._start = self._last = time.monotonic()
        if self.live:
            import rich.progress as rp
            from rich.console import Console

            columns = [
                rp.TextColumn("{task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[rate]}"),
                rp.TextColumn("left"),
                rp.TimeRemainingColumn(),
            ]
            self._live = rp.Progress(*columns, console=Console(file=self.stream), transient=True)
            self._live.start()
            self._task = self._live.add_task(self.description, total=self.total, rate="")
        return self

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done; redraw the bar, or write a line if ``interval`` has passed.

        Args:
            n: units just finished.
        """
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if self._live is not None:
            self._live.update(
                self._task,
                advance=n,
                rate=f"{self._rate(now):.1f} {self.unit}/s".replace(" /s", "/s"),
            )
        elif now - self._last >= self.interval:
            self._last = now
            self._write(self._status(now))
            self._reported = self.done

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        elif self.enabled and self.lines and exc[0] is None and self._reported != self.done:
            self._write(
                self._status(time.monotonic())
            )  # a log that reported ends at the final count

    def _rate(self, now: float) -> float:
        return self.done / max(now - self._start, 1e-9)

    def _status(self, now: float) -> str:
        rate = self._rate(now)
        unit = f" {self.unit}" if self.unit else ""
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = format_seconds(left) if left != float("inf") else "?"
            return f"{self.description}: {self.done}/{self.total}{unit} ({rate:.1f}/s, ~{eta} left)"
        return f"{self.description}: {self.done}{unit} ({rate:.1f}/s)"

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
        self.lines += 1


def track(
    items: Iterable[T],
    description: str,
    *,
    total: int | None = None,
    unit: str = "items",
    enabled: bool = True,
    stream: TextIO | None = None,
    interval: float | None = None,
) -> Iterator[T]:
    """Yield ``items`` while showing a :class:`Progress` of them (one unit each).

    Args:
        items: what to iterate over.
        description: what is being done.
        total: how many (default ``len(items)`` when it has one).
        unit: what is counted.
        enabled: False shows nothing.
        stream: where to write (default ``sys.stderr``).
        interval: seconds between plain lines when not on a terminal.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(
        total, description, unit, enabled=enabled, stream=stream, interval=interval
    ) as bar:
        for item in items:
            yield item
            bar.advance()


@contextmanager
def progress(
    description: str, total: int | None, enabled: bool = True, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """:class:`Progress` as a callback: yields ``advance(n=1)``, for code that reports work done
    through a function it is given (``score_items(..., advance)``).

    Args:
        description: what is being done, e.g. ``"evaluating"``.
        total: the amount of work (images, files), or None if unknown.
        enabled: False shows nothing (``verbose=0``).
        stream: where to write (default ``sys.stderr``).
    """
    with Progress(total, description, "", enabled=enabled, stream=stream) as bar:
        yield bar.advance
