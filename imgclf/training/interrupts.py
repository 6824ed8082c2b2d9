"""Ctrl-C during training, never lost.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread happens to be. Inside
a bare ``except:`` (Keras' loss set-up while a fit traces its step has several), or inside an
object's ``__del__`` or a weakref callback (TensorFlow runs many while it frees tensors), that
exception is swallowed and training goes on as if nothing happened. While :class:`Interrupts` is
active, SIGINT also sets a flag; the :class:`~imgclf.training.callbacks.RaiseInterrupt` callback
raises KeyboardInterrupt again at the next batch or epoch boundary when the flag is set, and the
trainer treats a run whose flag is set as interrupted even if no exception reached it.
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
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

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
