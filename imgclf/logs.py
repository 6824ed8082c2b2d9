"""Library code reports through ``logging.getLogger("imgclf")``; the front end decides who sees it.

Modules log with ``LOG = logging.getLogger(__name__)`` (children of ``imgclf``): ``info`` for
what a run is doing (the doctor's findings, the model chosen, the plan, each stage), ``warning``
for a note about how a command will run (a first TFLite conversion, a fall-back to Keras).
Nothing is shown until someone asks: the ``imgclf`` logger has a ``NullHandler``, so a library
user gets silence unless they configure :mod:`logging` or pass ``verbose``; the command line (and
the API's ``verbose=1``) shows the messages as plain lines with :func:`to_terminal` — info on
standard output, warnings on standard error after ``imgclf:`` — exactly as the commands print
them. Progress bars (:mod:`imgclf.progress`) are not log records and stay as they are.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOG", "to_terminal"]

LOG = logging.getLogger("imgclf")
LOG.addHandler(logging.NullHandler())


class _Stream(logging.StreamHandler):
    """A handler that looks ``sys.stdout``/``sys.stderr`` up at each record (redirection)."""

    def __init__(self, name: str, levels: tuple[int, int], prefix: str = "") -> None:
        super().__init__()
        self._name, self._levels = name, levels
        self.setFormatter(logging.Formatter(prefix + "%(message)s"))
        self.addFilter(lambda record: levels[0] <= record.levelno < levels[1])

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self._name)
        super().emit(record)


@contextmanager
def to_terminal(info: bool = True) -> Iterator[None]:
    """While inside, imgclf's log records are printed as the command line prints them.

    Args:
        info: False shows only the warnings (``imgclf predict --quiet``). Defaults to True.

    >>> import logging
    >>> with to_terminal():
    ...     logging.getLogger("imgclf.data").info("doctor: 3 classes")
    doctor: 3 classes
    """
    handlers = [_Stream("stderr", (logging.WARNING, logging.CRITICAL + 1), prefix="imgclf: ")]
    if info:
        handlers.append(_Stream("stdout", (logging.INFO, logging.WARNING)))
    level, propagate = LOG.level, LOG.propagate
    LOG.setLevel(logging.INFO)
    LOG.propagate = False  # shown here once, not again by a handler of the root logger
    for handler in handlers:
        LOG.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            LOG.removeHandler(handler)
        LOG.setLevel(level)
        LOG.propagate = propagate
