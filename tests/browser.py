"""Browser fixtures: Debian's ``chromium`` (installed by ``make test`` with apt-get) driven by
Playwright.

Playwright's own browser download is never used: the fixture launches ``/usr/bin/chromium`` (or
``$IMGCLF_CHROMIUM``). A missing browser fails the test with a message saying how to install it —
it is never skipped, so CI cannot pass without the browser checks having run.

Use ``page`` in a test: a fresh tab whose console errors and page errors are collected in
``page.errors`` (a list of strings), so a test can assert the page loaded cleanly.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("IMGCLF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium_browser():
    """One headless Chromium for the whole session."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run `make test` (it installs Debian's chromium) "
            "or set IMGCLF_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium_browser):
    """A fresh page (1280×800) with ``page.errors``: console errors and uncaught exceptions, as
    text."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.errors = []
    tab.on(
        "console",
        lambda msg: (
            tab.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    tab.on("pageerror", lambda exc: tab.errors.append(f"pageerror: {exc}"))
    yield tab
    context.close()
