"""The single source of defaults: one dataclass feeds the CLI, the Python API and the saved run.

Override order, applied in :func:`imgclf.config_files.resolve_config` and nowhere else:
dataclass defaults < ``--config file.yaml`` < command-line flags / keyword arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from imgclf.config_checks import check_config, parse_duration
from imgclf.constants import (
    AUTO_MODEL,
    AUTO_SCRATCH_MAX_SIDE,
    AUTO_SCRATCH_MIN_IMAGES,
    CACHE_MAX_GB,
    DEVICES_AUTO,
)

__all__ = ["TrainConfig", "parse_duration"]


def _opt(default: Any, help: str, *, cli: bool = True, aliases: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli, "aliases": aliases})


@dataclass
class TrainConfig:
    """Everything that decides how a run is trained. Saved as ``config.yaml`` in every run."""

    data: str = _opt(
        "",
        "folder of class sub-folders, or with train/ and val/ (or validation/) and optional test/",
        cli=False,
    )
    model: str = _opt(
        AUTO_MODEL,
        "model name from the registry (`imgclf models`), a path to a .keras backbone, or "
        "'auto': the cnn at native "
        f"size for small pictures (median side <= {AUTO_SCRATCH_MAX_SIDE} px) in large "
        f"numbers (>= {AUTO_SCRATCH_MIN_IMAGES:,}), "
        "EfficientNet-Lite1/Lite2 for photos that reach their size when --time allows, "
        "else EfficientNet-Lite0",
    )
    image_size: int | None = _opt(
        None,
        "square input size in pixels; when not given, chosen from the data's image sizes "
        "within the model's range",
    )
    epochs: int | None = _opt(
        None,
        "maximum epochs of the main stage (fine-tuning, or all training for cnn); when "
        "not given, the model's own (8 fine-tuning, 25 cnn)",
    )
    head_epochs: int = _opt(
        30,
        "maximum epochs of the frozen-backbone head stage (pretrained models; runs on "
        "cached features)",
    )
    batch_size: int = _opt(32, "images per training step")
    learning_rate: float = _opt(1e-3, "learning rate of the head stage and of from-scratch models")
    fine_tune_learning_rate: float = _opt(
        5e-4, "peak learning rate when the pretrained backbone is unfrozen"
    )
    backbone_lr_scale: float = _opt(
        1.0,
        "fine-tuning: the backbone's learning rate as a fraction of the head's "
        "(discriminative rates)",
    )
    fine_tune: str = _opt(
        "auto",
        "after the head stage, unfreeze the backbone's top: 'auto' (the model's "
        "recommended depth), 'all', 'none', "
        "or N (the last N layers); "
        "BatchNorm stays frozen",
    )
    fine_tune_from: str | None = _opt(
        None, "unfreeze from this backbone layer name onwards (overrides --fine-tune)"
    )
    views: int = _opt(
        2,
        "images seen per training image in the cached stages: the original plus views-1 "
        "augmented copies",
    )
    feature_cache: bool = _opt(
        True,
        "keep frozen-backbone activations on disk ($IMGCLF_CACHE or ~/.cache/imgclf) for "
        "reuse; at most "
        f"$IMGCLF_CACHE_MAX_GB (default {CACHE_MAX_GB:g}) GB, least recently used first out",
    )
    optimizer: str = _opt("adam", "adam, sgd (Nesterov momentum 0.9) or rmsprop")
    fine_tune_optimizer: str | None = _opt(
        None, "optimizer of the fine-tuning stage (adam, sgd or rmsprop); default: --optimizer"
    )
    lr_schedule: str = _opt(
        "cosine",
        "cosine (one warm-up epoch, then cosine decay), plateau (reduce on plateau) or constant",
    )
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy loss, in [0, 0.5)")
    ema: float = _opt(
        0.0,
        "fine-tuning: keep an exponential moving average of the weights with this "
        "momentum (e.g. 0.99), validate and "
        "checkpoint it, and save it as the model; 0: off",
    )
    stop_at_accuracy: float | None = _opt(
        None, "stop training once validation accuracy reaches this value (0-1]"
    )
    time_budget: str | None = _opt(
        None,
        "wall-time budget such as 90s, 5m or 1h: picks the longest schedule that fits "
        "and stops in time",
        aliases=("--time",),
    )
    tensorboard: bool = _opt(False, "write TensorBoard logs to RUN/tensorboard")
    report: bool = _opt(
        True,
        "write report.html and its figures after training; --no-report skips them (quick "
        "experiments) and "
        "`imgclf report RUN` builds them later",
    )
    deterministic: bool = _opt(
        False,
        "TensorFlow op determinism (bit-identical runs everywhere; serialises the input "
        "pipeline, so slower). "
        "Seeded CPU runs repeat without it",
    )
    augment: str = _opt(
        "flip,rotate=10,zoom=0.1",
        "training-only augmentation: 'none' or a comma list of flip, vflip, rotate=DEG, "
        "zoom=F, shift=F, "
        "brightness=F, contrast=F, hue=F, saturation=F, grayscale=P, blur=P, noise=SIGMA, "
        "randaugment=F (Keras' RandAugment, 2 operations at strength F), and at most one "
        "of mixup=ALPHA, cutmix=F (mix pairs of a batch and their labels; on cached "
        "activations, the activations)",
    )
    precise_bn: int = _opt(
        20,
        "from-scratch models: before each validation, re-estimate BatchNorm's statistics "
        "as their average over this "
        "many training batches (precise BN: cures the epoch-to-epoch swing of validation "
        "accuracy); 0: off",
    )
    patience: int = _opt(4, "epochs without validation improvement before early stopping")
    min_delta: float = _opt(
        1e-3,
        "smallest decrease of validation loss that counts as an improvement for early stopping",
    )
    skip_fine_tune_loss: float = _opt(
        0.01,
        "skip fine-tuning when the head gets all validation images right at a val loss "
        "below this; 0: never",
    )
    seed: int = _opt(42, "random seed of the split, shuffling and weight initialisation")
    val_fraction: float = _opt(
        0.2, "fraction of each class held out for validation (model selection)"
    )
    test_fraction: float = _opt(
        0.1, "fraction of each class held out for the final test; never seen in training"
    )
    out: str = _opt("runs", "folder that receives run folders")
    name: str | None = _opt(
        None, "run folder name; default: the data folder's name; never overwrites (name2, name3, …)"
    )
    cache_mb: int = _opt(
        4096, "memory budget for caching decoded images (MiB); 0 disables the cache"
    )
    group_by: str | None = _opt(
        None,
        "keep groups whole in the split: a regex on the path relative to the data folder "
        "(its first group, or the "
        "whole match, names the group) or a CSV file with columns path,group",
    )
    duplicates_together: bool = _opt(
        True, "keep each cluster of exact/near-duplicate images on one side of the split"
    )
    class_weight: str = _opt(
        "none", "'auto': weight the loss by inverse class frequency of the train split; 'none'"
    )
    test_dir: str | None = _opt(
        None,
        "a separate labelled folder (<class>/<images>) from another source, scored after "
        "training beside the internal "
        "test split: both accuracies are shown with their intervals, with a warning when "
        "they differ beyond chance",
    )
    drop_label_issues: bool = _opt(
        False,
        "before training, find the training and validation images whose label is likely wrong "
        "(as `imgclf doctor --labels` does, out of fold) and leave them out of the run; listed "
        "in the run's label_issues.csv and report. The test images are never checked",
    )
    ensemble: int = _opt(
        1,
        "train N models on the same split (seeds --seed, --seed + 1, …) and save one model that "
        "averages their probabilities: steadier on pictures from other sources, at N times the "
        "training and prediction time (docs/benchmarks.md)",
    )
    # scale-out and precision (imgclf.training.distribution); TF_CONFIG with several workers
    # trains with MultiWorkerMirroredStrategy instead
    devices: str = _opt(
        DEVICES_AUTO,
        "devices to train on with tf.distribute.MirroredStrategy: 'auto' (every visible GPU; "
        "without a GPU, the CPU as today) or N (N GPUs; on a machine without a GPU, the CPU "
        "split into N logical devices). With N > 1, --batch-size is per device and the "
        "learning rates are scaled by N (docs/scaling.md)",
    )
    mixed_precision: str = _opt(
        "auto",
        "mixed_float16 training: 'auto' (on where a GPU of compute capability >= 7.0 is "
        "present), 'on' (any GPU), 'off'; the output layer stays float32",
    )
    allow_missing_test_classes: bool = _opt(
        False,
        "train even when a pre-split test/ folder lacks a class (its test metrics then "
        "have support 0)",
    )
    head_features: str = _opt(
        "auto", "head reads the frozen backbone's 'last' layer, 'multi' depths (Lite0) or 'auto'"
    )

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`~imgclf.errors.InvalidValue` naming the first bad one
        (:func:`imgclf.config_checks.check_config`). Returns the config itself."""
        check_config(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
