"""Several trained classifiers as one model: the image in, their probabilities averaged out.

``imgclf train --ensemble N`` trains N classifiers on the same split with seeds ``seed``,
``seed + 1``, … (other initial heads, augmented views and batch order) and saves this model as the
run's ``model.keras``, so that prediction, calibration, evaluation, serving and every export read
one model as for any run. Each member keeps its own backbone: N times the forward passes.
"""

from __future__ import annotations

import keras

from imgclf.constants import ENSEMBLE_NAME
from imgclf.models.classifier import inference_model

__all__ = ["average_models", "ensemble_members"]


def average_models(models: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of ``models``' outputs (their probabilities), each
    without its training-only augmentation block.

    Args:
        models: two or more classifiers with the same input size and classes.
    """
    members = [inference_model(model) for model in models]
    inputs = {tuple(m.input_shape[1:]) for m in members}
    outputs = {tuple(m.output_shape[1:]) for m in members}
    if len(members) < 2 or len(inputs) > 1 or len(outputs) > 1:
        raise ValueError(
            f"cannot average {len(members)} model(s) with inputs {inputs} and outputs {outputs}"
        )
    image = keras.Input(members[0].input_shape[1:], name="image")
    probabilities = [
        # each member under a name of its own: nested models must be told apart
        keras.Model(m.input, m.output, name=f"member{k}")(image)
        for k, m in enumerate(members, 1)
    ]
    mean = keras.layers.Average(name="average", dtype="float32")(probabilities)
    return keras.Model(image, mean, name=ENSEMBLE_NAME)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The classifiers an ensemble averages, in order; ``[model]`` for any other model.

    Args:
        model: a run's model.
    """
    if model.name != ENSEMBLE_NAME:
        return [model]
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
