"""The doctor's findings as text: one line per kind of finding (what ``train`` prints) and the full
terminal report (what ``imgclf doctor`` prints). Both render :meth:`DoctorReport.to_dict`'s dict,
the
same one saved as JSON, so the three outputs cannot disagree."""

from __future__ import annotations

from typing import Any

from imgclf.data.scan import one_line

__all__ = ["summary_lines", "format_report", "near_test"]

LIST_LIMIT = 20  # lines per section in the terminal report (the JSON has everything)


def summary_lines(d: dict[str, Any]) -> list[str]:
    """One line per kind of finding; empty when all is well.

    Args:
        d: a report as :meth:`DoctorReport.to_dict` gives it.
    """
    lines = [f"doctor: {w}" for w in d.get("layout", [])]
    if d["unusable"]:
        lines.append(
            f"doctor: {len(d['unusable'])} unusable file(s) skipped, never touched (see "
            "data_report.json)"
        )
    if d["warnings"]:
        lines.append(
            f"doctor: {len(d['warnings'])} file(s) whose extension does not match the "
            "content (still used)"
        )
    dup = d["duplicates"]
    if dup["clusters"]:
        extra = []
        if dup["across_classes"]:
            extra.append(f"{dup['across_classes']} across classes: label conflicts")
        if dup["across_splits"]:
            extra.append(f"{dup['across_splits']} across splits: LEAKAGE")
        lines.append(
            f"doctor: {dup['exact_clusters']} exact and {dup['near_clusters']} "
            "near-duplicate cluster(s)" + (f" ({'; '.join(extra)})" if extra else "")
        )
        if "pixel" in near_test(dup):  # the test is not the pHash the rest of the docs describe
            lines.append(f"doctor: near duplicates: {near_test(dup)}")
    for w in d["balance"]["warnings"] + d["sizes"]["warnings"]:
        lines.append(f"doctor: {w}")
    for leak in d.get("groups", {}).get("across_splits", []):
        lines.append(f"doctor: group {leak['group']!r} is in {', '.join(leak['splits'])}: LEAKAGE")
    return lines


def near_test(dup: dict[str, Any]) -> str:
    """The near-duplicate test in words (:func:`imgclf.data.duplicates.near_test`); a report saved
    before it was recorded used pHash.

    Args:
        dup: the ``duplicates`` part of a report.
    """
    return dup.get("near_test") or f"pHash distance <= {dup['near_threshold']} of 64 bits"


def _listing(out: list[str], title: str, rows: list[str], count: bool = True) -> None:
    """A titled section of at most LIST_LIMIT rows appended to ``out``."""
    out.append("")
    out.append(
        f"{title} ({len(rows)})" if rows and count else f"{title}" if rows else f"{title}: none"
    )
    out.extend(f"  {r}" for r in rows[:LIST_LIMIT])
    if len(rows) > LIST_LIMIT:
        out.append(f"  … and {len(rows) - LIST_LIMIT} more (all of them in --json)")


def _cluster_row(c: dict[str, Any]) -> str:
    where = []
    if c["across_classes"]:
        where.append(f"across classes {', '.join(c['classes'])}: label conflict")
    else:
        where.append(f"within class {c['classes'][0]}")
    if c["across_splits"]:
        where.append(f"across splits {'/'.join(c['splits'])}: LEAKAGE")
    return f"{c['kind']}, {'; '.join(where)}: {', '.join(c['paths'])}"


def _balance_lines(d: dict[str, Any]) -> list[str]:
    bal = d["balance"]
    out = ["", f"Class balance (largest/smallest {bal['imbalance_ratio']:g}:1)"]
    width = max(len(c) for c in d["classes"])
    for name, count in bal["counts"].items():
        weight = bal["suggested_class_weights"].get(name)
        out.append(
            f"  {name:<{width}}  {count:>6}   weight {weight if weight is not None else '-'}"
        )
    return out + [f"  ! {w}" for w in bal["warnings"]]


def _size_lines(sz: dict[str, Any]) -> list[str]:
    if "width" not in sz:
        return []
    out = [
        "",
        "Sizes and modes",
        f"  width  {sz['width']['min']:g}–{sz['width']['max']:g} px (median "
        f"{sz['width']['median']:g})",
        f"  height {sz['height']['min']:g}–{sz['height']['max']:g} px (median "
        f"{sz['height']['median']:g})",
        f"  aspect {sz['aspect_ratio']['min']:g}–{sz['aspect_ratio']['max']:g} (width/height)",
        "  modes  " + ", ".join(f"{k} {v}" for k, v in sz["modes"].items()),
        "  formats " + ", ".join(f"{k} {v}" for k, v in sz["formats"].items()),
    ]
    return out + [f"  ! {w}" for w in sz["warnings"]]


def format_report(d: dict[str, Any]) -> str:
    """The full terminal report.

    Args:
        d: a report as :meth:`DoctorReport.to_dict` gives it.
    """
    out = [
        f"imgclf doctor: {d['root']}",
        f"  {d['files']} file(s), {d['usable']} usable, {len(d['classes'])} classes",
    ]
    if d.get("layout"):
        _listing(out, "Layout", d["layout"])
    _listing(
        out,
        "Unusable files — skipped, never touched",
        [f"{one_line(r['path'])}: {r['reason']}" for r in d["unusable"]],
    )
    _listing(out, "Warnings", [f"{one_line(r['path'])}: {r['warning']}" for r in d["warnings"]])
    dup = d["duplicates"]
    _listing(
        out,
        f"Duplicates — {dup['exact_clusters']} exact, {dup['near_clusters']} near "
        f"(near duplicates: {near_test(dup)})",
        [_cluster_row(c) for c in dup["clusters"]],
        count=False,
    )
    for leak in d.get("groups", {}).get("across_splits", []):
        out.append(f"  group {leak['group']!r} is in {', '.join(leak['splits'])}: LEAKAGE")
    out += _balance_lines(d)
    out += _size_lines(d["sizes"])
    return "\n".join(out)
