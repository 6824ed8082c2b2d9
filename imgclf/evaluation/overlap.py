"""Which images of an evaluated folder the run has already seen in training or validation.

``imgclf evaluate RUN FOLDER`` (and ``imgclf train DATA --test-dir FOLDER``) score a folder as "new
pictures"; an image the model was trained on, or that chose its epoch, is not new. An image of
FOLDER counts as seen when, in the order checked:

* **same path**: its resolved path is a train or val path of ``split.csv``;
* **same content**: its bytes have the SHA-256 of a train or val file (a copy under another name);
* **near duplicate**: its pHash is within the doctor's threshold
  (:data:`imgclf.data.duplicates.DEFAULT_NEAR_THRESHOLD` bits of 64) of a train or val file's: a
  re-encoded, resized or slightly brightened copy.

Hashes come from the doctor's own functions (:func:`imgclf.data.file_facts.inspect_files`,
:func:`imgclf.data.duplicates.near_pairs`). The run's train and val files are read where
``split.csv`` lists them; their hashes are cached in ``RUN/split_hashes.json``, keyed by path, size
and modification time, so a file changed since is hashed again. A listed file that no longer exists
can match by path only. Seen images are scored apart from the unseen ones
(:func:`imgclf.evaluation.stats.proportion`), and the honesty check uses the unseen part only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.data.duplicates import DEFAULT_NEAR_THRESHOLD, near_pairs
from imgclf.data.file_facts import FileFacts, inspect_files
from imgclf.evaluation.stats import proportion
from imgclf.runs import RunFiles, read_config, read_json, write_json

__all__ = [
    "SEEN_SPLITS",
    "HASHES_FILE",
    "SEEN_FILE",
    "BY",
    "Seen",
    "find_seen",
    "overlap_summary",
    "overlap_line",
    "write_seen",
]

SEEN_SPLITS = ("train", "val")
HASHES_FILE = "split_hashes.json"  # cache of the train/val files' hashes, in the run folder
SEEN_FILE = "seen.csv"  # in an evaluation's folder: each seen image, its split, match and file
BY = {"path": "same path", "content": "same content", "near_duplicate": "near duplicate"}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class Seen:
    """How one evaluated image was seen: the run's split, the kind of match, the run's file."""

    split: str  # "train" or "val"
    by: str  # a key of BY
    match: str  # the train/val file it matches


def _resolved(path: str) -> str:
    return os.path.realpath(path)


def _seen_files(run_dir: Path, classes: list[str]) -> list[tuple[str, str]]:
    """``(resolved path, split)`` of the run's train and val files, train first."""
    from imgclf.data.split import read_manifest

    root = read_config(run_dir / RunFiles.CONFIG).data
    items = read_manifest(run_dir / RunFiles.SPLIT, classes, root)
    rank = {s: i for i, s in enumerate(SEEN_SPLITS)}
    kept = [i for i in items if i.split in rank]
    return [(_resolved(i.path), i.split) for i in sorted(kept, key=lambda i: rank[i.split])]


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _read_cache(path: Path) -> dict:
    try:
        cache = read_json(path)
    except (OSError, ValueError):
        return {}
    ok = isinstance(cache, dict) and cache.get("version") == _CACHE_VERSION
    return cache.get("files", {}) if ok else {}


def seen_hashes(
    run_dir: Path, paths: Sequence[str], progress: bool = False
) -> dict[str, tuple[str, int | None]]:
    """``path → (SHA-256, pHash)`` of the existing ``paths``, from the cache where the file's size
    and modification time are unchanged, else read now (and the cache rewritten; a run folder that
    cannot be written only loses the cache).

    Args:
        run_dir: the run folder (holds :data:`HASHES_FILE`).
        paths: the run's train and val files, resolved.
        progress: show the progress of hashing.
    """
    cached = _read_cache(run_dir / HASHES_FILE)
    stamps = {p: s for p in paths if (s := _stamp(p)) is not None}
    fresh = {p: cached[p] for p, s in stamps.items() if p in cached and cached[p]["stamp"] == s}
    todo = [p for p in stamps if p not in fresh]
    for facts in inspect_files(todo, progress):
        fresh[facts.path] = {
            "stamp": stamps[facts.path],
            "sha256": facts.digest,
            "phash": facts.phash,
        }
    if todo or len(fresh) != len(cached):
        try:
            write_json(run_dir / HASHES_FILE, {"version": _CACHE_VERSION, "files": fresh})
        except OSError:
            pass  # only a cache: the next evaluation hashes again
    return {p: (v["sha256"], v["phash"]) for p, v in fresh.items() if v["sha256"]}


def _near_matches(
    folder: Sequence[int | None], seen: Sequence[int | None], threshold: int
) -> dict[int, int]:
    """Folder index → index of the nearest seen hash within ``threshold`` bits (one hash of each
    distinct value is compared, with the doctor's :func:`near_pairs`)."""
    f_first: dict[int, list[int]] = {}
    for i, h in enumerate(folder):
        if h is not None:
            f_first.setdefault(h, []).append(i)
    s_first: dict[int, int] = {}
    for j, h in enumerate(seen):
        if h is not None:
            s_first.setdefault(h, j)
    f_hashes, s_hashes = list(f_first), list(s_first)
    nf, out = len(f_hashes), {}
    pairs = near_pairs(f_hashes + s_hashes, threshold)
    for a, b, _ in sorted(pairs, key=lambda p: p[2]):
        if a < nf <= b:
            for i in f_first[f_hashes[a]]:
                out.setdefault(i, s_first[s_hashes[b - nf]])
    return out


def find_seen(
    run_dir: Path,
    classes: list[str],
    paths: Sequence[str],
    threshold: int = DEFAULT_NEAR_THRESHOLD,
    progress: bool = False,
) -> dict[str, Seen]:
    """The evaluated ``paths`` that the run saw in training or validation, and how.

    Args:
        run_dir: the run folder (``split.csv``, ``config.yaml``).
        classes: the run's class names (to read ``split.csv``).
        paths: the evaluated images.
        threshold: the largest pHash distance of a near duplicate (the doctor's default).
        progress: show the progress of hashing (files checked, rate, time left).
    """
    files = _seen_files(run_dir, classes)
    split_of: dict[str, str] = {}
    for p, split in files:
        split_of.setdefault(p, split)
    out = {p: Seen(split_of[r], "path", r) for p in paths if (r := _resolved(p)) in split_of}
    rest = [p for p in paths if p not in out]
    if not rest:
        return out
    hashes = seen_hashes(run_dir, list(split_of), progress)
    by_digest: dict[str, str] = {}
    for p, (digest, _) in hashes.items():
        by_digest.setdefault(digest, p)
    facts: list[FileFacts] = inspect_files(rest, progress)
    unmatched = []
    for f in facts:
        if f.digest in by_digest:
            match = by_digest[f.digest]
            out[f.path] = Seen(split_of[match], "content", match)
        else:
            unmatched.append(f)
    seen_paths = list(hashes)
    near = _near_matches(
        [f.phash for f in unmatched], [hashes[p][1] for p in seen_paths], threshold
    )
    for i, j in near.items():
        match = seen_paths[j]
        out[unmatched[i].path] = Seen(split_of[match], "near_duplicate", match)
    return out


def overlap_summary(
    paths: Sequence[str], correct: np.ndarray, seen: dict[str, Seen], name: str
) -> dict:
    """Counts of seen and unseen images, by split and by kind of match, the accuracy of each part
    with its Wilson interval, and the one line that says it (empty when nothing was seen).

    Args:
        paths: the scored images, in the order of ``correct``.
        correct: whether each image was classified right.
        seen: :func:`find_seen`'s result.
        name: how the evaluated folder is named in the line.
    """
    mask = np.array([p in seen for p in paths], bool)
    correct = np.asarray(correct, bool)
    kinds = [seen[p] for p in paths if p in seen]
    summary = {
        "seen_in_train": sum(s.split == "train" for s in kinds),
        "seen_in_val": sum(s.split == "val" for s in kinds),
        "unseen": int((~mask).sum()),
        "by": {key: sum(s.by == key for s in kinds) for key in BY},
        "near_threshold": DEFAULT_NEAR_THRESHOLD,
        "accuracy_seen": proportion(int(correct[mask].sum()), int(mask.sum())),
        "accuracy_unseen": proportion(int(correct[~mask].sum()), int((~mask).sum())),
    }
    summary["message"] = overlap_line(summary, name)
    return summary


def overlap_line(summary: dict, name: str) -> str:
    """One line: how many images of ``name`` were seen, how, and each part's accuracy; empty when
    none was seen.

    Args:
        summary: :func:`overlap_summary`'s counts.
        name: the evaluated folder's name.
    """
    seen = summary["seen_in_train"] + summary["seen_in_val"]
    if not seen:
        return ""
    total = seen + summary["unseen"]
    how = ", ".join(f"{n} {BY[k]}" for k, n in summary["by"].items() if n)

    def acc(part: str) -> str:
        a = summary[f"accuracy_{part}"]
        return f"{a['value']:.4f} [{a['low']:.4f}, {a['high']:.4f}] on the {a['n']} {part}"

    scores = acc("seen") + (f", {acc('unseen')}" if summary["unseen"] else "")
    return (
        f"WARNING {seen} of {total} images of {name!r} were seen by the run "
        f"({summary['seen_in_train']} in training, {summary['seen_in_val']} in validation; "
        f"{how}): accuracy {scores}"
    )


def write_seen(folder: Path, seen: dict[str, Seen]) -> None:
    """``seen.csv`` in an evaluation's folder: path, split, how it matched, the run's file (none
    when nothing was seen: a stale one is removed).

    Args:
        folder: the evaluation's folder.
        seen: :func:`find_seen`'s result.
    """
    path = folder / SEEN_FILE
    if not seen:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "split", "by", "match"])
        for p, s in sorted(seen.items()):
            writer.writerow([p, s.split, s.by, s.match])
