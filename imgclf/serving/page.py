"""The web page of ``imgclf serve``: one Jinja2 template (autoescaped), CSS and JS inline, no
CDN."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["render_page"]


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("imgclf.serving", "templates"), autoescape=True
    )


def render_page(run, config, version: str) -> str:
    """The HTML page for ``run`` (class names and the run name are escaped: they are user input).

    Args:
        run: the served :class:`imgclf.serving.predictor.Run`.
        config: its :class:`imgclf.serving.app.ServeConfig`.
        version: imgclf's version.
    """
    metrics = run.metrics
    return (
        _environment()
        .get_template("index.html")
        .render(
            run_name=run.path.name,
            classes=run.classes,
            image_size=run.image_size,
            model=run.config.model,
            accuracy=None if metrics is None else metrics.accuracy,
            max_upload_mb=config.max_upload_mb,
            max_files=config.max_files,
            version=version,
        )
    )
