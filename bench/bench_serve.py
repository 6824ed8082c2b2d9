"""Server load test on loopback: requests/second and p50/p99 latency of ``POST /predict`` with one
image, at 1 and at 16 concurrent clients; whether batching makes 16 concurrent requests finish
sooner than 16 sequential ones (five rounds, median, a one-line verdict); the server's memory (RSS)
before and after the load. Bounded: ``--requests`` per level and a ``--max-seconds`` cap; 127.0.0.1
only.

    .venv/bin/python bench/bench_serve.py --run RUN [--image FILE] [--requests N] [--max-seconds S]
    [--engine E]

``--engine`` is passed to ``imgclf serve`` (default auto: the run's TFLite copy, made at start-up if
the run has none yet); run it once per engine to compare them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import DEFAULT_DATA  # noqa: E402

BATCHING_ROUNDS = (
    5  # the 16-sequential-vs-16-concurrent check, repeated (one round is noisy on a shared machine)
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(
    url: str, image: bytes, clients: int, requests: int, deadline: float
) -> tuple[list[float], int, float]:
    """Latencies (s), errors and wall seconds of ``requests`` single-image requests from ``clients``
    clients."""
    import httpx

    latencies: list[float] = []
    errors = 0
    left = iter(range(requests))

    async def client(http):
        nonlocal errors
        for _ in left:
            if time.monotonic() > deadline:
                return
            t = time.perf_counter()
            r = await http.post(url + "/predict", files={"file": ("x.jpg", image, "image/jpeg")})
            latencies.append(time.perf_counter() - t)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        t = time.perf_counter()
        await asyncio.gather(*[client(http) for _ in range(clients)])
        return latencies, errors, time.perf_counter() - t


def report(name: str, latencies: list[float], errors: int, seconds: float) -> None:
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(
        f"  {name:<22} {len(latencies) / seconds:7.1f} req/s  p50 {1000 * q[49]:6.1f} ms  "
        f"p99 {1000 * q[98]:6.1f} ms  "
        f"({len(latencies)} requests, {errors} errors, {seconds:.1f} s)",
        flush=True,
    )


def batching_check(url: str, image: bytes, rounds: int = BATCHING_ROUNDS) -> None:
    """16 requests one after another against the same 16 at once, alternated ``rounds`` times;
    prints
    each round and a one-line verdict on the median times (the target: concurrent takes less)."""
    seq, conc = [], []
    for _ in range(rounds):
        seq.append(asyncio.run(load(url, image, 1, 16, time.monotonic() + 60))[2])
        conc.append(asyncio.run(load(url, image, 16, 16, time.monotonic() + 60))[2])
    rows = ", ".join(f"{s:.2f}/{c:.2f}" for s, c in zip(seq, conc, strict=False))
    s, c = statistics.median(seq), statistics.median(conc)
    print(
        f"  16 requests, sequential/concurrent seconds per round: {rows} (load "
        f"{os.getloadavg()[0]:.1f})",
        flush=True,
    )
    verdict = "MET" if c < s else "NOT MET"
    print(
        "  TARGET batching (16 concurrent requests faster in total than 16 sequential): "
        f"{verdict} — median {s:.2f} s sequential, {c:.2f} s concurrent ({s / c:.2f}x)",
        flush=True,
    )


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument(
        "--image", type=Path, default=next(iter(sorted((DEFAULT_DATA / "0").glob("*"))))
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per concurrency level")
    parser.add_argument("--max-seconds", type=float, default=120, help="cap per level")
    parser.add_argument(
        "--engine", default="auto", help="imgclf serve --engine (auto, tflite or keras)"
    )
    args = parser.parse_args()
    image = args.image.read_bytes()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imgclf",
            "serve",
            str(args.run),
            "--port",
            str(port),
            "--engine",
            args.engine,
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        asyncio.run(load(url, image, 1, 20, time.monotonic() + 60))  # warm-up
        before = rss_mb(server.pid)
        engine = httpx.get(url + "/model").json()["engine"]
        print(
            f"server {url} for {args.run} (engine {engine}); image {args.image} "
            f"({len(image)} bytes); RSS after warm-up {before:.0f} MB",
            flush=True,
        )
        batching_check(url, image)
        for clients in (1, 16, 16):
            report(
                f"{clients} client(s)",
                *asyncio.run(
                    load(url, image, clients, args.requests, time.monotonic() + args.max_seconds)
                ),
            )
            print(f"  RSS now {rss_mb(server.pid):.0f} MB", flush=True)
        health = httpx.get(url + "/health").json()
        print(
            f"  forward passes {health['batches']} for {health['images']} images "
            f"({health['images'] / health['batches']:.1f} per pass)"
        )
        print(
            f"  RSS {before:.0f} MB -> {rss_mb(server.pid):.0f} MB after {health['images']} images",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
