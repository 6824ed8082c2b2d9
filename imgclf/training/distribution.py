"""Where a run trains: one device, several devices of one machine, or several machines — decided
once, before anything touches the devices, into a frozen :class:`Distribution`.

- **One device** (``--devices auto`` without a GPU or with one GPU, ``--devices 1``): no strategy
  object at all; the code path of a single-device run is unchanged.
- **Several devices of one machine** (``--devices N``, or ``auto`` with several GPUs):
  ``tf.distribute.MirroredStrategy``; the model is built and compiled under its scope and Keras
  ``fit`` splits each global batch over the replicas. Without a GPU, ``--devices N`` splits the
  CPU into N logical devices (the way to try it; it does not make a CPU faster).
- **Several machines** (``TF_CONFIG`` naming several workers):
  ``tf.distribute.MultiWorkerMirroredStrategy`` with a training step of our own
  (:mod:`imgclf.training.multiworker`), since Keras 3's ``fit`` fails under it
  (keras-team/keras#20585). Worker 0 (or the ``chief`` task) writes the run folder; the others
  keep what they must write in a temporary folder.

The learning-rate rule: ``--batch-size`` is per replica, the global batch is ``batch_size ×
replicas``, and every peak learning rate is scaled linearly by the number of replicas (Goyal et
al., 2017, "Accurate, large minibatch SGD"), eased in by the cosine schedule's warm-up epoch. The
head stage (constant rate, Adam on pooled features) is scaled the same way.

Also here: how long a worker waits for the others (:func:`worker_timeout`); the mixed-precision
policy is :mod:`imgclf.training.precision`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from imgclf.config import TrainConfig
from imgclf.constants import DEVICES_AUTO, WORKER_TIMEOUT_S
from imgclf.errors import ConfigError, invalid_value

__all__ = [
    "Distribution",
    "SINGLE",
    "choose_distribution",
    "read_tf_config",
    "replicas_in_scope",
    "replicated",
    "worker_folder",
    "worker_timeout",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distribution:
    """How a run trains, decided once. ``kind``: ``none`` (one device, no strategy), ``mirrored``
    or ``multi_worker``; ``replicas``: the replicas in sync (devices over every worker);
    ``strategy``: the ``tf.distribute.Strategy`` (None for one device); ``worker``/``workers``:
    this worker's index and the number of workers (0 and 1 on one machine)."""

    kind: str = "none"
    replicas: int = 1
    strategy: Any = None
    worker: int = 0
    workers: int = 1
    timeout: float = 0.0  # multi-worker: seconds a worker waits for the others

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder (always, on one machine)."""
        return self.worker == 0

    @property
    def multi_worker(self) -> bool:
        return self.kind == "multi_worker"

    def scope(self):
        """``strategy.scope()`` on one machine with several devices: the models and optimizers
        built in it are mirrored. A null context otherwise (multi-worker runs enter the scope only
        around the model they train: :mod:`imgclf.training.multiworker`)."""
        return self.strategy.scope() if self.kind == "mirrored" else nullcontext()

    def global_batch(self, per_replica: int) -> int:
        """Images per training step over all replicas."""
        return per_replica * self.replicas

    def batch_for(self, per_replica: int, n: int) -> int:
        """The global batch for ``n`` rows: ``per_replica × replicas``, but under a strategy made
        a little smaller where that is needed so that every batch gives every replica at least one
        row (an empty per-replica batch breaks convolutions on TensorFlow's CPU) and the first
        batch splits evenly (Keras builds a model under a strategy from the mean of the first
        batch's per-replica parts, which fails when they differ in shape)."""
        size, r = self.global_batch(per_replica), self.replicas
        if r == 1:
            return size
        if n < r:
            raise invalid_value(
                "devices", r, f"at most {n}: a stage has only {n} images to split over devices"
            )
        for b in range(min(size, n // r * r), r - 1, -r):
            if n % b == 0 or n % b >= r:
                return b
        return r

    def learning_rate(self, peak: float) -> float:
        """The peak learning rate under this distribution: linear scaling with the replicas."""
        return peak * self.replicas

    def record(self) -> dict[str, Any]:
        """What ``config.yaml`` records: ``{strategy: none|mirrored|multi_worker, replicas: N}``."""
        return {"strategy": self.kind, "replicas": self.replicas}


SINGLE = Distribution()
# MirroredStrategy by device list: runs in one process share it (two strategies over the same
# devices reuse the same collective instance keys, and the second one's all-reduce fails)
_MIRRORED: dict[tuple[str, ...], Any] = {}


def read_tf_config() -> tuple[int, int]:
    """``(this worker's index, number of workers)`` from ``$TF_CONFIG`` (``cluster.worker`` plus an
    optional ``cluster.chief``; the chief is index 0); ``(0, 1)`` when it is not set."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return 0, 1
    try:
        tf_config = json.loads(raw)
        cluster, task = tf_config["cluster"], tf_config["task"]
        chiefs = list(cluster.get("chief", []))
        workers = len(chiefs) + len(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"TF_CONFIG is not a valid cluster description ({exc}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": I}}'
        ) from None
    if kind not in ("chief", "worker") or not 0 <= index < workers:
        raise ConfigError(
            f"TF_CONFIG task {kind!r} {index} is not one of the cluster's {workers} workers"
        )
    return (index if kind == "chief" else index + len(chiefs)), workers


def worker_timeout() -> float:
    """Seconds a worker waits for the others in one collective operation before it fails:
    ``$IMGCLF_WORKER_TIMEOUT``, else :data:`~imgclf.constants.WORKER_TIMEOUT_S`."""
    raw = os.environ.get("IMGCLF_WORKER_TIMEOUT", "")
    try:
        return float(raw) if raw else float(WORKER_TIMEOUT_S)
    except ValueError:
        raise invalid_value("IMGCLF_WORKER_TIMEOUT", raw, "a number of seconds") from None


def _requested(cfg: TrainConfig, gpus: int) -> int:
    """The devices ``--devices`` asks for on a machine with ``gpus`` GPUs."""
    if str(cfg.devices).strip() == DEVICES_AUTO:
        return max(1, gpus)
    n = int(cfg.devices)
    if gpus and n > gpus:
        raise invalid_value(
            "devices", cfg.devices, f"'auto' or a number from 1 to {gpus} (the GPUs visible here)"
        )
    return n


def _split_cpu(tf, n: int) -> None:
    """Split the CPU into ``n`` logical devices (possible only before TensorFlow uses it)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * n
        )
    except RuntimeError:  # already initialised: fine if it is already split that way
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise invalid_value(
                "devices",
                n,
                "a count set before TensorFlow first runs in this process (start a fresh "
                "Python process to train on a different number of CPU devices)",
            ) from None


def choose_distribution(cfg: TrainConfig) -> Distribution:
    """Set up the devices as ``cfg.devices`` and ``$TF_CONFIG`` say and return the distribution.
    Must run before anything touches the devices (TensorFlow fixes them at first use).

    Args:
        cfg: the run's options (``devices``).
    """
    import tensorflow as tf

    worker, workers = read_tf_config()
    gpus = len(tf.config.list_physical_devices("GPU"))
    if workers > 1:
        return _multi_worker(tf, cfg, worker, workers)
    n = _requested(cfg, gpus)
    if n == 1:
        return SINGLE
    if gpus:
        devices = [f"/gpu:{i}" for i in range(n)]
    else:
        _split_cpu(tf, n)
        devices = [f"/cpu:{i}" for i in range(n)]
    if tuple(devices) not in _MIRRORED:  # one per process: a second one's collectives collide
        _MIRRORED[tuple(devices)] = tf.distribute.MirroredStrategy(devices)
    return Distribution("mirrored", n, _MIRRORED[tuple(devices)])


def _multi_worker(tf, cfg: TrainConfig, worker: int, workers: int) -> Distribution:
    if str(cfg.devices).strip() != DEVICES_AUTO:
        raise invalid_value(
            "devices",
            cfg.devices,
            "'auto' when TF_CONFIG names several workers (each trains on all its GPUs, or its CPU)",
        )
    from imgclf.training.watchdog import Watchdog

    timeout = worker_timeout()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    with Watchdog(timeout, f"worker {worker} of {workers}").waiting("joining the cluster"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    replicas = strategy.num_replicas_in_sync
    return Distribution("multi_worker", replicas, strategy, worker, workers, timeout)


def replicas_in_scope() -> int:
    """Replicas of the strategy whose scope is active (1 outside any)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def replicated(fn):
    """``fn`` (a forward pass on a batch) traced; inside a strategy's scope each batch is split
    over the replicas and run by ``strategy.run``, so that what ``--time`` measures is the
    strategy's rate (:mod:`imgclf.training.measure`). Returns a function of a batch whose result
    has ``.numpy()``."""
    import numpy as np
    import tensorflow as tf

    traced = tf.function(fn, reduce_retracing=True)
    strategy = tf.distribute.get_strategy()
    r = strategy.num_replicas_in_sync
    if r == 1:
        return traced

    def forward(x):
        if len(x) < r:  # every replica needs rows
            return traced(x)
        parts = np.array_split(np.asarray(x), r)
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: parts[ctx.replica_id_in_sync_group]
        )
        return tf.concat(strategy.experimental_local_results(strategy.run(traced, (values,))), 0)

    return forward


def worker_folder(dist: Distribution) -> str | None:
    """A temporary folder for what a worker other than the chief must write (its copy of the
    checkpoints), said in one log line; None for the chief."""
    if dist.is_chief:
        return None
    folder = tempfile.mkdtemp(prefix=f"imgclf-worker{dist.worker}-")
    LOG.info(
        f"worker {dist.worker} of {dist.workers}: the chief (worker 0) writes the run folder; "
        f"this worker writes nothing to --out, only its own checkpoints to {folder} (removed at "
        "the end)"
    )
    return folder
