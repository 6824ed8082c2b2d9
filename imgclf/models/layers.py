"""Custom layers saved inside imgclf models (registered so ``keras.saving.load_model`` finds
them)."""

from __future__ import annotations

import keras

__all__ = ["ImagenetPreprocess"]

_MODES = ("tf", "torch", "caffe")


@keras.saving.register_keras_serializable(package="imgclf")
class ImagenetPreprocess(keras.layers.Layer):
    """Raw RGB pixels in [0, 255] → the input a ``keras.applications`` backbone was trained on.

    Delegates to ``keras.applications.imagenet_utils.preprocess_input``; keeping it a layer puts the
    preprocessing inside the saved model, so nobody re-types it at prediction time.
    """

    def __init__(self, mode: str = "tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(
                f"Invalid value received for argument `mode`. Expected one of {_MODES}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        return keras.applications.imagenet_utils.preprocess_input(inputs, mode=self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
