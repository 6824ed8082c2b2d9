"""Batch prediction in one process vs. on a local Ray cluster (``imgclf predict --on ray``), side by
side in one run, and what 100 million 1-megapixel JPEGs would need on paper.

On the shared sign-language photos (2,062), with one run's TFLite engine (converted once, timed
apart):

* ``single``  ``Run.iter_predict`` over every file in this process, as ``imgclf predict`` does it;
* ``ray``     the same files through :func:`imgclf.serving.ray_predict.predict_rows_on_ray` on a
              local Ray cluster of this machine's CPUs (one actor per CPU, each loading the model
              once); the cluster's start is timed apart, the actors' start is inside the job.

Both must give the same rows (checked). Each gets images/s (wall) and CPU ms per image: this
process's user+sys for ``single``; for ``ray`` this process plus every cluster process reaped at
shutdown (``RUSAGE_CHILDREN``: actors, raylet, GCS — the cluster's own overhead included).

Then, on one core: the decode of one of these photos and of a generated 1-megapixel JPEG
(1155×866, quality 90, photo-like noise) through the one decode path
(:func:`imgclf.data.decode.decode_image`), and the TFLite forward pass per image at batch 32, one
thread. From those, the paper estimate for 10^8 1 MP JPEGs on 32-core CPU nodes and on GPU nodes
(assumptions printed with the numbers).

Without ``--run`` a run is trained on the photos with ``--time 1m`` into a temporary folder; a given
``--run`` is copied first (its folder is not touched).

    .venv/bin/python bench/bench_ray_predict.py [--run RUN] [--data DIR] [--repeat N] [--costs-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
DATA = next(
    (
        p
        for p in (
            REPO.parent / "shared" / "datasets" / "sign-language-digits",
            Path("/work/shared/datasets/sign-language-digits"),
        )
        if p.is_dir()
    ),
    REPO / "demo" / "sign-digits",
)
IMAGES = 100_000_000  # the job on paper
CPU_NODE_CORES = 32
NODE_EFFICIENCY = 0.8  # share of a node's cores kept busy predicting (Ray, I/O, stragglers)
GPU_NODE_CORES = 16  # CPU cores that decode beside each GPU (an H100 box here has 16 per GPU)
GPU_FORWARD_RATE = 3000.0  # images/s of a mid-size CNN at 224 px on one data-centre GPU, assumed


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare_run(run_arg: str | None, data: Path, tmp: Path) -> Path:
    """A run folder of our own: a copy of ``--run``, or one trained on ``data`` in about 1 min."""
    import imgclf

    if run_arg:
        return Path(shutil.copytree(run_arg, tmp / "run"))
    result = imgclf.train(data, time_budget="1m", out=str(tmp / "runs"), name="bench", verbose=0)
    return Path(result.run_dir)


def options(batch_size: int = 32) -> dict:
    return dict(top_k=3, batch_size=batch_size, min_confidence=None, threshold=None, tta=False)


def single(run_dir: Path, files: list[str]) -> tuple[list[dict], float, float]:
    """Rows, wall seconds and CPU seconds of the single-process engine (model load included)."""
    from imgclf.serving.predictor import load_run

    wall, cpu = time.perf_counter(), cpu_self()
    run = load_run(run_dir, "tflite")
    rows = [p.to_dict() for chunk in run.iter_predict(files, **options()) for p in chunk]
    return rows, time.perf_counter() - wall, cpu_self() - cpu


class WorkerCpu:
    """CPU seconds of Ray's worker processes (``ray::…``), read from /proc every ``interval``
    seconds while the block runs (the last reading of each process counts: at most ``interval``
    of each is missed). They are the raylet's children, never reaped by this process."""

    def __init__(self, interval: float = 0.25):
        self.interval, self.seconds = interval, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(self.interval):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if not (proc / "cmdline").read_bytes().startswith(b"ray::"):
                        continue
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.seconds[proc.name] = (int(fields[11]) + int(fields[12])) / tick

    def __enter__(self) -> WorkerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def on_ray(run_dir: Path, files: list[str], repeat: int) -> dict:
    """The Ray engine ``repeat`` times on one local cluster: rows, cluster start, job walls,
    seconds to the first rows, and the CPU seconds of this process, the reaped cluster processes
    (GCS, raylet) and the workers."""
    from imgclf.serving.predictor import load_run
    from imgclf.serving.ray_predict import predict_rows_on_ray, ray_cluster

    cpu = cpu_self() + cpu_children()
    start = time.perf_counter()
    with WorkerCpu() as workers, ray_cluster() as ray:
        started = time.perf_counter() - start
        cpus = int(ray.cluster_resources().get("CPU", 1))
        walls, firsts = [], []
        for _ in range(repeat):
            t0, first, rows = time.perf_counter(), None, []
            for block in predict_rows_on_ray(load_run(run_dir, "tflite"), files, options()):
                first = first if first is not None else time.perf_counter() - t0
                rows.extend(block)
            walls.append(time.perf_counter() - t0)
            firsts.append(first)
    cpu = cpu_self() + cpu_children() - cpu + workers.total
    return dict(rows=rows, start=started, walls=walls, firsts=firsts, cpu=cpu, cpus=cpus)


def per_image_ms(fn, items: list, rounds: int = 3) -> float:
    """Best over ``rounds`` of the CPU milliseconds (this process, all threads) per item of
    ``fn(item)``: on a busy machine wall time measures the other processes too."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for item in items:
            fn(item)
        best = min(best, (time.process_time() - t0) * 1000 / len(items))
    return best


def megapixel_jpegs(src: list[str], dst: Path, n: int = 24) -> list[Path]:
    """``n`` 1155×866 JPEGs (quality 90) made from ``src`` photos, with noise like a camera's."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(src[:n]):
        with Image.open(f) as im:
            big = np.asarray(im.convert("RGB").resize((1155, 866), Image.Resampling.BICUBIC))
        noisy = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(dst / f"mp_{i:03d}.jpg", "JPEG", quality=90)
        out.append(dst / f"mp_{i:03d}.jpg")
    return out


def one_core_costs(run_dir: Path, files: list[str], tmp: Path) -> dict:
    """Milliseconds per image on one core: decode of a photo, of a 1 MP JPEG, the forward pass."""
    import numpy as np

    from imgclf.data.decode import decode_image
    from imgclf.engines.choose import cached_tflite
    from imgclf.engines.tflite_engine import TFLiteEngine
    from imgclf.serving.predictor import load_run

    run = load_run(run_dir, "tflite")
    size = run.image_size
    big = megapixel_jpegs(files[::80], tmp / "megapixel")
    engine = TFLiteEngine(cached_tflite(run)[0], threads=1)
    batch = np.zeros((32, size, size, 3), np.float32)
    engine(batch)  # the interpreter for this shape, allocated once
    large = np.zeros((32, 224, 224, 3), np.float32)
    engine(large)  # the same network at 224 px (its layers take any size)
    return dict(
        size=size,
        model=run.config.model,
        photo=per_image_ms(lambda f: decode_image(f, size), files[:200]),
        megapixel=per_image_ms(lambda f: decode_image(f, size), big),
        megapixel_224=per_image_ms(lambda f: decode_image(f, 224), big),
        megapixel_kb=sum(f.stat().st_size for f in big) / len(big) / 1024,
        forward=per_image_ms(lambda _: engine(batch), range(10)) / 32,
        forward_224=per_image_ms(lambda _: engine(large), range(4)) / 32,
    )


def paper(costs: dict) -> list[str]:
    """The estimate for :data:`IMAGES` 1 MP JPEGs from the measured one-core costs."""
    decode_bound = 1000 / costs["megapixel_224"] * GPU_NODE_CORES * NODE_EFFICIENCY
    lines, nodes = [], []
    sizes = (
        (costs["size"], costs["megapixel"], costs["forward"]),
        (224, costs["megapixel_224"], costs["forward_224"]),
    )
    for px, decode, forward in sizes:
        per_core = 1000 / (decode + forward)  # images/s on one core
        lines.append(
            f"one core at {px} px: {per_core:.0f} 1 MP images/s (decode {decode:.2f} ms + "
            f"forward {forward:.2f} ms CPU)"
        )
        cores = f"{CPU_NODE_CORES} cores, {NODE_EFFICIENCY:.0%} busy"
        rate = per_core * CPU_NODE_CORES * NODE_EFFICIENCY
        nodes.append((f"CPU node at {px} px ({cores})", rate))
    gpu = f"224 px, 1 GPU at {GPU_FORWARD_RATE:.0f}/s, {GPU_NODE_CORES} decoding cores"
    nodes.append((f"GPU node ({gpu})", min(GPU_FORWARD_RATE, decode_bound)))
    for name, rate in nodes:
        node_hours = IMAGES / rate / 3600
        lines.append(
            f"{name}: {rate:,.0f} images/s -> {node_hours:,.1f} node-hours for 10^8 images "
            f"({node_hours / 10:,.1f} h on 10 nodes, {node_hours / 50:,.2f} h on 50)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a run folder (default: train one with --time 1m)")
    parser.add_argument("--data", default=str(DATA), help=f"photos (default: {DATA})")
    parser.add_argument("--repeat", type=int, default=2, help="Ray jobs on the one cluster")
    parser.add_argument(
        "--costs-only", action="store_true", help="only the one-core costs and the paper estimate"
    )
    args = parser.parse_args()
    from imgclf.runtime import quiet_tensorflow_logs

    quiet_tensorflow_logs()
    from imgclf.serving.inputs import expand_paths
    from imgclf.serving.predictor import load_run

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = prepare_run(args.run, Path(args.data), Path(tmp))
        files = expand_paths([args.data])
        t0 = time.perf_counter()
        load_run(run_dir, "tflite").engine_for_job(len(files))
        print(f"run {run_dir.name}: TFLite copy made in {time.perf_counter() - t0:.1f} s")
        if args.costs_only:
            show_costs(run_dir, files, Path(tmp))
        else:
            report(run_dir, files, args.repeat, Path(tmp))


def report(run_dir: Path, files: list[str], repeat: int, tmp: Path) -> None:
    n = len(files)
    rows, wall, cpu = single(run_dir, files)
    print(f"single: {n / wall:.1f} images/s ({wall:.1f} s), {cpu * 1000 / n:.2f} CPU ms/image")
    ray = on_ray(run_dir, files, repeat)
    assert ray["rows"] == rows, "the Ray engine's rows differ from the single-process engine's"
    best = min(ray["walls"])
    steady = max(n / (w - f) for w, f in zip(ray["walls"], ray["firsts"], strict=True))
    print(
        f"ray ({ray['cpus']} CPUs): {n / best:.1f} images/s (best of {repeat} jobs: "
        f"{', '.join(f'{w:.1f}' for w in ray['walls'])} s; first rows after "
        f"{min(ray['firsts']):.1f} s, then {steady:.1f} images/s), cluster start "
        f"{ray['start']:.1f} s, {ray['cpu'] * 1000 / (n * repeat):.2f} CPU ms/image (this "
        f"process, the cluster's and the actors'); ray/single {(n / best) / (n / wall):.2f}x; "
        "rows identical"
    )
    show_costs(run_dir, files, tmp)


def show_costs(run_dir: Path, files: list[str], tmp: Path) -> None:
    """The one-core costs and the paper estimate, printed."""
    costs = one_core_costs(run_dir, files, tmp)
    print(
        f"one core, model {costs['model']} at {costs['size']} px: decode photo "
        f"{costs['photo']:.2f} ms, decode 1 MP JPEG ({costs['megapixel_kb']:.0f} KB) "
        f"{costs['megapixel']:.2f} ms ({costs['megapixel_224']:.2f} ms for 224 px), TFLite "
        f"forward {costs['forward']:.2f} ms/image (batch 32; {costs['forward_224']:.2f} ms at "
        "224 px); CPU ms, one thread"
    )
    for line in paper(costs):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
