"""How the default (``--model auto``) fits the data, against Lite0 at the size it would pick: one
line each.

Data sets are generated into a temporary folder (never committed, deleted at the end):

- ``small``: grayscale 28 px PNGs, 10 classes of hand-drawn-like glyphs (ring, bar, cross, …) with
  random position, scale, rotation, stroke and noise — the shape of Fashion-MNIST (``--images`` of
  them).
- ``large``: the sign-language digits upscaled to 300 px
  (``../shared/datasets/sign-language-digits``).

Each method trains with a fresh, empty feature cache, in this one process, one after the other::

    .venv/bin/python bench/bench_defaults.py --set small --images 3000 --methods lite0,auto
    .venv/bin/python bench/bench_defaults.py --set large --methods lite0,auto,auto_time --time 30m
    .venv/bin/python bench/bench_defaults.py --set large --images 600 --methods auto,auto_time
    --time 8m

``lite0`` is ``--model efficientnet_lite0`` (the default before ``auto``), ``auto`` the new default,
``auto_time`` the new default with ``--time``. Every line gives the resolved model and size, test
accuracy, wall and CPU seconds and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT.parent / "shared" / "datasets" / "sign-language-digits"
GLYPHS = (
    "ring",
    "disc",
    "square",
    "triangle",
    "cross",
    "xcross",
    "hbars",
    "vbars",
    "diagonal",
    "corner",
)


def _glyph(draw: ImageDraw.ImageDraw, kind: str, c: float, r: float, w: int) -> None:
    box = (c - r, c - r, c + r, c + r)
    if kind == "ring":
        draw.ellipse(box, outline=255, width=w)
    elif kind == "disc":
        draw.ellipse(box, fill=255)
    elif kind == "square":
        draw.rectangle(box, outline=255, width=w)
    elif kind == "triangle":
        draw.polygon([(c, c - r), (c - r, c + r), (c + r, c + r)], outline=255, width=w)
    elif kind == "cross":
        draw.line([(c - r, c), (c + r, c)], fill=255, width=w)
        draw.line([(c, c - r), (c, c + r)], fill=255, width=w)
    elif kind == "xcross":
        draw.line([(c - r, c - r), (c + r, c + r)], fill=255, width=w)
        draw.line([(c - r, c + r), (c + r, c - r)], fill=255, width=w)
    elif kind in ("hbars", "vbars"):
        for k in (-1, 0, 1):
            y = c + k * r * 0.7
            line = [(c - r, y), (c + r, y)] if kind == "hbars" else [(y, c - r), (y, c + r)]
            draw.line(line, fill=255, width=w)
    elif kind == "diagonal":
        draw.line([(c - r, c + r), (c + r, c - r)], fill=255, width=w + 1)
    else:  # corner: an L
        draw.line([(c - r, c - r), (c - r, c + r), (c + r, c + r)], fill=255, width=w)


def make_small(folder: Path, images: int, seed: int = 0) -> Path:
    """``images`` grayscale 28 px PNGs in 10 class folders under ``folder``.

    Args:
        folder: an empty folder.
        images: how many, spread evenly over the classes.
        seed: the random seed.
    """
    rng = np.random.default_rng(seed)
    for k in range(images):
        kind = GLYPHS[k % len(GLYPHS)]
        big = Image.new("L", (112, 112), 0)  # drawn at 4× and reduced: anti-aliased strokes
        _glyph(
            ImageDraw.Draw(big),
            kind,
            56 + rng.uniform(-12, 12),
            rng.uniform(20, 40),
            int(rng.integers(5, 12)),
        )
        big = big.rotate(rng.uniform(-25, 25), resample=Image.BILINEAR)
        pixels = np.asarray(big.resize((28, 28), Image.BILINEAR), dtype=np.float32) * rng.uniform(
            0.5, 1.0
        )
        pixels += rng.normal(0, 25, pixels.shape)  # sensor noise and a varying background
        out = folder / kind
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels + rng.uniform(0, 60), 0, 255).astype(np.uint8), "L").save(
            out / f"{k:06d}.png"
        )
    return folder


def make_large(folder: Path, side: int = 300, images: int | None = None) -> Path:
    """The sign-language digits upscaled to ``side`` px (bicubic) under ``folder``.

    Args:
        folder: an empty folder.
        side: the new side in pixels.
        images: keep about this many, evenly spread over the sorted files (every class keeps its
        share). Defaults to all.
    """
    files = [
        src for src in sorted(DIGITS.rglob("*")) if src.suffix.lower() in (".jpg", ".jpeg", ".png")
    ]
    step = max(1.0, len(files) / images) if images else 1.0
    for src in [files[int(k * step)] for k in range(int(len(files) / step))]:
        out = folder / src.parent.name / f"{src.stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(src).convert("RGB").resize((side, side), Image.BICUBIC).save(out)
    return folder


def run_one(method: str, data: Path, out: Path, budget: str | None, seed: int) -> None:
    """Train one method with a fresh feature cache and print its result line."""
    os.environ["IMGCLF_CACHE"] = tempfile.mkdtemp(
        prefix=f"cache-{method}-", dir=out.parent
    )  # deleted with the temp folder
    from imgclf.config import TrainConfig
    from imgclf.training.trainer import train_run

    model = "efficientnet_lite0" if method == "lite0" else "auto"
    cfg = TrainConfig(
        data=str(data),
        model=model,
        out=str(out),
        name=method,
        report=False,
        seed=seed,
        time_budget=budget if method == "auto_time" else None,
    )
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    result = train_run(cfg, verbose=1)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    print(
        f"RESULT {method}: model {result.config.model} at {result.config.image_size} px, "
        "test accuracy "
        f"{result.metrics.accuracy:.4f} (n={result.metrics.n}), "
        f"wall {time.perf_counter() - t0:.0f}s, "
        f"CPU {cpu:.0f}s, "
        f"load {load0:.2f} -> {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("small", "large"), default="small")
    p.add_argument(
        "--images",
        type=int,
        default=None,
        help="images in the set (default: 3000 small, all 2,062 large)",
    )
    p.add_argument("--methods", default="lite0,auto", help="comma list of lite0, auto, auto_time")
    p.add_argument("--time", default=None, help="the --time budget of auto_time")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-defaults-") as tmp:
        started = time.perf_counter()
        data = (
            make_small(Path(tmp) / "data", args.images or 3000)
            if args.set == "small"
            else make_large(Path(tmp) / "data", images=args.images)
        )
        print(
            f"generated {args.set} set in {time.perf_counter() - started:.0f}s: {data}", flush=True
        )
        for method in args.methods.split(","):
            run_one(method, data, Path(tmp) / "runs", args.time, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
