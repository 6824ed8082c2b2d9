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
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="imgclf-mem-") as tmp:
        base = args.data or Path(tmp) / "data"
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
