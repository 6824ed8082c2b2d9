"""The reports' HTML from the Jinja2 templates in ``reporting/templates/`` (autoescape on: class and
file names are user input)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = ["render"]


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("imgclf.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, **context: Any) -> str:
    """``template`` (a file name in ``reporting/templates/``) rendered with ``context``.

    Args:
        template: e.g. ``"report.html.j2"``.
        **context: the template's variables (a missing one is an error, not an empty string).
    """
    return _environment().get_template(template).render(**context)
