"""Training on several machines (``TF_CONFIG``): ``tf.distribute.MultiWorkerMirroredStrategy``
with a training step of our own, because Keras 3's ``fit`` fails under that strategy
(keras-team/keras#20585).

The step is the textbook custom loop: a ``GradientTape`` over the Keras model, the per-example
loss (class-weighted) averaged over the global batch, the Keras optimizer (which all-reduces the
gradients over the workers), run on every replica by ``strategy.run`` and summed by
``strategy.reduce``. Everything around it is the single-host run's own: the model, compiled
optimizer and schedule (:meth:`Session.start_fit`), and the same Keras callbacks (history,
checkpoints, ``state.json``, early stopping, Ctrl-C), driven through
``keras.callbacks.CallbackList`` with the logs that ``fit`` would give them. Validation is computed
by every worker over its share and summed, so every worker sees the same logs and stops at the
same epoch.

Multi-worker runs train the stages on cached activations (a pretrained backbone's head and
fine-tuning of its top): :mod:`imgclf.training.multiworker_checks` refuses the rest with a clear
message. What
the workers must agree on (a resumed run's starting point, when a stage stops: early stopping,
``--time``'s deadline, Ctrl-C) is :mod:`imgclf.training.multiworker_control`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from imgclf.evaluation.metrics import Metrics
from imgclf.training.callbacks import RaiseInterrupt
from imgclf.training.finish import TrainResult
from imgclf.training.multiworker_control import Agreement
from imgclf.training.multiworker_input import epoch_order, worker_batches
from imgclf.training.session import Session
from imgclf.training.watchdog import Watchdog, collective_failure, lost_worker

__all__ = ["chief_values", "fit_arrays_multi_worker", "worker_result"]


def chief_values(strategy, tensors: list) -> list[np.ndarray]:
    """``tensors`` as the chief has them, on every worker: an all-reduce sum (float32) to which
    only the chief's first replica contributes. A collective: every worker calls it.

    Args:
        strategy: the multi-worker strategy.
        tensors: float tensors or variables' values, the same shapes on every worker.
    """

    def contribute():
        ctx = tf.distribute.get_replica_context()
        first = tf.cast(ctx.replica_id_in_sync_group == 0, tf.float32)
        return ctx.all_reduce("SUM", [tf.cast(t, tf.float32) * first for t in tensors])

    summed = strategy.experimental_local_results(tf.function(lambda: strategy.run(contribute))())
    return [value.numpy() for value in summed[0]]


def _from_chief(strategy, model: keras.Model) -> None:
    """Give every worker the chief's weights (:func:`chief_values`), so the workers start
    identical whatever each one loaded."""
    weights = model.weights
    floats = [i for i, w in enumerate(weights) if "float" in str(w.dtype)]
    chief = chief_values(strategy, [weights[i].value for i in floats])
    values = [w.numpy() for w in weights]
    for i, value in zip(floats, chief, strict=True):
        values[i] = value.astype(values[i].dtype)
    model.set_weights(values)


class _Steps:
    """The traced training and validation steps of one model under one strategy."""

    def __init__(self, strategy, model: keras.Model, loss: keras.losses.Loss, global_batch: int):
        self.strategy, self.model, self.global_batch = strategy, model, global_batch
        self.loss = type(loss).from_config({**loss.get_config(), "reduction": None})
        self.train = tf.function(lambda it: self._run(self._train_step, it))
        self.evaluate = tf.function(lambda it: self._run(self._eval_step, it))

    def _run(self, step, iterator):
        out = self.strategy.run(step, args=next(iterator))
        return [self.strategy.reduce("SUM", v, axis=None) for v in out]

    def _scores(self, x, t, w, training: bool):
        p = self.model(x, training=training)
        if p.shape[-1] == 1:  # a sigmoid output: targets (b,) → (b, 1)
            t = tf.reshape(tf.cast(t, p.dtype), (-1, 1))
            right = keras.metrics.binary_accuracy(t, p)
        elif len(t.shape) == len(p.shape):  # one-hot targets
            right = keras.metrics.categorical_accuracy(t, p)
        else:
            right = keras.metrics.sparse_categorical_accuracy(t, p)
        per = tf.cast(self.loss(t, p), tf.float32) * w
        return per, tf.reduce_sum(tf.cast(right, tf.float32) * tf.cast(w > 0, tf.float32))

    def _train_step(self, x, t, w):
        optimizer = self.model.optimizer
        with tf.GradientTape() as tape:
            per, right = self._scores(x, t, w, True)
            loss = tf.reduce_sum(per) / self.global_batch
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables, strict=True))
        return tf.reduce_sum(per), right, tf.reduce_sum(tf.cast(w > 0, tf.float32))

    def _eval_step(self, x, t, w):
        per, right = self._scores(x, t, tf.cast(w > 0, tf.float32), False)
        return tf.reduce_sum(per), right, tf.reduce_sum(tf.cast(w > 0, tf.float32))

    def epoch(self, step, data, local: int, b: int, callbacks, pet) -> tuple[float, float]:
        """(mean loss, accuracy) of one pass over ``data`` (``(order, x, t, w)``) with ``step``;
        ``callbacks``: a CallbackList told of each batch (None: none); ``pet``: called after
        each step (the watchdog)."""
        order = data[0]
        iterator = iter(
            self.strategy.distribute_datasets_from_function(worker_batches(*data, local, b))
        )
        total = np.zeros(3)
        for batch in range(len(order) // (b * self.strategy.num_replicas_in_sync)):
            if callbacks is not None:
                callbacks.on_train_batch_begin(batch)
            total += [float(v) for v in step(iterator)]
            pet()
            if callbacks is not None:
                callbacks.on_train_batch_end(batch, {"loss": total[0] / max(total[2], 1.0)})
        return total[0] / max(total[2], 1.0), total[1] / max(total[2], 1.0)


def _weights(session: Session, y: np.ndarray) -> np.ndarray:
    """Per-row loss weight: ``--class-weight`` of the row's class, else 1."""
    if session.class_weight is None:
        return np.ones(len(y), np.float32)
    table = np.array([session.class_weight[k] for k in range(session.num_classes)], np.float32)
    return table[np.asarray(y, np.int64)]


def fit_arrays_multi_worker(
    session: Session,
    model: keras.Model,
    stage: str,
    arrays: tuple,
    peak_lr: float,
    save: keras.Model | None = None,
    threshold: float | None = None,
    views: int = 1,
) -> None:
    """:func:`~imgclf.training.fitting.fit_arrays` under ``MultiWorkerMirroredStrategy``: a
    mirrored copy of ``model`` trains with the custom step; ``model`` gets its weights after every
    epoch, before the callbacks (which save it) run.

    Args:
        session: the run's trainer (its distribution is multi-worker).
        model: the model to train (not built under the strategy).
        stage: ``head`` or ``fine_tune``.
        arrays: ``(x, y, x_val, y_val)``; ``x``/``y`` hold ``views`` equal blocks; ``x`` and
            ``x_val`` arrays or :class:`~imgclf.training.shards.ShardedRows` (read a batch at a
            time).
        peak_lr: the stage's peak learning rate for one replica.
        save: as for ``fit_arrays``. threshold: as for ``fit_arrays``. views: cached views.
    """
    x, y, x_val, y_val = arrays
    dist = session.distribution
    n = len(x) // views
    epochs = session.head_epochs if stage == "head" else session.epochs
    watchdog = Watchdog(dist.timeout, f"worker {dist.worker} of {dist.workers}")
    try:
        with watchdog.waiting("sharing the model"), dist.strategy.scope():
            replica = keras.models.clone_model(model)
            replica.set_weights(model.get_weights())
            _from_chief(dist.strategy, replica)
            schedule = "constant" if stage == "head" else None
            batches = max(1, n // dist.global_batch(session.cfg.batch_size))
            start = session.start_fit(replica, stage, peak_lr, batches, epochs, schedule)
            steps = _Steps(dist.strategy, replica, session.loss, session.batch_size)
        # Ctrl-C: the workers' vote after each epoch raises it (every worker stops together)
        own = session.callbacks(stage, save=save, threshold=threshold)
        own = [c for c in own if not isinstance(c, RaiseInterrupt)]
        callbacks = keras.callbacks.CallbackList(own, model=model)
        # the callbacks read its learning rate; last.keras keeps its state for --resume (a compiled
        # model's file has the optimizer)
        model.compile(optimizer=replica.optimizer, loss=session.loss)
        model.stop_training = False
        targets = (session.targets(y), _weights(session, y), session.targets(y_val))
        agreement = Agreement(dist.strategy, session.interrupts, watchdog.who)
        loop = _Loop(session, steps, callbacks, watchdog, views)
        with agreement.deferred():
            loop.run(model, (x, x_val, y_val), targets, range(start, epochs), stage, agreement)
    except Exception as exc:  # a collective failed: a worker died or timed out
        failed = collective_failure(exc)
        if failed is None:
            raise
        raise lost_worker(dist, failed) from None
    session.end_stage()


class _Loop:
    """The epochs of one stage: train, validate, copy the weights into the model the callbacks
    save, tell the callbacks."""

    def __init__(self, session: Session, steps: _Steps, callbacks, watchdog: Watchdog, views: int):
        self.session, self.steps, self.callbacks = session, steps, callbacks
        self.watchdog, self.views = watchdog, views

    def run(self, model, arrays, targets, epochs: range, stage: str, agreement) -> None:
        (x, x_val, y_val), (t, w, t_val) = arrays, targets
        cfg, steps, callbacks = self.session.cfg, self.steps, self.callbacks
        size, b = self.session.batch_size, cfg.batch_size
        local = steps.strategy.num_replicas_in_sync // self.session.distribution.workers
        n, pet = len(x) // self.views, self.watchdog.pet
        w_val = np.ones(len(y_val), np.float32)
        logs: dict = {}
        callbacks.on_train_begin()
        for epoch in epochs:
            callbacks.on_epoch_begin(epoch)
            train = (epoch_order(n, self.views, cfg.seed, epoch, size, train=True), x, t, w)
            val_order = epoch_order(len(y_val), 1, cfg.seed, epoch, size, train=False)
            val = (val_order, x_val, t_val, w_val)
            with self.watchdog.waiting(f"{stage} epoch {epoch + 1}"):
                loss, accuracy = steps.epoch(steps.train, train, local, b, callbacks, pet)
                val_loss, val_accuracy = steps.epoch(steps.evaluate, val, local, b, None, pet)
            model.set_weights(steps.model.get_weights())
            lr = float(keras.ops.convert_to_numpy(steps.model.optimizer.learning_rate))
            logs = {"loss": loss, "accuracy": accuracy, "val_loss": val_loss}
            logs.update(val_accuracy=val_accuracy, learning_rate=lr)
            callbacks.on_epoch_end(epoch, logs)
            with self.watchdog.waiting(f"the end of {stage} epoch {epoch + 1}"):
                agreement.settle(model, epoch)  # any worker's stop is every worker's
            if model.stop_training:
                break
        callbacks.on_train_end(logs)


def worker_result(session: Session, setup, folder: str, interrupted: bool) -> TrainResult:
    """The end of a run on a worker other than the chief: its temporary folder removed, a result
    without metrics (the chief tests the model and writes the run folder). ``interrupted``: a
    Ctrl-C stopped every worker; the chief's exit status says so (130), this worker's is 0: its
    part is done, and ``--resume`` on every worker continues the run."""
    dist = session.distribution
    shutil.rmtree(folder, ignore_errors=True)
    done = "stopped with the others (Ctrl-C)" if interrupted else "trained"
    session.say(
        f"worker {dist.worker} of {dist.workers}: {done}; the chief (worker 0) tests the model "
        "and writes the run folder"
    )
    classes = list(setup.data.classes)
    metrics = Metrics(float("nan"), float("nan"), 0, "none", {}, [], classes)
    return TrainResult(Path(folder), session.cfg, classes, metrics, False, 0.0)
