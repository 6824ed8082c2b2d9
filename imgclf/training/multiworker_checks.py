"""What multi-worker training (``TF_CONFIG`` naming several workers) supports, and the one error
for what it does not: checked before any image is read (:func:`check_multi_worker_data`) and once
the run's model and plan are known (:func:`check_multi_worker`). The training itself is
:mod:`imgclf.training.multiworker`."""

from __future__ import annotations

from imgclf.config import TrainConfig
from imgclf.errors import ConfigError

__all__ = ["check_multi_worker", "check_multi_worker_data"]


def check_multi_worker(cfg: TrainConfig, pretrained: bool, cached: bool) -> None:
    """Raise a ConfigError for what multi-worker training does not support.

    Args:
        cfg: the run's options.
        pretrained: the model has a pretrained backbone (from-scratch models are not supported).
        cached: its fine-tuning (if any) runs on cached activations.
    """
    unsupported = [
        (not pretrained, "a from-scratch model (--model cnn)"),
        (not cached, "fine-tuning on decoded images (--fine-tune all, or no cache cut)"),
        (cfg.ema > 0, "--ema"),
        ("mixup" in cfg.augment or "cutmix" in cfg.augment, "--augment mixup/cutmix"),
        (cfg.lr_schedule == "plateau", "--lr-schedule plateau"),
    ]
    for bad, what in unsupported:
        if bad:
            raise _unsupported(
                f"{what}; it trains a pretrained backbone's head and fine-tunes its top on "
                "cached activations (docs/scaling.md)"
            )


def check_multi_worker_data(cfg: TrainConfig) -> None:
    """Raise a ConfigError, before any image is read, for options a multi-worker run cannot
    carry out: several models (``--ensemble``), or images each worker would choose on its own
    (``--drop-label-issues``).

    Args:
        cfg: the run's options.
    """
    if cfg.ensemble > 1:
        raise _unsupported(
            "--ensemble: it trains one model over the workers; train the members on one machine"
        )
    if cfg.drop_label_issues:
        raise _unsupported(
            "--drop-label-issues: each worker would check the labels on its own and could leave "
            "out other images than the chief; find them first with `imgclf doctor DATA --labels "
            "--out DIR`, or train on one machine"
        )


def _unsupported(what: str) -> ConfigError:
    """The one error of an option multi-worker training refuses: ``what`` names it and why."""
    return ConfigError(
        f"multi-worker training (TF_CONFIG names several workers) does not support {what}"
    )
