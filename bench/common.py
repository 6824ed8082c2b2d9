"""What several benchmarks share: where the shared sign-language digits are, a per-class subset of
them as links, one ``python -m imgclf`` command timed in wall and CPU seconds, and the ``RESULT``
line a benchmark prints.

The benchmarks run as scripts (``.venv/bin/python bench/NAME.py``), so ``bench/`` is first on their
path and ``from common import …`` finds this module.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout, or beside a worktree one or two folders further down
DIGITS = next(
    (
        root / "shared" / "datasets" / "sign-language-digits"
        for root in ROOT.parents[:3]  # as many of the three as there are
        if (root / "shared" / "datasets" / "sign-language-digits").is_dir()
    ),
    ROOT.parent / "shared" / "datasets" / "sign-language-digits",
)


def result(**fields) -> None:
    """Print one ``RESULT key=value …`` line (floats to 4 decimals), flushed at once."""
    text = " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
    )
    print(f"RESULT {text}", flush=True)


def subset(folder: Path, per_class: int) -> Path:
    """``per_class`` images of each class of the shared dataset, as links under ``folder``."""
    for class_dir in sorted(p for p in DIGITS.iterdir() if p.is_dir()):
        out = folder / class_dir.name
        out.mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            (out / image.name).symlink_to(image)
    return folder


def timed_imgclf(
    argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``python -m imgclf *argv`` with ``env`` added to the environment: (wall s, CPU s of the
    child, user + system, the finished process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "imgclf", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, done
