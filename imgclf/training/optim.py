"""Optimizers and learning-rate schedules by name (``adam``, ``cosine``), built from Keras objects.

A Keras schedule is a function of ``optimizer.iterations``. On arrays that counts one per batch, but
on a ``tf.data`` stream of unknown length (every decoded-image stage: undecodable files are filtered
out) Keras counts one more iteration per epoch than there are batches, so a per-step schedule
drifts: the warm-up ends early and the cosine reaches 0 before the last epoch.
:func:`scheduled_optimizer` with ``known_length=False`` therefore sets the rate from the epoch and
batch number instead (:class:`EpochSchedule`), which is exact whatever the stream's length.
"""

from __future__ import annotations

import keras

from imgclf.options import OPTIMIZERS, SCHEDULES, check_choice

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "EpochSchedule",
    "make_optimizer",
    "schedule_callbacks",
    "scheduled_optimizer",
]


def _learning_rate(schedule: str, peak: float, steps_per_epoch: int, epochs: int):
    if schedule != "cosine":
        return peak  # "plateau" lowers it from a callback; "constant" keeps it
    warmup = steps_per_epoch if epochs > 2 else 0
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10 if warmup else peak,
        decay_steps=max(1, steps_per_epoch * epochs - warmup),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def _check(name: str, schedule: str) -> None:
    check_choice("optimizer", name, OPTIMIZERS)
    check_choice("lr_schedule", schedule, SCHEDULES)


def _layerwise(base: type) -> type:
    """``base`` with a learning rate scaled by ``backbone_scale`` for every variable not named in
    ``head_variables`` (discriminative learning rates: Keras 3 optimizers have one rate for all)."""

    class Layerwise(base):
        def __init__(
            self, *args, backbone_scale: float = 1.0, head_variables: tuple[str, ...] = (), **kwargs
        ):
            super().__init__(*args, **kwargs)
            self.backbone_scale, self.head_variables = float(backbone_scale), tuple(head_variables)

        def update_step(self, gradient, variable, learning_rate):
            # the TensorFlow backend passes the tf.Variable; the Keras variable (and its path) is
            # found by index
            keras_variable = self._trainable_variables[self._get_variable_index(variable)]
            if self.backbone_scale != 1.0 and keras_variable.path not in self.head_variables:
                learning_rate = learning_rate * self.backbone_scale
            return super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            return {
                **super().get_config(),
                "backbone_scale": self.backbone_scale,
                "head_variables": list(self.head_variables),
            }

    Layerwise.__name__ = Layerwise.__qualname__ = f"Layerwise{base.__name__}"
    return keras.saving.register_keras_serializable("imgclf")(Layerwise)


_CLASSES = {
    "adam": _layerwise(keras.optimizers.Adam),
    "sgd": _layerwise(keras.optimizers.SGD),
    "rmsprop": _layerwise(keras.optimizers.RMSprop),
}


def _optimizer(
    name: str,
    lr,
    backbone_scale: float = 1.0,
    head_variables: tuple[str, ...] = (),
    ema: float = 0.0,
) -> keras.optimizers.Optimizer:
    extra = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
    if ema:
        extra.update(
            use_ema=True, ema_momentum=ema
        )  # Keras keeps the average; SwapEMAWeights swaps it in
    if backbone_scale == 1.0:
        return _CLASSES[name].__mro__[1](lr, **extra)  # the plain Keras class
    return _CLASSES[name](lr, backbone_scale=backbone_scale, head_variables=head_variables, **extra)


def make_optimizer(
    name: str, schedule: str, peak: float, steps_per_epoch: int, epochs: int
) -> keras.optimizers.Optimizer:
    """``adam``/``sgd`` (Nesterov momentum 0.9)/``rmsprop`` with a ``cosine`` (one warm-up epoch),
    ``plateau`` or ``constant`` learning rate peaking at ``peak``, stepped by
    ``optimizer.iterations``.

    Args:
        name: one of :data:`OPTIMIZERS`.
        schedule: one of :data:`SCHEDULES`.
        peak: the highest learning rate.
        steps_per_epoch: batches per epoch (exact for arrays; see :func:`scheduled_optimizer`
        otherwise). epochs: epochs the schedule spans.
    """
    _check(name, schedule)
    return _optimizer(name, _learning_rate(schedule, peak, steps_per_epoch, epochs))


def scheduled_optimizer(
    name: str,
    schedule: str,
    peak: float,
    steps_per_epoch: int,
    epochs: int,
    known_length: bool = True,
    backbone_scale: float = 1.0,
    head_variables: tuple[str, ...] = (),
    ema: float = 0.0,
) -> tuple[keras.optimizers.Optimizer, list[keras.callbacks.Callback]]:
    """The optimizer of :func:`make_optimizer` and the callbacks its schedule needs in ``fit``.

    Args:
        name: one of :data:`OPTIMIZERS`.
        schedule: one of :data:`SCHEDULES`.
        peak: the highest learning rate.
        steps_per_epoch: batches per epoch (``ceil(n / batch_size)``).
        epochs: epochs the schedule spans.
        known_length: False for input whose length Keras cannot know (a filtered ``tf.data``
            stream): the cosine is then set per batch by an :class:`EpochSchedule` callback, which
            must come before any callback that logs the learning rate at the end of an epoch.
            backbone_scale: the rate of every variable outside ``head_variables`` is this fraction
            of the head's (discriminative learning rates); 1: one rate for all. head_variables:
            ``variable.path`` of the variables that train at the full rate. ema: momentum of an
            exponential moving average of the weights kept by the optimizer (Keras' ``use_ema``;
            ``keras.callbacks.SwapEMAWeights`` puts it in the model to validate and save); 0: none.
    """
    _check(name, schedule)
    lr = _learning_rate(schedule, peak, steps_per_epoch, epochs)
    if known_length or not isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return _optimizer(name, lr, backbone_scale, head_variables, ema), []
    return _optimizer(name, float(lr(0)), backbone_scale, head_variables, ema), [
        EpochSchedule(lr, steps_per_epoch)
    ]


class EpochSchedule(keras.callbacks.Callback):
    """Set the learning rate to ``schedule(epoch * steps_per_epoch + batch)`` before each batch, and
    to ``schedule((epoch + 1) * steps_per_epoch)`` at the end of each epoch (what the history logs),
    so an epoch ends exactly where the schedule says whatever ``optimizer.iterations`` counts.

    Args:
        schedule: a ``keras.optimizers.schedules.LearningRateSchedule`` (a function of the step).
        steps_per_epoch: batches per epoch; a longer epoch keeps its last step's rate.
    """

    def __init__(
        self, schedule: keras.optimizers.schedules.LearningRateSchedule, steps_per_epoch: int
    ):
        super().__init__()
        self.schedule, self.steps = schedule, max(1, int(steps_per_epoch))
        self._epoch = 0

    def _set(self, step: int) -> float:
        value = float(self.schedule(step))
        self.model.optimizer.learning_rate = value
        return value

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._set(self._epoch * self.steps + min(batch, self.steps - 1))

    def on_epoch_end(self, epoch, logs=None):
        value = self._set((epoch + 1) * self.steps)
        if logs is not None:
            logs["learning_rate"] = value


def schedule_callbacks(schedule: str, patience: int) -> list[keras.callbacks.Callback]:
    """The callbacks a schedule needs whatever the input: ``plateau`` lowers the rate when val loss
    stalls.

    Args:
        schedule: one of :data:`SCHEDULES`.
        patience: the early-stopping patience; the plateau waits half of it.
    """
    if schedule == "plateau":
        return [
            keras.callbacks.ReduceLROnPlateau(
                "val_loss", factor=0.3, patience=max(1, patience // 2), min_lr=1e-7
            )
        ]
    return []
