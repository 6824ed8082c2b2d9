"""Which engine ``imgclf predict`` and ``imgclf serve`` run a run's model on: Keras, or a cached,
parity-checked TFLite copy of it.

``auto`` (the default, :data:`imgclf.constants.PREDICT_ENGINE`) converts the run's model to TFLite
float32 once (for a server, or a job of at least :data:`imgclf.constants.AUTO_CONVERT_MIN_IMAGES`
images: converting costs about as much CPU as predicting a few thousand images with Keras saves),
with the converter and the parity check ``imgclf export`` uses, and predicts through it (XNNPACK:
about half the CPU time of Keras' forward pass per image, docs/benchmarks.md). Below
:data:`imgclf.engines.parity.MIN_AGREEMENT`, or when the check cannot run (no test images left on
disk, the converter fails), it says so once and uses Keras. ``tflite`` insists (a problem is an
error); ``keras`` never converts.

The copy is kept in ``RUN/engines/<key>/`` (in the cache's ``engines/`` part when the run folder is
read-only), written once by :func:`imgclf.cache.build_once`; the key hashes ``model.keras`` and the
TensorFlow version, so a changed model never uses a stale copy, and an older copy is deleted when a
new one is written. A failed parity check is kept too (``parity.json``), so the conversion is not
retried on every call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from imgclf.cache import STAGING, build_once, part_folder
from imgclf.constants import AUTO_CONVERT_MIN_IMAGES, ENGINES
from imgclf.engines.base import Engine, TrainedRun
from imgclf.engines.keras_engine import KerasEngine
from imgclf.engines.parity import MIN_AGREEMENT, check_parity, read_parity, write_parity
from imgclf.engines.tflite_engine import TFLiteEngine, convert_tflite
from imgclf.errors import ImgclfError, ModelError, invalid_value
from imgclf.runs import RunFiles

LOG = logging.getLogger(__name__)

__all__ = ["ENGINE_DIR", "cached_tflite", "engine_for", "engine_key"]

ENGINE_DIR = "engines"  # under the run folder; the cache's part of the same name otherwise
TFLITE_FILE = "model_float32.tflite"
_CHUNK = 1 << 20


def _say(message: str) -> None:
    LOG.warning(message)  # the command line shows it on stderr after "imgclf: "


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


def _convert(run: TrainedRun, folder: Path) -> None:
    """Write the TFLite float32 copy, its parity record and labels into ``folder``."""
    path = folder / TFLITE_FILE
    path.write_bytes(convert_tflite(run.model))
    write_parity(folder, check_parity(run, TFLiteEngine(path).raw, "tflite float32", path), run)


def _drop_older(base: Path, key: str) -> None:
    """Delete the run's copies of an earlier ``model.keras`` (never a copy being written)."""
    for old in base.iterdir():
        if old.is_dir() and old.name != key and not old.name.startswith((".", STAGING)):
            shutil.rmtree(old, ignore_errors=True)


def cached_tflite(
    run: TrainedRun, say: Callable[[str], None] = _say, convert: bool = True
) -> tuple[Path, dict] | None:
    """The run's TFLite float32 copy and its parity record, converting and checking it the first
    time.

    Args:
        run: the run.
        say: where the one-line note about a first conversion goes.
        convert: False: return None instead of converting when there is no copy yet.

    Raises:
        ImgclfError: the conversion or its parity check failed (no test images on disk, converter
            error).
    """
    key = engine_key(run.path / RunFiles.MODEL)
    bases = [run.path / ENGINE_DIR, part_folder(ENGINE_DIR)]
    for base in bases:
        parity = read_parity(base / key)
        if parity is not None:
            return base / key / Path(parity.get("path", TFLITE_FILE)).name, parity
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
    try:
        entry = build_once(base, key, lambda folder: _convert(run, folder))
    except ImgclfError:
        raise
    except Exception as exc:  # noqa: BLE001  (the converter raises anything; the user gets a line)
        raise ModelError(f"TFLite conversion failed: {_first_line(exc)}") from exc
    if base == bases[0]:
        _drop_older(base, key)
    parity = read_parity(entry) or {}
    return entry / Path(parity.get("path", TFLITE_FILE)).name, parity


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def engine_for(
    run: TrainedRun, engine: str, images: int | None = None, say: Callable[[str], None] = _say
) -> Engine | None:
    """The engine ``run`` predicts with.

    Args:
        run: the run.
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
    if engine not in ENGINES:
        raise invalid_value("engine", engine, ", ".join(ENGINES))
    if engine == "keras":
        return KerasEngine(run.model)
    small = engine == "auto" and images is not None and images < AUTO_CONVERT_MIN_IMAGES
    try:
        found = cached_tflite(run, say, convert=not small)
    except ImgclfError as exc:
        if engine == "tflite":
            raise
        say(f"predicting with Keras: no checked TFLite copy of the model ({exc})")
        return KerasEngine(run.model)
    if found is None:
        return None
    path, parity = found
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
