"""The single source of defaults: one dataclass feeds the CLI, the Python API and the saved run.

Override order, applied in :func:`imgclf.config_files.resolve_config` and nowhere else:
dataclass defaults < ``--config file.yaml`` < command-line flags / keyword arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from imgclf.config_checks import check_config, parse_duration

__all__ = ["AUTO_MODEL", "CACHE_MAX_GB", "TrainConfig", "parse_duration"]


def _opt(default: Any, help: str, *, cli: bool = True, aliases: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "cli": cli, "aliases": aliases})


ENGINES = (
    "auto",
    "tflite",
    "keras",
)  # how predict and serve run the model (imgclf.engines.choose)
EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")  # imgclf export --format (imgclf.serving.export)
EXPORT_PRECISIONS = ("float32", "float16", "int8")  # imgclf export --precision (TFLite only)
PREDICT_ENGINE = (
    "auto"  # a parity-checked TFLite copy when it agrees with the Keras model, else Keras
)
# auto makes a first TFLite copy only for a job this big (or a server); see engines/choose.py
AUTO_CONVERT_MIN_IMAGES = 1000
CACHE_MAX_GB = 5.0  # the feature cache's size cap in GB when $IMGCLF_CACHE_MAX_GB is not set
# data larger than memory (imgclf.training.shards, imgclf.data.file_facts)
SHARD_ROWS = 1024  # images per feature-cache shard file
POOL_MIN_FILES = 500  # fewer files are checked in one process (bench_doctor.py: crossover)
AUTO_MODEL = (
    "auto"  # --model auto: imgclf.models.choose picks the model and size from the data and --time
)
AUTO_SCRATCH_MAX_SIDE = (
    48  # auto trains the from-scratch cnn on pictures this small (median side, px) …
)
# … when there are at least this many (fewer: Lite0 is affordable and was more accurate);
# docs/benchmarks.md
AUTO_SCRATCH_MIN_IMAGES = 10_000
# Tiny pictures (issue 21.3; docs/benchmarks.md "Tiny images in seconds"): auto trains the
# tiny_cnn at their native size when the median side is at most this, whatever their number …
AUTO_TINY_MAX_SIDE = 32
# … with these options where the user left them at their defaults: no augmentation (flip is wrong
# for digits and letters, and on the 8×8 digits the default flip,rotate,zoom cost accuracy: 99.2 %
# vs 99.7 % without), and no precise BN (20 eager batches before each of many short epochs: +1.5
# CPU-s an epoch on the digits, for no measured gain)
AUTO_TINY_SETTINGS = (("augment", "none"), ("precise_bn", 0))
# The doctor's near-duplicate test: pictures whose shorter side is under this are compared by
# their exact pixels, not a perceptual hash. pHash reads a 32×32 thumbnail: a smaller picture is
# upsampled into it (no detail of its own beyond its pixels), and its 64 bits then threshold nearly
# every frequency the picture has, so distinct 8×8 digits share hashes.
TINY_HASH_MIN_SIDE = 32

# imgclf predict --on ray (imgclf.serving.ray_predict): the prediction core as Ray Data actors
PREDICT_ON = ("local", "ray")  # where predict runs: this process, or a Ray cluster's actors
RAY_CPUS_PER_ACTOR = 1  # CPUs each actor holds: one model copy per core keeps every core busy
RAY_TASK_RETRIES = 3  # a batch whose actor died is retried this many times on a restarted actor
PARQUET_SHARD_ROWS = 100_000  # rows per Parquet file of --format parquet (each written whole)

# --time: the share of the budget the doctor may spend before training (decoding and hashing a
# random sample of the images; every image without --time), after a first probe of this many
DOCTOR_TIME_SHARE = 0.05
DOCTOR_PROBE_IMAGES = 32

# --devices and multi-worker training (imgclf.training.distribution)
DEVICES_AUTO = "auto"
MIXED_PRECISION_MIN_CAPABILITY = (7, 0)  # tensor cores: Volta and later
# how long a worker waits for the others in one collective operation before it fails with a
# clear error (a dead worker, a network cut); $IMGCLF_WORKER_TIMEOUT overrides it (seconds)
WORKER_TIMEOUT_S = 300
# what a run's config.yaml records beside its options (imgclf.runs.write_config): a config file
# may hold them (a run's config.yaml given to --config), and they are not options
RUN_RECORDS = ("distribution",)

# Test-time augmentation (imgclf.evaluation.tta; predict/evaluate --tta): no TTA unless asked (each
# view is one more forward pass); the zoomed and shifted views crop this fraction of the side
TTA = "none"
TTA_CROP = 0.9
TTA_MAX_VIEWS = 12  # image, mirror, centred zoom (+ mirror), four corner shifts (+ mirrors)

# imgclf doctor --labels (imgclf.training.label_issues; measured in docs/benchmarks.md, stops 12-13)
LABEL_ISSUE_FOLDS = 5
LABEL_ISSUE_MODEL = "efficientnet_lite0"
# features: these frozen layers' activations, average- and max-pooled, concatenated (precision
# 0.81 vs 0.46 for the last layer alone on the flipped digits: mid blocks keep shape detail)
LABEL_ISSUE_LAYERS = (
    "block6_expand_relu6",
    "block8_expand_relu6",
    "block10_expand_relu6",
    "block12_expand_relu6",
    "block14_expand_relu6",
    "block15_expand_relu6",
    "head_relu6",
)
LABEL_ISSUE_C = 0.001  # the logistic regressions' inverse L2 (standardised features): beat 3x, /3
# which images are flagged (confident_learning.FILTERS): recall 0.88-0.94, precision 0.87-0.95 on
# three flip seeds vs cleanlab's default prune_by_noise_rate's 0.82-0.85, 0.74-0.82
LABEL_ISSUE_FILTER = "low_self_confidence"
LABEL_ISSUE_OUT = "doctor"  # doctor --out: where label_issues.csv and its gallery go


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
