"""Pool bench_shift.py runs over seeds: one arm (a model name) per row, its accuracy on every set
per seed, then the mean and the minimum over the seeds and the worst gap to the internal split.

bench_shift prints, per model, a ``== NAME (...) ... seed S; training C CPU s, ...`` line, then per
test-time augmentation a ``-- tta T: internal ... accuracy A`` line and one ``SET n=N accuracy A``
line per held-out set. This reads those lines from the saved logs (an interrupted log gives what it
holds; a model whose evaluation stopped half way is left out), so every run so far can be pooled:

    .venv/bin/python bench/shift_summary.py /tmp/robust/shift42.log /tmp/robust/shift1.log \\
        /tmp/seeds/seed2.log /tmp/seeds/seed3.log --alias old-default=default \\
        [--tta none] [--baseline default] [--target 5]

``--alias OLD=NEW`` pools a model named OLD with NEW (the same recipe under two names).
``--leave-out SET`` (repeatable, e.g. ``phone``) drops that held-out set from every table, so logs
with a set the older ones lack still pool, and a worst gap can be read over the older sets alone.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from statistics import mean, stdev

MODEL = re.compile(r"^== (\S+) .*?, seed (\d+); training (\d+) CPU s")
TTA = re.compile(r"^-- tta (\S+): internal\s+n=(\d+)\s+accuracy ([\d.]+)")
SET = re.compile(r"^(later\S*)\s+n=(\d+)\s+accuracy ([\d.]+)")


def _exact(n: str, accuracy: str) -> float:
    """The accuracy as images right / n (the log rounds it to 4 decimals)."""
    return round(float(accuracy) * int(n)) / int(n)


def parse_log(text: str, aliases: dict[str, str] | None = None) -> list[dict]:
    """The rows of one bench_shift log: ``{"name", "seed", "tta", "train_cpu", "accuracy":
    {"internal": A, SET: A, ...}}`` (accuracies as fractions), in the order printed."""
    aliases = aliases or {}
    rows: list[dict] = []
    model = None
    for line in text.splitlines():
        if found := MODEL.match(line):
            name, seed, cpu = found.groups()
            model = {"name": aliases.get(name, name), "seed": int(seed), "train_cpu": int(cpu)}
        elif (found := TTA.match(line)) and model:
            accuracy = {"internal": _exact(*found.group(2, 3))}
            rows.append({**model, "tta": found.group(1), "accuracy": accuracy})
        elif (found := SET.match(line)) and rows:
            rows[-1]["accuracy"][found.group(1)] = _exact(*found.group(2, 3))
    return rows


def leave_out(rows: list[dict], names: list[str]) -> list[dict]:
    """``rows`` without the held-out sets ``names`` (given as ``phone`` or ``later+phone``)."""
    drop = {n if n.startswith("later") else f"later+{n}" for n in names}
    return [
        {**r, "accuracy": {k: v for k, v in r["accuracy"].items() if k not in drop}} for r in rows
    ]


def complete(rows: list[dict]) -> list[dict]:
    """The rows that hold every set the fullest row of the logs holds."""
    most = max((len(r["accuracy"]) for r in rows), default=0)
    return [r for r in rows if len(r["accuracy"]) == most]


def worst_gap(accuracy: dict[str, float]) -> tuple[float, str]:
    """The held-out set furthest below the internal split: (set − internal in points, set)."""
    gaps = {k: 100 * (v - accuracy["internal"]) for k, v in accuracy.items() if k != "internal"}
    label = min(gaps, key=gaps.get)
    return gaps[label], label


def _short(label: str) -> str:
    return label.removeprefix("later+")


def per_seed_table(rows: list[dict]) -> list[str]:
    """One markdown row per (seed, arm): every set's accuracy, the worst gap, the training CPU."""
    columns = list(rows[0]["accuracy"])
    lines = [
        "| seed | arm | " + " | ".join(map(_short, columns)) + " | worst gap | train CPU s |",
        "|---:|---|" + "---:|" * (len(columns) + 2),
    ]
    for r in rows:
        gap, label = worst_gap(r["accuracy"])
        cells = " | ".join(f"{100 * r['accuracy'][c]:.2f} %" for c in columns)
        lines.append(
            f"| {r['seed']} | {r['name']} | {cells} | {gap:+.2f} ({_short(label)}) "
            f"| {r['train_cpu']} |"
        )
    return lines


def pooled_table(rows: list[dict], target: float) -> list[str]:
    """Per arm: mean and minimum over its seeds of every set, the mean and the worst of the
    per-seed worst gaps, and on how many seeds no set is more than ``target`` points below."""
    columns = list(rows[0]["accuracy"])
    lines = [
        "| arm | seeds | "
        + " | ".join(f"{_short(c)} mean / min" for c in columns)
        + f" | worst gap mean / worst | seeds within {target:g} points |",
        "|---|---|" + "---:|" * (len(columns) + 2),
    ]
    for name in dict.fromkeys(r["name"] for r in rows):
        arm = [r for r in rows if r["name"] == name]
        gaps = [worst_gap(r["accuracy"])[0] for r in arm]
        cells = " | ".join(
            f"{100 * mean(r['accuracy'][c] for r in arm):.2f} / "
            f"{100 * min(r['accuracy'][c] for r in arm):.2f}"
            for c in columns
        )
        seeds = ", ".join(str(r["seed"]) for r in arm)
        within = sum(round(g, 9) >= -target for g in gaps)
        lines.append(
            f"| {name} | {seeds} | {cells} | {mean(gaps):+.2f} / {min(gaps):+.2f} "
            f"| {within} of {len(arm)} |"
        )
    return lines


def paired_table(rows: list[dict], baseline: str) -> list[str]:
    """Per other arm: the mean (± the standard deviation over seeds) of (arm − baseline) in points
    per set over the seeds both were run on, and on how many of them the arm was ahead / behind."""
    columns = list(rows[0]["accuracy"]) + ["worst gap"]
    base = {r["seed"]: r["accuracy"] for r in rows if r["name"] == baseline}
    lines = [
        f"| arm − {baseline} (points) | seeds | " + " | ".join(map(_short, columns)) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for name in dict.fromkeys(r["name"] for r in rows if r["name"] != baseline):
        arm = [r for r in rows if r["name"] == name and r["seed"] in base]
        if not arm:
            continue
        pairs = [(r["accuracy"], base[r["seed"]]) for r in arm]
        seeds = [r["seed"] for r in arm]
        cells = []
        for c in columns:
            d = [_value(a, c) - _value(b, c) for a, b in pairs]
            ahead, behind = sum(x > 0 for x in d), sum(x < 0 for x in d)
            spread = f" ±{stdev(d):.2f}" if len(d) > 1 else ""
            cells.append(f"{mean(d):+.2f}{spread} ({ahead}↑ {behind}↓)")
        lines.append(f"| {name} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return lines


def _value(accuracy: dict[str, float], column: str) -> float:
    return worst_gap(accuracy)[0] if column == "worst gap" else 100 * accuracy[column]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path, help="bench_shift.py outputs")
    parser.add_argument("--alias", action="append", default=[], metavar="OLD=NEW")
    parser.add_argument("--tta", default="none", help="which test-time augmentation's rows")
    parser.add_argument("--baseline", default="default", help="the arm the others are paired with")
    parser.add_argument("--target", type=float, default=5.0, help="largest allowed gap, points")
    parser.add_argument(
        "--leave-out", action="append", default=[], metavar="SET", help="drop this held-out set"
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    pairs = [a.split("=", 1) for a in args.alias]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--alias: expected OLD=NEW, got {args.alias}")
    aliases = dict(pairs)
    rows = [r for log in args.logs for r in parse_log(log.read_text(), aliases)]
    rows = complete(leave_out([r for r in rows if r["tta"] == args.tta], args.leave_out))
    if not rows:
        raise SystemExit(f"no complete rows with --tta {args.tta} in {[str(p) for p in args.logs]}")
    print("\n".join(per_seed_table(rows)), end="\n\n")
    print("\n".join(pooled_table(rows, args.target)), end="\n\n")
    if any(r["name"] == args.baseline for r in rows):
        print("\n".join(paired_table(rows, args.baseline)))


if __name__ == "__main__":
    main()
