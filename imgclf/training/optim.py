"""Optimizers and learning-rate schedules by name — the notes' vocabulary, built from Keras objects."""

from __future__ import annotations

import keras

from imgclf.options import OPTIMIZERS, SCHEDULES, check_choice

__all__ = ["OPTIMIZERS", "SCHEDULES", "make_optimizer", "schedule_callbacks"]


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


def make_optimizer(name: str, schedule: str, peak: float, steps_per_epoch: int, epochs: int) -> keras.optimizers.Optimizer:
    """``adam``/``sgd`` (Nesterov momentum 0.9)/``rmsprop`` with a ``cosine`` (one warm-up epoch),
    ``plateau`` or ``constant`` learning rate peaking at ``peak``."""
    check_choice("optimizer", name, OPTIMIZERS)
    check_choice("lr_schedule", schedule, SCHEDULES)
    lr = _learning_rate(schedule, peak, steps_per_epoch, epochs)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    return keras.optimizers.Adam(lr)


def schedule_callbacks(schedule: str, patience: int) -> list[keras.callbacks.Callback]:
    if schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.3, patience=max(1, patience // 2), min_lr=1e-7)]
    return []
