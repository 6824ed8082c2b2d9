"""The fixed values of imgclf's subsystems that are not options of a run, each beside the
measurement or reason it comes from. The options and their defaults are
:class:`imgclf.config.TrainConfig`'s.
"""

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

# imgclf train --ensemble N (imgclf.models.ensemble): the saved model's name, which marks it
ENSEMBLE_NAME = "ensemble"
