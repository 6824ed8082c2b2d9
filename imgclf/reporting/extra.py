"""More findings about an evaluation, shown at the end of the report's results section (of a run's
report and of ``imgclf evaluate RUN DATA``'s): each a block ``{"id", "title", "lines"}`` made
from the evaluation's metrics.json. The one place to add such a finding (e.g. how many evaluated
images were seen in training) without touching the templates: the template escapes every line."""

from __future__ import annotations

__all__ = ["extra_blocks"]


def extra_blocks(metrics: dict) -> list[dict]:
    """The blocks to show after the results of ``metrics`` (none yet).

    Args:
        metrics: the contents of the evaluation's metrics.json.

    Returns:
        A list of ``{"id": str, "title": str, "lines": list[str]}``.
    """
    return []
