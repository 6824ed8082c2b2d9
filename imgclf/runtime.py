"""Process set-up that must happen before TensorFlow is first imported for a command.

Importing :mod:`imgclf` changes nothing in the environment; the CLI and the API functions that load
TensorFlow (``train``, ``load_run`` and what uses them) call :func:`quiet_tensorflow_logs` first.
"""

from __future__ import annotations

import os

__all__ = ["quiet_tensorflow_logs"]


def quiet_tensorflow_logs() -> None:
    """Silence TensorFlow's C++ start-up chatter (not for users), unless the user set the levels.
    Takes effect only before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
