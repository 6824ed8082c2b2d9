"""Peak memory of ``imgclf train`` on 20,000 images against 2,000 (same model, size and epochs).

Each run is a child process (``python -m imgclf train``) with a fresh, empty ``$IMGCLF_CACHE``; its
peak resident memory is the child's own ``ru_maxrss`` (``os.wait4``), so nothing this script holds
is counted. The images are the small synthetic glyphs of ``bench_defaults.make_small`` (28 px
grayscale PNGs, 10 classes), generated once into ``--data`` (kept for the next call) or a temporary
folder. The issue's target: peak(20k) <= 1.3 x peak(2k)::

    .venv/bin/python bench/bench_memory.py --sizes 2000,20000 --data /tmp/imgclf-mem

A from-scratch model (decoded images every epoch, no feature cache), without the in-memory cache of
decoded images (``--cache-mb 0``, as for data over its budget) and with it::

    .venv/bin/python bench/bench_memory.py --model cnn --image-size 64 --cache-mb 0
    .venv/bin/python bench/bench_memory.py --model cnn --image-size 64

Just the decoded-image input of training, one epoch, no model (cheap): shuffled by a buffer of every
image (as before Stop 13) and by the file order (now), side by side in this checkout::

    .venv/bin/python bench/bench_memory.py --pipeline --image-size 128
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_defaults import make_small  # noqa: E402

# imgclf's command line, from ``--code`` when given: another checkout (e.g. ``git archive main``,
# for a before/after), ahead of the editable install's import hook, which would otherwise win
START = (
    "import sys; code = {code!r}\n"
    "if code:\n"
    "    sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in repr(f)]\n"
    "    sys.path.insert(0, code)\n"
    "from imgclf.cli import main\n"
    "import imgclf; print('imgclf from', imgclf.__file__, file=sys.stderr)\n"
    "sys.exit(main(sys.argv[1:]))"
)

# ``--pipeline``: one epoch of the training input of fit_dataset without a model — uncached decoded
# images shuffled as before (a shuffle buffer of every image) or as now (the file order)
PIPELINE = (
    "import sys\n"
    "from imgclf.data.decode import DecodeLog\n"
    "from imgclf.data.pipeline import batched, decoded_dataset, shuffled\n"
    "from imgclf.data.scan import scan_folder\n"
    "items = scan_folder(sys.argv[1]).items\n"
    "ds = decoded_dataset(items, int(sys.argv[2]), DecodeLog(), cache=False)\n"
    "if sys.argv[3] == 'buffer':\n"
    "    ds = batched(ds, 32, shuffle_seed=0, buffer=len(items))\n"
    "else:\n"
    "    ds = batched(shuffled(ds, 0), 32)\n"
    "print(sum(len(y) for _, y in ds), 'images')\n"
)


def data_folder(base: Path, images: int) -> Path:
    """``base/<images>``, generated once (a ``.done`` marker says it is complete)."""
    folder = base / str(images)
    if not (folder / ".done").exists():
        make_small(folder, images, seed=images)
        (folder / ".done").write_text("")
    return folder


def peak_of_train(folder: Path, args: argparse.Namespace, work: Path) -> tuple[float, float, int]:
    """(peak resident MB, CPU seconds, exit status) of one ``imgclf train`` child."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    env = {**os.environ, "IMGCLF_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [
        sys.executable,
        "-c",
        START.format(code=str(args.code or "")),
        "train",
        str(folder),
        "--model",
        args.model,
        "--image-size",
        str(args.image_size),
        "--epochs",
        str(args.epochs),
        "--head-epochs",
        str(args.epochs),
        "--cache-mb",
        str(args.cache_mb),
        "--no-report",
        "--quiet",
        "--out",
        str(work / "runs"),
    ]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, child.returncode


def peak_of_pipeline(folder: Path, size: int, shuffle: str) -> tuple[float, float, int]:
    """(peak resident MB, CPU seconds, exit status) of one child reading the epoch of
    :data:`PIPELINE` (``shuffle``: ``buffer`` or ``files``)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-c", PIPELINE, str(folder), str(size), shuffle]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    return (
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
    )


def pipeline_table(args: argparse.Namespace, sizes: list[int], base: Path) -> None:
    """Peak memory of an epoch of decoded images, shuffled both ways, side by side."""
    peaks = {}
    for n in sizes:
        folder = data_folder(base, n)
        for shuffle in ("buffer", "files"):
            load = os.getloadavg()[0]
            peak, cpu, rc = peak_of_pipeline(folder, args.image_size, shuffle)
            peaks[n, shuffle] = peak
            print(
                f"pipeline shuffle={shuffle} images={n} size={args.image_size} "
                f"peak_rss_mb={peak:.0f} cpu_s={cpu:.0f} load={load:.1f} exit={rc}",
                flush=True,
            )
    lo, hi = min(sizes), max(sizes)
    for shuffle in ("buffer", "files"):
        ratio = peaks[hi, shuffle] / peaks[lo, shuffle]
        print(f"pipeline shuffle={shuffle} peak({hi}) / peak({lo}) = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000", help="image counts, comma-separated")
    parser.add_argument("--data", type=Path, default=None, help="where the images are kept")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=1, help="head and fine-tuning epochs")
    parser.add_argument(
        "--cache-mb", type=int, default=4096, help="imgclf's --cache-mb (0: decode every epoch)"
    )
    parser.add_argument("--code", type=Path, default=None, help="run imgclf from this folder")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="no training: one epoch of the decoded-image input, shuffled before (a buffer of "
        "every image) and now (the file order), --image-size px, no cache",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="imgclf-mem-") as tmp:
        base = args.data or Path(tmp) / "data"
        if args.pipeline:
            return pipeline_table(args, sizes, base)
        peaks = {}
        for n in sizes:
            folder = data_folder(base, n)
            load = os.getloadavg()[0]
            t = time.perf_counter()
            peak, cpu, rc = peak_of_train(folder, args, Path(tmp))
            peaks[n] = peak
            print(
                f"code={args.code or 'this'} images={n} model={args.model} "
                f"size={args.image_size} epochs={args.epochs} cache_mb={args.cache_mb} "
                f"peak_rss_mb={peak:.0f} cpu_s={cpu:.0f} wall_s={time.perf_counter() - t:.0f} "
                f"load={load:.1f} exit={rc}",
                flush=True,
            )
        if len(sizes) > 1:
            lo, hi = min(sizes), max(sizes)
            print(
                f"code={args.code or 'this'} peak({hi}) / peak({lo}) = "
                f"{peaks[hi] / peaks[lo]:.2f} (target <= 1.3)"
            )


if __name__ == "__main__":
    main()
