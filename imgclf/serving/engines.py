"""How ``imgclf predict`` and ``imgclf serve`` run a run's model: Keras, or a TFLite copy of it.

``auto`` (the default, :data:`imgclf.config.PREDICT_ENGINE`) converts the run's model to TFLite
float32 once (for a server, or a job of at least :data:`imgclf.config.AUTO_CONVERT_MIN_IMAGES`
images: converting costs about as much CPU as predicting a few thousand images with Keras saves),
with :func:`imgclf.serving.export.export_run` — the same converter and the same parity
check on the run's held-out test images as ``imgclf export`` — and predicts through it (XNNPACK:
about half the CPU time of Keras' forward pass per image, docs/benchmarks.md). Below
:data:`imgclf.serving.export.MIN_AGREEMENT`, or when the check cannot run (no test images left on
disk, the converter fails), it says so once and uses Keras. ``tflite`` insists (a problem is an
error); ``keras`` never converts.

The copy is cached in ``RUN/engines/<key>/`` (``$IMGCLF_CACHE/engines/<key>/`` when the run folder
is read-only); the key hashes ``model.keras`` and the TensorFlow version, so a changed model never
uses a stale copy, and an older copy is deleted when a new one is written. A failed parity check is
cached too (``parity.json``), so the conversion is not retried on every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from imgclf.config import AUTO_CONVERT_MIN_IMAGES, ENGINES, cache_root
from imgclf.errors import ImgclfError, ModelError, invalid_value
from imgclf.evaluation.inference import Engine, KerasEngine

__all__ = ["ENGINES", "engine_for", "engine_key", "cached_tflite"]

ENGINE_DIR = "engines"  # under the run folder, or under the user cache when the run is read-only
_CHUNK = 1 << 20


def _say(message: str) -> None:
    print(f"imgclf: {message}", file=sys.stderr, flush=True)


def engine_key(model_file: Path) -> str:
    """The cache key of ``model_file``'s TFLite copy: its content hash and the TensorFlow version.

    Args:
        model_file: the run's ``model.keras``.
    """
    import tensorflow as tf

    digest = hashlib.sha256()
    with open(model_file, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return f"{digest.hexdigest()[:20]}-tf{tf.__version__}"


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, not guessed: root ignores permission
    bits)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def _read_parity(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "parity.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cached_tflite(
    run, say: Callable[[str], None] = _say, convert: bool = True
) -> tuple[Path, dict] | None:
    """The run's TFLite float32 copy and its parity record, converting and checking it the first
    time.

    Args:
        run: a :class:`imgclf.serving.predictor.Run`.
        say: where the one-line note about a first conversion goes.
        convert: False: return None instead of converting when there is no copy yet.

    Raises:
        ImgclfError: the conversion or its parity check failed (no test images on disk, converter
        error).
    """
    from imgclf.runs import RunFiles
    from imgclf.serving.export import export_run

    key = engine_key(run.path / RunFiles.MODEL)
    bases = [run.path / ENGINE_DIR, cache_root() / ENGINE_DIR]
    for base in bases:
        parity = _read_parity(base / key)
        if parity is not None:
            return Path(base / key / Path(parity["path"]).name), parity
    if not convert:
        return None
    base = next((b for b in bases if _writable(b)), None)
    if base is None:
        raise ModelError(
            f"nowhere to keep a TFLite copy: neither {bases[0]} nor {bases[1]} is writable"
        )
    say(
        "converting the model to TFLite once for faster prediction (checked against "
        f"Keras, kept in {base / key})"
    )
    tmp = base / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    export_run(run, "tflite", "float32", out=tmp)
    for old in (
        base.iterdir() if base == bases[0] else ()
    ):  # the run's copies of an earlier model.keras
        if old.is_dir() and old.name != key and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    try:
        tmp.rename(base / key)
    except OSError:  # another process got there first: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    parity = _read_parity(base / key) or {}
    return base / key / Path(parity.get("path", "model_float32.tflite")).name, parity


def engine_for(
    run, engine: str, images: int | None = None, say: Callable[[str], None] = _say
) -> Engine | None:
    """The engine ``run`` predicts with.

    Args:
        run: a :class:`imgclf.serving.predictor.Run`.
        engine: ``auto`` (TFLite when its parity check passes, else Keras, saying why once),
            ``tflite`` (TFLite or an error) or ``keras``.
        images: how many images the job has (None: unknown, e.g. a server). With ``auto``, a job
            under :data:`AUTO_CONVERT_MIN_IMAGES` and no TFLite copy yet gets None: use Keras this
            time, and decide again for the next job.
        say: where notes go (a first conversion, a fallback to Keras).

    Raises:
        ConfigError: ``engine`` is not one of :data:`ENGINES`.
        ModelError: ``engine="tflite"`` and the TFLite copy cannot be made or disagrees with Keras.
    """
    from imgclf.serving.export import MIN_AGREEMENT, TFLiteEngine

    if engine not in ENGINES:
        raise invalid_value("engine", engine, ", ".join(ENGINES))
    if engine == "keras":
        return KerasEngine(run.model)
    small = engine == "auto" and images is not None and images < AUTO_CONVERT_MIN_IMAGES
    try:
        found = cached_tflite(run, say, convert=not small)
        if found is None:
            return None
        path, parity = found
    except ImgclfError as exc:
        if engine == "tflite":
            raise
        say(f"predicting with Keras: no checked TFLite copy of the model ({exc})")
        return KerasEngine(run.model)
    if parity.get("agreement", 0.0) < MIN_AGREEMENT or not path.exists():
        why = (
            f"the TFLite copy agrees with Keras on {parity.get('agreement', 0.0):.2%} of "
            f"{parity.get('n', 0)} test images, below {MIN_AGREEMENT:.0%}"
        )
        if engine == "tflite":
            raise ModelError(f"{why}; use --engine keras")
        say(f"predicting with Keras: {why}")
        return KerasEngine(run.model)
    return TFLiteEngine(path)
