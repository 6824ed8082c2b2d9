"""``imgclf predict --on ray``: the prediction core run as Ray Data actors, for jobs bigger than one
process.

Each actor (:class:`RayPredictor`; one per :data:`imgclf.constants.RAY_CPUS_PER_ACTOR` CPUs of the
cluster, or with ``--engine keras`` on a cluster with GPUs one per GPU: :func:`actor_resources`)
opens the run once, with the engine this process chose for the job — the parity-checked TFLite
copy, converted once here before the job starts, or Keras — and predicts its batches with
:meth:`imgclf.serving.predictor.Run.iter_predict`: the same header check and decode path, the same
calibrated probabilities, so the rows are those of ``imgclf predict`` without ``--on ray``. The rows
come back to this process in input order, and the same writers write them.

Without an address a local cluster is started with this machine's CPUs and shut down at the end;
``--address auto`` (a cluster started on this machine with ``ray start``) or ``ray://HOST:10001``
joins a running one: every node must have imgclf installed and see the run folder and the images
at the same paths. An actor that dies is restarted and its batch retried, up to
:data:`imgclf.constants.RAY_TASK_RETRIES` times; a file that cannot be decoded is an error row, as
everywhere.

Ray stays quiet: its Python loggers at ERROR, Ray Data's progress bars off (the command shows its
own), workers' output kept in Ray's session logs, and Ray's native log level ``fatal`` for the
processes this command starts (set ``RAY_BACKEND_LOG_LEVEL`` to see more). Ray is imported only
inside this module's functions (``pip install 'imgclf[ray]'``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from imgclf.constants import RAY_CPUS_PER_ACTOR, RAY_TASK_RETRIES
from imgclf.errors import ConfigError
from imgclf.runtime import native_lines_dropped
from imgclf.serving.parquet_output import row_schema
from imgclf.serving.prediction import check_options

__all__ = [
    "CRASH_ENV",
    "RayPlan",
    "RayPredictor",
    "actor_resources",
    "import_ray",
    "predict_rows_on_ray",
]

# For the tests of a lost actor: a file path; the first actor to create that file exits on its
# second batch, once per job
CRASH_ENV = "IMGCLF_RAY_CRASH_ONCE"
_BACKEND_LEVEL_ENV = "RAY_BACKEND_LOG_LEVEL"
# Ray's native log lines below ERROR ("[2026-12-06 11:13:31,618 I 15292 15292] logging.cc:303: …")
_NATIVE_NOTE = re.compile(r"^\[[\d\- :,]+ [IW] \d+ \d+\] \S+\.cc:\d+: ")
# forward-pass batches per actor call at most: each call builds the prediction core's tf.data
# pipeline once (~0.25 CPU s), so a call of 32 paths costs 5x the CPU per image of a call of 512
_CALL_BATCHES = 16


@dataclass(frozen=True)
class RayPlan:
    """What every actor needs to predict as this process would, decided once here.

    Attributes:
        run: the run folder (absolute).
        engine: ``tflite`` or ``keras``: the engine this process chose for the job.
        options: ``top_k``, ``batch_size``, ``min_confidence``, ``threshold``, ``tta``.
        cwd: this process's working directory (relative image paths are taken from it).
        threads: TFLite interpreter threads per actor.
        crash_marker: see :data:`CRASH_ENV` (None: never).
    """

    run: str
    engine: str
    options: dict[str, Any] = field(default_factory=dict)
    cwd: str = "."
    threads: int = RAY_CPUS_PER_ACTOR
    crash_marker: str | None = None


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (map_batches, DataContext)
    except ImportError:
        raise ConfigError(
            "--on ray needs Ray, which is not installed: pip install 'imgclf[ray]'"
        ) from None
    return ray


class RayPredictor:
    """The callable class Ray Data runs in each actor: the run opened once, then one batch of
    paths → their prediction rows (an Arrow table of :func:`row_schema`).

    Args:
        plan: the job's :class:`RayPlan`.
    """

    def __init__(self, plan: RayPlan):
        from imgclf.engines.tflite_engine import TFLiteEngine
        from imgclf.serving.predictor import load_run

        if os.path.isdir(plan.cwd):  # an actor is a process of its own: paths as the user gave them
            os.chdir(plan.cwd)
        self.plan, self.calls = plan, 0
        self.run = load_run(plan.run, plan.engine)
        engine = self.run.engine_for_job()
        if isinstance(engine, TFLiteEngine):  # one interpreter thread per CPU the actor holds
            engine.threads = plan.threads

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        self.calls += 1
        if self.calls == 2 and self.plan.crash_marker and _first_to_claim(self.plan.crash_marker):
            os._exit(1)
        files = [str(p) for p in batch["path"]]
        rows = [
            p.to_dict()
            for chunk in self.run.iter_predict(files, **self.plan.options)
            for p in chunk
        ]
        return pa.Table.from_pylist(rows, schema=row_schema())


def _first_to_claim(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _connect(ray: Any, address: str | None) -> None:
    """Start a local cluster with this machine's CPUs (``address`` None), or join ``address``."""
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    before = os.environ.get(_BACKEND_LEVEL_ENV)
    os.environ.setdefault(_BACKEND_LEVEL_ENV, "fatal")
    try:
        with native_lines_dropped(_NATIVE_NOTE):
            if address is None:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
            else:
                _join(ray, address, quiet)
    finally:
        if before is None:
            os.environ.pop(_BACKEND_LEVEL_ENV, None)


def _join(ray: Any, address: str, quiet: dict[str, Any]) -> None:
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot join the Ray cluster at --address {address!r}: {text}") from None


@contextmanager
def ray_cluster(address: str | None = None) -> Iterator[Any]:
    """Ray connected to a cluster for the block (see :func:`_connect`), quiet, disconnected at the
    end (a local cluster is shut down); yields the ``ray`` module. When this process is already
    connected (``ray.init`` in a program that calls imgclf), that connection is used and kept.

    Args:
        address: None (start a local cluster), ``auto`` or ``ray://HOST:PORT``.
    """
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        _connect(ray, address)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True  # rows in input order, as without Ray
        # Ray Data's own console handler only (its file log keeps all): a handler someone else
        # put there (pytest's caplog, a program's own) keeps its level
        for handler in logging.getLogger("ray.data").handlers:
            if type(handler).__name__ == "PlainRayHandler":
                handler.setLevel(logging.ERROR)
        yield ray
    finally:
        if owned:
            ray.shutdown()


def _plan(run, files: list[str], options: dict[str, Any]) -> RayPlan:
    """The job's plan; a first TFLite conversion (``--engine auto`` or ``tflite``) happens here,
    once, before any actor starts."""
    check_options(run.classes, options["top_k"], options["min_confidence"], options["threshold"])
    engine = run.engine_for_job(len(files))
    return RayPlan(
        run=str(run.path.resolve()),
        engine=engine.name,
        options=dict(options),
        cwd=os.getcwd(),
        crash_marker=os.environ.get(CRASH_ENV) or None,
    )


def actor_resources(cluster: dict[str, float], engine: str) -> tuple[int, int]:
    """How many actors, and GPUs each: the Keras engine on a cluster with GPUs gets one actor per
    GPU, each holding one (the TFLite engine runs on CPUs, wherever it is); otherwise one actor per
    :data:`~imgclf.constants.RAY_CPUS_PER_ACTOR` CPUs.

    Args:
        cluster: ``ray.cluster_resources()``.
        engine: the job's engine, ``tflite`` or ``keras``.

    >>> actor_resources({"CPU": 32.0, "GPU": 4.0}, "keras"), actor_resources({"CPU": 32.0}, "keras")
    ((4, 1), (32, 0))
    >>> actor_resources({"CPU": 32.0, "GPU": 4.0}, "tflite")
    (32, 0)
    """
    gpus = int(cluster.get("GPU", 0))
    if engine == "keras" and gpus >= 1:
        return gpus, 1
    return max(1, int(cluster.get("CPU", 1) // RAY_CPUS_PER_ACTOR)), 0


def _paths_per_call(files: int, batch_size: int, actors: int) -> int:
    """Paths each actor call predicts: :data:`_CALL_BATCHES` batches, fewer when the job is too
    small to give every actor two calls.

    >>> _paths_per_call(1_000_000, 32, 64), _paths_per_call(300, 16, 2)
    (512, 75)
    """
    return max(1, min(batch_size * _CALL_BATCHES, math.ceil(files / (actors * 2))))


def predict_rows_on_ray(
    run, files: list[str], options: dict[str, Any], address: str | None = None
) -> Iterator[list[dict]]:
    """Prediction rows (``Prediction.to_dict()``) of ``files``, in input order, one block at a
    time, predicted by Ray Data actors.

    Args:
        run: the :class:`~imgclf.serving.predictor.Run`.
        files: image paths (already expanded, each once).
        options: ``top_k``, ``batch_size``, ``min_confidence``, ``threshold``, ``tta``.
        address: None (a local cluster of this machine's CPUs), ``auto`` or ``ray://HOST:PORT``.

    Raises:
        ConfigError: Ray is not installed, the cluster cannot be joined, or an option is invalid.
    """
    import_ray()
    if not files:
        return
    plan = _plan(run, files, options)
    with ray_cluster(address) as ray:
        actors, gpus = actor_resources(ray.cluster_resources(), plan.engine)
        per_call = _paths_per_call(len(files), options["batch_size"], actors)
        blocks = math.ceil(len(files) / per_call)  # one block, one actor call (and one retry)
        ds = _path_blocks(ray, files, per_call)
        ds = ds.map_batches(
            RayPredictor,
            fn_constructor_kwargs={"plan": plan},
            batch_size=None,  # a whole block per call: blocks of ~per_call rows, not merged
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(actors, blocks)),
            num_cpus=RAY_CPUS_PER_ACTOR,
            num_gpus=gpus,
            max_restarts=-1,
            max_task_retries=RAY_TASK_RETRIES,
        )
        # streamed: each block's rows reach the caller (its writer) as they come, in input order;
        # this process never holds more than the blocks in flight
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield table.to_pylist()


def _path_blocks(ray: Any, files: list[str], per_call: int) -> Any:
    """A Ray dataset of one ``path`` column, one block (one actor call) of ``per_call`` paths each,
    in order: Arrow string columns, ~the paths' own bytes (a list of row dicts would cost ~200
    bytes of this process's memory a path before the job starts)."""
    import pyarrow as pa

    return ray.data.from_arrow(
        [pa.table({"path": files[i : i + per_call]}) for i in range(0, len(files), per_call)]
    )
