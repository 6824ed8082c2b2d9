"""Input-pipeline benchmark: how fast do images reach the model? (images/second, higher is better)

For each folder it reads every image, decoded and resized to ``--image-size``, with

* ``keras``   ``keras.utils.image_dataset_from_directory(folder, image_size=…, batch_size=32)``,
              iterated as a user's ``fit`` would (epoch 1; it has no cache, so every epoch costs the
              same);
* ``imgclf``  ``decoded_dataset`` + ``batched`` (plain JPEGs decoded in the graph by
              ``tf.io.decode_jpeg(ratio=…)``, other files by Pillow; in-memory cache, shuffle,
              prefetch; uint8 batches, which the model casts to float32 itself; Keras hands over
              float32): epoch 1 and epoch 2 (from the cache);
* ``bare``    a loop on all cores that only decodes + resizes with the fastest decoder we have
              (Pillow with ``draft``: JPEG DCT-domain downscaling) — the practical limit;

and prints one line per method plus the ratios, and each method's process CPU time per image (on a
shared 2-core host the wall-clock rate of one run swings between one and two cores' worth). Folders:
the shared sign-language photos (small JPEGs) and a generated camera-size folder (the same photos
upscaled to 4000×3000, JPEG quality 90) in a temporary directory, deleted afterwards.

    .venv/bin/python bench/bench_pipeline.py [--data DIR] [--camera-images N] [--image-size N]
    [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "sign-language-digits"


def make_camera_folder(src: Path, dst: Path, n: int, size=(4000, 3000)) -> Path:
    """``n`` photos of ``src`` (spread over its classes) upscaled to ``size``, as JPEG quality
    90."""
    from PIL import Image

    classes = sorted(p for p in src.iterdir() if p.is_dir())
    per_class = max(1, n // len(classes))
    jobs = []
    for c in classes:
        files = sorted(f for f in c.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))[
            :per_class
        ]
        jobs += [(f, dst / c.name / f"{f.stem}.jpg") for f in files]
    for c in classes:
        (dst / c.name).mkdir(parents=True, exist_ok=True)

    def write(job):
        f, out = job
        with Image.open(f) as im:
            im.convert("RGB").resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=90)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        list(pool.map(write, jobs[:n]))
    return dst


CPU_MS: dict[
    str, list[float]
] = {}  # method → process CPU milliseconds per image, one entry per run


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, method: str = "") -> tuple[float, int]:
    """Wall seconds and images of ``fn()``; the process CPU time per image is kept under
    ``method``."""
    t, c = time.perf_counter(), cpu_seconds()
    n = fn()
    seconds = time.perf_counter() - t
    if method and n:
        CPU_MS.setdefault(method, []).append(1000 * (cpu_seconds() - c) / n)
    return seconds, n


def bench_keras(folder: Path, size: int, batch: int) -> float:
    import keras

    ds = keras.utils.image_dataset_from_directory(
        folder, image_size=(size, size), batch_size=batch, verbose=False
    )
    seconds, n = timed(lambda: sum(int(x.shape[0]) for x, _ in ds), "keras")
    return n / seconds


def bench_imgclf(folder: Path, size: int, batch: int, epochs: int = 2) -> list[float]:
    from imgclf.data.decode import DecodeLog
    from imgclf.data.pipeline import batched, decoded_dataset
    from imgclf.data.scan import scan_folder

    items = scan_folder(folder).items
    ds = batched(
        decoded_dataset(items, size, DecodeLog(), cache=True),
        batch,
        shuffle_seed=0,
        buffer=len(items),
    )
    rates = []
    for epoch in range(1, epochs + 1):
        seconds, n = timed(lambda: sum(int(x.shape[0]) for x, _ in ds), f"imgclf epoch {epoch}")
        rates.append(n / seconds)
    return rates


def bench_bare(folder: Path, size: int) -> float:
    from imgclf.data.decode import decode_with_pillow  # Pillow with draft (decode_image's route)
    from imgclf.data.scan import IMAGE_EXTENSIONS

    files = [str(p) for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]

    def run():
        with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            return sum(1 for _ in pool.map(lambda f: decode_with_pillow(f, size), files))

    seconds, n = timed(run, "bare")
    return n / seconds


def bench_doctor(folder: Path) -> float:
    from imgclf.data.doctor import diagnose
    from imgclf.data.scan import scan_folder

    seconds, n = timed(lambda: len(diagnose(scan_folder(folder)).facts))
    return n / seconds


def report(name: str, folder: Path, size: int, batch: int, repeat: int = 1) -> None:
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    print(f"\n{name}: {folder} ({n} files), image size {size}, batch {batch}", flush=True)
    bench_bare(folder, size)  # warm the OS file cache so every method reads from memory
    CPU_MS.clear()
    # keras and imgclf alternated, so a neighbour's load shifts both alike; medians reported
    runs = []
    for _ in range(repeat):
        runs.append((bench_keras(folder, size, batch), *bench_imgclf(folder, size, batch)))
    keras_rate, epoch1, epoch2 = (statistics.median(r[k] for r in runs) for k in range(3))
    if repeat > 1:
        print(
            f"  (median of {repeat} alternated runs; epoch 1 imgclf/keras per run: "
            + ", ".join(f"{e1 / k:.2f}x" for k, e1, _ in runs)
            + ")",
            flush=True,
        )
    print(f"  keras  image_dataset_from_directory   {keras_rate:9.0f} img/s", flush=True)
    print(f"  imgclf pipeline, epoch 1             {epoch1:9.0f} img/s", flush=True)
    print(f"  imgclf pipeline, epoch 2 (cache)     {epoch2:9.0f} img/s", flush=True)
    bare = bench_bare(folder, size)
    print(f"  bare   decode+resize, {os.cpu_count()} threads     {bare:9.0f} img/s", flush=True)
    doctor = bench_doctor(folder)
    print(
        f"  (imgclf doctor: scan + hash + decode check {doctor:.0f} img/s, once per train)",
        flush=True,
    )
    cpu = {k: statistics.median(v) for k, v in CPU_MS.items()}
    print(
        "  CPU ms per image (process CPU time / images; steadier than img/s on a shared host): "
        + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items())
        + f"; keras/imgclf epoch 1 {cpu['keras'] / cpu['imgclf epoch 1']:.2f}x",
        flush=True,
    )
    print(
        f"  ratios: imgclf/keras epoch 1 {epoch1 / keras_rate:.2f}x, "
        f"epoch 2 {epoch2 / keras_rate:.1f}x; "
        f"imgclf epoch 1 / bare {epoch1 / bare:.0%}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder of class sub-folders (default: %(default)s)",
    )
    parser.add_argument(
        "--camera-images",
        type=int,
        default=400,
        help="camera-size images to generate; 0 skips (default: 400)",
    )
    parser.add_argument(
        "--image-size", type=int, default=224, help="decoded size in pixels (default: 224)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="alternated keras/imgclf runs per folder, medians reported (default: 1)",
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(
            f"bench_pipeline: data folder {str(args.data)!r} not found; pass --data",
            file=sys.stderr,
        )
        return 2
    load = os.getloadavg()
    print(
        f"bench_pipeline: {os.cpu_count()} CPU cores, load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    report("small", args.data, args.image_size, args.batch_size, args.repeat)
    if args.camera_images > 0:
        tmp = Path(tempfile.mkdtemp(prefix="imgclf-bench-"))
        try:
            t = time.perf_counter()
            camera = make_camera_folder(args.data, tmp / "camera", args.camera_images)
            print(
                f"\n(generated {args.camera_images} 4000x3000 JPEGs in "
                f"{time.perf_counter() - t:.0f}s)",
                flush=True,
            )
            report("camera", camera, args.image_size, args.batch_size, args.repeat)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
