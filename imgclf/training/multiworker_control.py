"""What the workers of a multi-worker run must agree on, or they wait on each other for ever: where
a resumed run starts from, and when a stage stops.

- **Resuming** (``imgclf train --resume RUN`` on every worker, ``RUN`` the chief's run folder,
  readable by every worker: a shared filesystem, or a copy at the same path): the chief continues
  the run folder itself; every other worker continues a copy of it in its temporary folder
  (:func:`~imgclf.training.distribution.worker_folder`), so it reads the same ``state.json`` and
  ``last.keras`` as the chief and writes nothing into the run folder.
- **The plan of ``--time``**: the chief's, on every worker
  (:mod:`imgclf.training.multiworker_plan`).
- **Stopping**: early stopping and ``--stop-at-accuracy`` read the epoch's logs, which are the same
  on every worker; ``--time``'s deadline and Ctrl-C are each worker's own. After every epoch the
  workers vote (:class:`Agreement`, one small all-reduce): a stage stops on every worker when any
  worker would stop it, and a Ctrl-C on any worker stops every worker after the same epoch, with
  that epoch checkpointed, so ``--resume`` continues the run.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf

from imgclf.training.watchdog import Watchdog

__all__ = ["Agreement", "worker_resume"]

LOG = logging.getLogger(__name__)


def worker_resume(dist, scratch: str | None, resume_dir: str | Path | None):
    """The run folder this process resumes: ``resume_dir`` itself on the chief or on one machine
    (or None for a new run); on another worker, a copy of it in ``scratch``, its temporary folder.
    Every worker of a resumed multi-worker run waits here until every other worker has its copy,
    so the chief changes the run folder (its history, its checkpoints) only after that.

    Args:
        dist: the run's :class:`~imgclf.training.distribution.Distribution`.
        scratch: this worker's temporary folder (None: the chief, or one machine).
        resume_dir: the run being resumed (None: a new run).
    """
    if not dist.multi_worker or resume_dir is None:
        return resume_dir
    if scratch is not None:
        source = Path(resume_dir).expanduser()
        resume_dir = Path(scratch) / source.name
        shutil.copytree(source, resume_dir, symlinks=True)
        LOG.info(
            f"worker {dist.worker} of {dist.workers}: resumes from a copy of {source} (the "
            "chief's checkpoint and state); the chief continues the run folder itself"
        )
    who = f"worker {dist.worker} of {dist.workers}"
    with Watchdog(dist.timeout, who).waiting("waiting for every worker to copy the run folder"):
        _replica_sum(dist.strategy)(tf.constant(1.0))  # a barrier: every worker takes part
    return resume_dir


def _replica_sum(strategy):
    """A traced function of one tensor: its sum over every replica of ``strategy`` (a collective:
    every worker calls it)."""

    def total(x):
        return strategy.reduce("SUM", strategy.run(tf.identity, args=(x,)), axis=None)

    return tf.function(total)


class Agreement:
    """The workers' vote after each epoch (a sum over every replica of two flags: this worker
    would stop the stage, this worker saw Ctrl-C).

    Args:
        strategy: the run's ``MultiWorkerMirroredStrategy``.
        interrupts: the run's :class:`~imgclf.training.interrupts.Interrupts` (None: Ctrl-C is
            Python's own).
        who: how messages name this worker (``worker 1 of 2``).
    """

    def __init__(self, strategy, interrupts, who: str):
        self.strategy, self.interrupts, self.who = strategy, interrupts, who
        self._sum = _replica_sum(strategy)

    @contextmanager
    def deferred(self):
        """While the stage trains, a first Ctrl-C only sets the flag that the next vote reads
        (a second one stops this worker at once, as on one machine)."""
        if self.interrupts is None:
            yield
            return
        self.interrupts.defer(True)
        try:
            yield
        finally:
            self.interrupts.defer(False)

    def settle(self, model: keras.Model, epoch: int) -> None:
        """After epoch ``epoch``'s callbacks: set ``model.stop_training`` on every worker when any
        worker's callbacks set it (a deadline is each worker's own clock), and raise
        KeyboardInterrupt on every worker when any of them saw Ctrl-C."""
        seen = self.interrupts is not None and self.interrupts.was_seen()
        flags = tf.constant([float(bool(model.stop_training)), float(seen)], tf.float32)
        total = self._sum(flags).numpy()
        model.stop_training = bool(total[0] > 0)
        if total[1] > 0:
            if not seen:
                LOG.info(
                    f"{self.who}: Ctrl-C on another worker; every worker stops after this "
                    f"stage's epoch {epoch + 1}"
                )
            raise KeyboardInterrupt
