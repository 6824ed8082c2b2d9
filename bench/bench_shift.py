"""Held-out check on the real data: does the default's accuracy on its random split hold on later
photos and on shifted pictures?

The sign-language digits (``../shared/datasets/sign-language-digits``, 10 classes, IMG_NNNN.JPG)
were photographed in sessions: file numbers run in two blocks (1118-1331, 4039-5999) and photos with
nearby numbers share a session (person, light, framing). The benchmark holds out every photo
numbered ``--cut`` or above as the "later sessions" set, trains the default model on the rest with
that folder as ``--test-dir`` (the honesty check compares it with the run's own random test split),
then evaluates the run on shifted copies of the later photos:

- ``darker``, ``warm``, ``crop``, ``background`` and ``camera`` (re-photographed: warp, blur, noise,
  JPEG at quality 30), and ``phone`` (a second camera from other faults: 40 % resolution, hand
  shake, JPEG at quality 15): see shift_sets.py. A ``--work`` folder from before ``phone`` existed
  gets it written on its next run.

Everything is written under a temporary folder (or ``--work DIR``; the train and later-sessions
folders are symbolic links to the shared files, never written); one line per evaluated set:
accuracy, 95 % interval, and the honesty check's verdict against the internal split.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_shift.py [--data
    ../shared/datasets/sign-language-digits] [--cut 5600] [--seed 42]
        [--variant 'NAME=KEY=VALUE;KEY=VALUE' ...] [--tta flip --tta 4 ...]
        [--work DIR] [--trained NAME=RUN_DIR ...]

``--variant`` (repeatable) trains another model beside the default, in the same process on the same
folders, with those ``imgclf.train`` options changed, e.g. ``--variant 'ema=ema=0.99'`` or
``--variant 'mixup=augment=flip,rotate=10,zoom=0.1,mixup=0.2'``. Every model starts from a cold
feature cache of its own, and its CPU seconds (user+sys of this process while it trains and is
evaluated) are printed beside its accuracies; a summary table closes the output.

``--tta`` (repeatable) evaluates every model again with that test-time augmentation (``flip`` or a
number of views: imgclf.evaluation.tta), its CPU seconds apart; ``--trained NAME=RUN_DIR`` evaluates
a run an earlier call trained (same ``--work``, ``--cut`` and ``--seed``) instead of training one.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shift_sets import SHIFTS, write_shifted  # noqa: E402

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


def held_out_sets(work: Path, seed: int) -> dict[str, Path]:
    """The held-out folders of a ``--work`` folder: ``later`` and each shifted copy of it (label →
    folder), the copies not there yet written first (seeded by ``seed``)."""
    later = work / "later"
    if not later.is_dir():
        raise SystemExit(f"{work} has no later/ folder: run bench_shift.py --work {work} first")
    sets = {"later": later}
    for name in SHIFTS:
        folder = work / "shifted" / name
        sets[f"later+{name}"] = (
            folder if folder.is_dir() else write_shifted(later, work / "shifted", name, seed)
        )
    return sets


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _evaluate(run, sets: dict[str, Path], tta: str) -> tuple[dict[str, float], float]:
    """Accuracy of ``run`` on its internal test split and on every held-out set with test-time
    augmentation ``tta``, and the CPU seconds it took."""
    from imgclf.evaluation.evaluate import evaluate_run

    cpu = _cpu()
    internal = evaluate_run(run, None, tta=tta)
    print(f"-- tta {tta}: " + _line("internal", internal, compared=False), flush=True)
    accuracy = {"internal": internal.statistics["accuracy"]["value"]}
    for label, folder in sets.items():
        m = evaluate_run(run, folder, tta=tta)
        print(_line(label, m), flush=True)
        accuracy[label] = m.statistics["accuracy"]["value"]
    return accuracy, _cpu() - cpu


def run_variant(
    name: str,
    options: dict | str,
    sets: dict[str, Path],
    tmp: Path,
    seed: int,
    ttas: list[str],
) -> list[dict]:
    """Train one model (its own cold feature cache; ``options`` a run folder: that run, already
    trained) and evaluate it on every held-out set with each test-time augmentation in ``ttas``:
    one row per TTA."""
    import imgclf

    cpu, start = _cpu(), time.perf_counter()
    if isinstance(options, str):
        run_dir = Path(options)
    else:
        os.environ["IMGCLF_CACHE"] = str(tmp / "cache" / name)  # read when the run starts: cold
        result = imgclf.train(
            tmp / "train",
            test_dir=str(sets["later"]),
            out=str(tmp / "runs"),
            name=name,
            verbose=0,
            **{"seed": seed, **options},
        )
        run_dir = result.run_dir
    train_cpu, train_wall = _cpu() - cpu, time.perf_counter() - start
    run = imgclf.load_run(run_dir)
    print(
        f"== {name} ({options or 'default'}): model {run.config.model} at "
        f"{run.image_size} px, augment {run.config.augment!r}, seed {run.config.seed}; "
        f"training {train_cpu:.0f} CPU s, {train_wall:.0f} s wall; {run_dir}",
        flush=True,
    )
    rows = []
    for tta in ttas:
        accuracy, eval_cpu = _evaluate(run, sets, tta)
        rows.append(
            {
                "name": name,
                "tta": tta,
                "accuracy": accuracy,
                "train_cpu": train_cpu,
                "eval_cpu": eval_cpu,
            }
        )
    return rows


def _table(rows: list[dict]) -> None:
    columns = list(rows[0]["accuracy"])
    print("\n| variant | TTA | " + " | ".join(columns) + " | train CPU s | eval CPU s |")
    print("|---|---|" + "---:|" * (len(columns) + 2))
    for r in rows:
        print(
            f"| {r['name']} | {r['tta']} | "
            + " | ".join(f"{100 * r['accuracy'][c]:.2f} %" for c in columns)
            + f" | {r['train_cpu']:.0f} | {r['eval_cpu']:.0f} |"
        )


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        "--trained",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="evaluate this already trained run (made by an earlier bench_shift with the same "
        "--cut and --seed) instead of training one",
    )
    parser.add_argument(
        "--tta",
        action="append",
        default=[],
        help="also evaluate every model with this test-time augmentation (flip or N views); "
        "repeatable",
    )
    parser.add_argument("--work", help="folder for the sets, caches and runs (default: a new one)")
    parser.add_argument("--no-default", action="store_true", help="train only the --variant models")
    return parser


def main() -> None:
    args = _parser().parse_args()
    variants = ([] if args.no_default or args.trained else [("default", {})]) + [
        parse_variant(v) for v in args.variant
    ]
    variants += [tuple(t.split("=", 1)) for t in args.trained]
    tmp = Path(args.work or tempfile.mkdtemp(prefix="bench_shift_"))
    tmp.mkdir(parents=True, exist_ok=True)
    if not (tmp / "train").is_dir():
        _link_split(Path(args.data).resolve(), tmp, args.cut)
    counts = {p: sum(1 for _ in (tmp / p).glob("*/*")) for p in ("train", "later")}
    print(
        f"data {args.data}: {counts['train']} photos numbered < {args.cut} to train on, "
        f"{counts['later']} later ones held out; load average {os.getloadavg()}",
        flush=True,
    )
    start = time.perf_counter()
    sets = held_out_sets(tmp, args.seed)
    rows = [
        row
        for name, options in variants
        for row in run_variant(name, options, sets, tmp, args.seed, ["none", *args.tta])
    ]
    _table(rows)
    print(
        f"cpu {_cpu():.0f}s, wall {time.perf_counter() - start:.0f}s, load average "
        f"{os.getloadavg()}, files under {tmp}"
    )


if __name__ == "__main__":
    main()
