"""The browser fixture itself: Debian's chromium renders a page, and errors on it are collected."""

from __future__ import annotations


def test_page_renders_and_collects_errors(page, tmp_path):
    html = tmp_path / "p.html"
    html.write_text(
        "<h1 id='t'>imgclf</h1><script>console.error('boom'); undefinedCall();</script>",
        encoding="utf-8",
    )
    page.goto(html.as_uri())
    assert page.inner_text("#t") == "imgclf"
    assert any("boom" in e for e in page.errors)
    assert any("undefinedCall" in e for e in page.errors)
    png = page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
