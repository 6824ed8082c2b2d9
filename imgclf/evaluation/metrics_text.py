""":class:`~imgclf.evaluation.metrics.Metrics` as plain text for a terminal: the per-class table
and the confusion matrix with full class names, abbreviated only where the terminal is too narrow,
then with a legend that gives every abbreviated name in full. Widths count characters as a
terminal shows them (a CJK character takes two columns)."""

from __future__ import annotations

import shutil
import unicodedata

__all__ = ["format_metrics", "text_width"]

ROW_NAME_MAX = 40  # columns of a row's class name before it is abbreviated
MIN_HEADER = 4  # narrowest abbreviated column header before columns are numbered instead


def text_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters count two, combining marks none).

    Args:
        text: the text.
    """
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(0, width - text_width(text))
    return fill + text if right else text + fill


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in … when shortened."""
    if text_width(text) <= width:
        return text
    out = ""
    for c in text:
        if text_width(out + c) > width - 1:
            break
        out += c
    return out + "…"


def _headers(classes: list[str], room: int, number_width: int) -> tuple[list[str], int]:
    """Column headers and the cell width: full names when they fit in ``room`` columns, else
    names cut to fit (when still distinct and at least MIN_HEADER wide), else numbers 1…n."""
    n = len(classes)
    cell = max(number_width, *(text_width(c) for c in classes)) + 2
    if n * cell <= room:
        return list(classes), cell
    keep = room // n - 2
    cut = [_cut(c, keep) for c in classes]
    if keep >= MIN_HEADER and len(set(cut)) == n:
        return cut, max(number_width, keep) + 2
    numbers = [str(i + 1) for i in range(n)]
    return numbers, max(number_width, len(numbers[-1])) + 2


def _legend(pairs: list[tuple[str, str]], width: int) -> list[str]:
    """``short = full`` pairs, as many per line as fit in ``width`` columns."""
    lines, line = [], "legend:"
    for short, full in pairs:
        entry = f" {short} = {full};"
        if text_width(line + entry) > width and line != "legend:":
            lines.append(line.rstrip(";"))
            line = "       "
        line += entry
    return [*lines, line.rstrip(";")]


def _confusion_lines(classes: list[str], matrix: list[list[int]], width: int) -> list[str]:
    rows = [_cut(c, ROW_NAME_MAX) for c in classes]
    row_width = max(text_width(r) for r in rows)
    number_width = len(str(max((max(r) for r in matrix), default=0)))
    heads, cell = _headers(classes, width - row_width, number_width)
    lines = [
        "confusion matrix (rows: true, columns: predicted)",
        " " * row_width + "".join(_pad(h, cell, right=True) for h in heads),
    ]
    for name, row in zip(rows, matrix, strict=True):
        lines.append(_pad(name, row_width) + "".join(f"{v:>{cell}}" for v in row))
    pairs = [(h, c) for h, c in zip(heads, classes, strict=True) if h != c]
    pairs += [(r, c) for r, c in zip(rows, classes, strict=True) if r != c and (r, c) not in pairs]
    return lines + (_legend(pairs, width) if pairs else [])


def format_metrics(m, width: int | None = None) -> str:
    """A plain-text table: per-class precision/recall/F1/support, then the confusion matrix.

    Args:
        m: the :class:`~imgclf.evaluation.metrics.Metrics`.
        width: the terminal's columns; None: the current terminal's (100 when not a terminal).
    """
    width = width or shutil.get_terminal_size((100, 24)).columns
    name_width = max(8, *(text_width(c) for c in m.classes))
    lines = [f"{m.split}: accuracy {m.accuracy:.4f}  macro F1 {m.macro_f1:.4f}  n={m.n}"]
    if m.absent_classes:
        lines.append(
            f"no images of {len(m.absent_classes)} class(es), left out of the averages: "
            f"{', '.join(m.absent_classes)}"
        )
    lines += ["", f"{_pad('class', name_width)}  precision  recall     f1  support"]
    for c in m.classes:
        r = m.per_class[c]
        lines.append(
            f"{_pad(c, name_width)}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:5.3f}  "
            f"{r['support']:7d}"
        )
    lines += ["", *_confusion_lines(m.classes, m.confusion_matrix, width)]
    # a folder's images seen in training (evaluation.overlap), when metrics record it
    if seen := (getattr(m, "overlap", None) or {}).get("message") or (m.honesty or {}).get("seen"):
        lines += ["", seen]
    if m.honesty:
        lines += ["", m.honesty["message"]]
    return "\n".join(lines)
