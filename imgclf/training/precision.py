"""The mixed-precision policy: ``mixed_float16`` where a GPU gains from it (``--mixed-precision``);
the output layer stays float32 (:func:`imgclf.models.classifier.build_classifier`)."""

from __future__ import annotations

from imgclf.constants import MIXED_PRECISION_MIN_CAPABILITY

__all__ = ["choose_precision", "precision_policy"]


def precision_policy(setting: str, gpu_details: list[dict]) -> str:
    """The Keras dtype policy: ``mixed_float16`` where a GPU can use it, else ``float32``.

    Args:
        setting: ``--mixed-precision``: ``auto`` (on when every GPU has compute capability >=
            :data:`~imgclf.constants.MIXED_PRECISION_MIN_CAPABILITY`, i.e. tensor cores), ``on``
            (any GPU), ``off``. Without a GPU it is always ``float32`` (float16 on a CPU is slower).
        gpu_details: ``tf.config.experimental.get_device_details`` of each visible GPU.
    """
    if setting == "off" or not gpu_details:
        return "float32"
    if setting == "on":
        return "mixed_float16"
    capable = all(
        tuple(d.get("compute_capability") or (0, 0)) >= MIXED_PRECISION_MIN_CAPABILITY
        for d in gpu_details
    )
    return "mixed_float16" if capable else "float32"


def choose_precision(setting: str) -> str:
    """:func:`precision_policy` for the GPUs visible here.

    Args:
        setting: ``--mixed-precision``.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return precision_policy(setting, [tf.config.experimental.get_device_details(g) for g in gpus])
