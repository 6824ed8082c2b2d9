"""Held-out check on the real data: does the default's accuracy on its random split hold on later
photos and on shifted pictures?

The sign-language digits (``../shared/datasets/sign-language-digits``, 10 classes, IMG_NNNN.JPG)
were photographed in sessions: file numbers run in two blocks (1118-1331, 4039-5999) and photos with
nearby numbers share a session (person, light, framing). The benchmark holds out every photo
numbered ``--cut`` or above as the "later sessions" set, trains the default model on the rest with
that folder as ``--test-dir`` (the honesty check compares it with the run's own random test split),
then evaluates the run on shifted copies of the later photos:

- ``darker``: pixel values x 0.6 (an indoor photo without flash);
- ``warm``: red x 1.15, blue x 0.75 (tungsten light);
- ``crop``: an off-centre crop of 75 % of the side, resized back (a closer, less centred framing);
- ``background``: the bright, low-saturation background (the grey-white wall) replaced by a green
  tone.

Everything is written under a temporary folder (the train and later-sessions folders are symbolic
links to the shared files, never written); one line per evaluated set: accuracy, 95 % interval, and
the honesty check's verdict against the internal split.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_shift.py [--data
    ../shared/datasets/sign-language-digits] [--cut 5600] [--seed 42]
        [--variant 'NAME=KEY=VALUE;KEY=VALUE' ...]

``--variant`` (repeatable) trains another model beside the default, in the same process on the same
folders, with those ``imgclf.train`` options changed, e.g. ``--variant 'ema=ema=0.99'`` or
``--variant 'mixup=augment=flip,rotate=10,zoom=0.1,mixup=0.2'``. Every model starts from a cold
feature cache of its own, and its CPU seconds (user+sys of this process while it trains and is
evaluated) are printed beside its accuracies; a summary table closes the output.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

NUMBER = re.compile(r"(\d+)")


def _number(path: Path) -> int:
    found = NUMBER.findall(path.stem)
    return int(found[-1]) if found else -1


def _link_split(data: Path, out: Path, cut: int) -> tuple[Path, Path]:
    """``out/train/<class>/…`` (numbers below ``cut``) and ``out/later/<class>/…``, as symbolic
    links."""
    for path in sorted(data.glob("*/*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        part = "later" if _number(path) >= cut else "train"
        link = out / part / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve())
    return out / "train", out / "later"


def _darker(x: np.ndarray, rng) -> np.ndarray:
    return x * 0.6


def _warm(x: np.ndarray, rng) -> np.ndarray:
    return x * np.array([1.15, 1.0, 0.75])


def _crop(x: np.ndarray, rng) -> np.ndarray:
    from PIL import Image

    h, w = x.shape[:2]
    ch, cw = int(h * 0.75), int(w * 0.75)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    part = Image.fromarray(np.clip(x[y0 : y0 + ch, x0 : x0 + cw], 0, 255).astype(np.uint8))
    return np.asarray(part.resize((w, h), Image.Resampling.BILINEAR), np.float64)


def _background(x: np.ndarray, rng) -> np.ndarray:
    bright = x.mean(axis=2) > 150
    flat = (
        x.max(axis=2) - x.min(axis=2)
    ) < 30  # grey-white wall: bright and unsaturated (skin is not)
    out = x.copy()
    out[bright & flat] = (
        np.array([90, 150, 90]) + (x[bright & flat] - x[bright & flat].mean()) * 0.5
    )
    return out


SHIFTS = {"darker": _darker, "warm": _warm, "crop": _crop, "background": _background}


def _shifted(later: Path, out: Path, name: str, seed: int) -> Path:
    from PIL import Image, ImageOps

    rng = np.random.default_rng(seed)
    for link in sorted(later.glob("*/*")):
        with Image.open(link) as im:
            x = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float64)
        target = out / name / link.parent.name / (link.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(SHIFTS[name](x, rng), 0, 255).astype(np.uint8)).save(
            target, quality=92
        )
    return out / name


def _line(name: str, m, compared: bool = True) -> str:
    acc = m.statistics["accuracy"]
    h = m.honesty if compared else None
    verdict = (
        (
            f"p={h['p_value']:.2g} {'DIFFERS' if h['differs'] else 'consistent'} with "
            f"{h['internal']['name']} "
            f"{h['internal']['accuracy']:.4f} (n={h['internal']['n']})"
        )
        if h
        else "(internal split)"
    )
    return (
        f"{name:<18} n={m.n:<4} accuracy {acc['value']:.4f} [{acc['low']:.4f}, "
        f"{acc['high']:.4f}]  {verdict}"
    )


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"NAME=KEY=VALUE;KEY=VALUE"`` → ``(NAME, {KEY: VALUE})`` (values as text: imgclf.train
    coerces them)."""
    name, _, rest = text.partition("=")
    options = {}
    for part in filter(None, (p.strip() for p in rest.split(";"))):
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: {part!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    if not name or not options:
        raise SystemExit(f"--variant {text!r}: expected NAME=KEY=VALUE[;KEY=VALUE...]")
    return name, options


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_variant(
    name: str,
    options: dict,
    train_dir: Path,
    later: Path,
    shifted: dict[str, Path],
    tmp: Path,
    seed: int,
) -> dict:
    """Train one model (its own cold feature cache) and evaluate it on every held-out set."""
    import imgclf

    os.environ["IMGCLF_CACHE"] = str(
        tmp / "cache" / name
    )  # read when the run starts: cold, not shared
    cpu, start = _cpu(), time.perf_counter()
    kwargs = {"seed": seed, **options}
    result = imgclf.train(
        train_dir, test_dir=str(later), out=str(tmp / "runs"), name=name, verbose=0, **kwargs
    )
    seconds = time.perf_counter() - start
    run = imgclf.load_run(result.run_dir)
    print(
        f"== {name} ({options or 'default'}): "
        + _line("internal", result.metrics, compared=False)
        + f"  (model {result.config.model}, seed {seed}, train {seconds:.0f}s wall)",
        flush=True,
    )
    rows = [("later", run.evaluate(later))] + [
        (f"later+{k}", run.evaluate(v)) for k, v in shifted.items()
    ]
    for label, m in rows:
        print(_line(label, m), flush=True)
    accuracy = {"internal": result.metrics.statistics["accuracy"]["value"]}
    accuracy.update({label: m.statistics["accuracy"]["value"] for label, m in rows})
    return {
        "name": name,
        "accuracy": accuracy,
        "cpu": _cpu() - cpu,
        "wall": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(
            Path(__file__).resolve().parents[1]
            / ".."
            / "shared"
            / "datasets"
            / "sign-language-digits"
        ),
    )
    parser.add_argument(
        "--cut", type=int, default=5600, help="photos numbered this or above are the later sessions"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=KEY=VALUE;KEY=VALUE: another model with these options",
    )
    parser.add_argument("--no-default", action="store_true", help="train only the --variant models")
    args = parser.parse_args()
    variants = ([] if args.no_default else [("default", {})]) + [
        parse_variant(v) for v in args.variant
    ]

    tmp = Path(tempfile.mkdtemp(prefix="bench_shift_"))
    train_dir, later = _link_split(Path(args.data).resolve(), tmp, args.cut)
    counts = {p: sum(1 for _ in (tmp / p).glob("*/*")) for p in ("train", "later")}
    print(
        f"data {args.data}: {counts['train']} photos numbered < {args.cut} to train on, "
        f"{counts['later']} later ones held out",
        flush=True,
    )
    start = time.perf_counter()
    shifted = {name: _shifted(later, tmp / "shifted", name, args.seed) for name in SHIFTS}
    results = [
        run_variant(name, options, train_dir, later, shifted, tmp, args.seed)
        for name, options in variants
    ]
    columns = list(results[0]["accuracy"])
    print("\n| variant | " + " | ".join(columns) + " | CPU s | wall s |")
    print("|---|" + "---:|" * (len(columns) + 2))
    for r in results:
        print(
            f"| {r['name']} | "
            + " | ".join(f"{100 * r['accuracy'][c]:.2f} %" for c in columns)
            + f" | {r['cpu']:.0f} | {r['wall']:.0f} |"
        )
    print(f"cpu {_cpu():.0f}s, wall {time.perf_counter() - start:.0f}s, files under {tmp}")


if __name__ == "__main__":
    main()
