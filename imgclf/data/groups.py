"""Groups of images that must stay on one side of the split: a patient, a slide, a person — or a
duplicate.

``--group-by`` is either a regular expression searched in each image's path relative to the data
folder (its first capture group, or the whole match, names the group) or a CSV file with columns
``path,group`` (paths relative to the data folder, or absolute). An image the rule does not match
is a group of its own. Duplicate clusters found by the doctor are merged in with a union-find, so
a group and the duplicates of its members all land in one split.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from imgclf.errors import DataError
from imgclf.options import check_group_by

__all__ = ["UnionFind", "check_group_by", "group_labels", "merge_groups"]


class UnionFind:
    """Disjoint sets over ``0 … n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def components(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return list(out.values())


def _relative(path: str, root: str) -> str:
    p, base = Path(path), Path(root)
    return (p.relative_to(base) if p.is_relative_to(base) else p).as_posix()


def _from_csv(csv_path: Path, paths: Sequence[str], root: str) -> dict[str, str]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            if "path" not in columns or "group" not in columns:
                raise DataError(
                    f"group file {str(csv_path)!r} has columns {reader.fieldnames}; "
                    "expected a header with 'path' and 'group'"
                )
            rows = [
                {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                for row in reader
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"cannot read group file {str(csv_path)!r}: {exc}".splitlines()[0]
        ) from None
    table: dict[str, str] = {}
    for row in rows:
        key = Path(row["path"])
        key_s = _relative(str(key), root) if key.is_absolute() else key.as_posix()
        table[key_s] = row["group"]
    return {p: table[_relative(p, root)] for p in paths if _relative(p, root) in table}


def group_labels(paths: Sequence[str], root: str, group_by: str) -> dict[str, str]:
    """Map each path that the rule matches to its group name (unmatched paths are absent).

    Args:
        paths: the image paths.
        root: the data folder; rules and CSV paths are matched against paths relative to it.
        group_by: the ``--group-by`` value: a regular expression, or a CSV file with ``path,group``
        columns.

    Raises:
        DataError: the CSV file cannot be read or lacks a ``path`` or ``group`` column.
    """
    rule = check_group_by(group_by)
    if isinstance(rule, Path):
        return _from_csv(rule, paths, root)
    pattern = rule
    out = {}
    for p in paths:
        m = pattern.search(_relative(p, root))
        if m:
            name = (
                next((g for g in m.groups() if g is not None), None)
                if pattern.groups
                else m.group(0)
            )
            if name is not None and name != "":
                out[p] = name
    return out


def merge_groups(
    paths: Sequence[str], named: dict[str, str] | None, clusters: Iterable[Sequence[str]] = ()
) -> dict[str, int]:
    """One integer group id per path: same named group or same cluster (transitively) → same id.

    Ids are numbered by the first path (in ``paths`` order) of each merged group, so they are
    stable.

    Args:
        paths: the image paths.
        named: path → group name (see :func:`group_labels`), or None for no named groups.
        clusters: groups of paths to keep together (duplicate clusters). Defaults to none.
    """
    index = {p: i for i, p in enumerate(paths)}
    uf = UnionFind(len(paths))
    first: dict[str, int] = {}
    for p, name in (named or {}).items():
        if p in index:
            if name in first:
                uf.union(first[name], index[p])
            else:
                first[name] = index[p]
    for cluster in clusters:
        members = [index[p] for p in cluster if p in index]
        for other in members[1:]:
            uf.union(members[0], other)
    ids: dict[int, int] = {}
    out = {}
    for p in paths:
        root = uf.find(index[p])
        out[p] = ids.setdefault(root, len(ids))
    return out
