"""Ctrl-C during training, never lost.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread happens to be. Inside
a bare ``except:`` (Keras' loss set-up while a fit traces its step has several), or inside an
object's ``__del__`` or a weakref callback (TensorFlow runs many while it frees tensors), that
exception is swallowed and training goes on as if nothing happened. While :class:`Interrupts` is
active, SIGINT also sets a flag; the :class:`~imgclf.training.callbacks.RaiseInterrupt` callback
raises KeyboardInterrupt again at the next batch or epoch boundary when the flag is set, and the
trainer treats a run whose flag is set as interrupted even if no exception reached it.

Inside a Keras fit the first Ctrl-C only sets the flag (:meth:`Interrupts.defer`), and
RaiseInterrupt raises at the next batch boundary: a KeyboardInterrupt raised in the middle of one
of TensorFlow's eager operations (the learning-rate schedule's, at a batch's start) sometimes
corrupted the native heap and aborted the process ("free(): invalid next size", SIGABRT instead of
exit 130, 3 times in 6 in tests/test_faults.py). A second Ctrl-C is raised at once.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["Interrupts"]


class Interrupts:
    """Context manager: while active, SIGINT sets :attr:`seen` and raises KeyboardInterrupt (as
    Python's own handler does). Outside the main thread it does nothing (signals go to the main
    thread only)."""

    def __init__(self) -> None:
        self.seen = False
        self.deferred = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        first = not self.seen
        self.seen = True
        if not (first and self.deferred):  # deferred: RaiseInterrupt raises at the next batch
            raise KeyboardInterrupt

    def defer(self, on: bool) -> None:
        """While on, the first Ctrl-C only sets the flag (a fit's callbacks raise it at the next
        batch boundary, between TensorFlow's operations); a second one is raised at once."""
        self.deferred = on

    def was_seen(self) -> bool:
        """Whether a Ctrl-C came while active."""
        return self.seen

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
