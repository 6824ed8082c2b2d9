"""imgclf.progress: a live bar (count, rate, time left) on a terminal; piped, one line at most every few
seconds and none for a short step; nothing when disabled. The clock is faked, so nothing here waits."""

from __future__ import annotations

import io

import pytest

from imgclf import progress
from imgclf.progress import PIPED_INTERVAL, Progress, format_seconds, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic as seen by imgclf.progress, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_piped_output_is_one_line_per_interval(clock):
    out = io.StringIO()
    with Progress(100, "hashing", "files", stream=out) as bar:
        for _ in range(100):
            clock[0] += 0.25  # 4 files a second: 25 s in all
            bar.advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 100 * 0.25 // PIPED_INTERVAL + 1  # one every 5 s, plus how it ended
    assert lines[0] == "  hashing: 20/100 files (4.0/s, ~20s left)"
    assert lines[-2] == "  hashing: 100/100 files (4.0/s, ~0s left)"
    assert lines[-1] == "  hashing: 100 files in 25s (4.0/s)"
    assert "\x1b" not in out.getvalue()  # no control codes in a log file


def test_a_short_step_writes_nothing_when_piped(clock):
    out = io.StringIO()
    assert list(track(range(50), "scanning", stream=out)) == list(range(50))
    assert out.getvalue() == ""


def test_unknown_total_has_no_time_left(clock):
    out = io.StringIO()
    with Progress(None, "reading", "images", stream=out, interval=1.0) as bar:
        clock[0] += 2
        bar.advance(10)
    assert out.getvalue().splitlines()[0] == "  reading: 10 images (5.0/s)"


def test_disabled_shows_nothing_even_on_a_terminal(clock):
    out = Terminal()
    with Progress(10, "predicting", "images", enabled=False, stream=out) as bar:
        assert not bar.live
        clock[0] += 60
        bar.advance(10)
    assert out.getvalue() == "" and bar.done == 10


def test_terminal_gets_a_live_bar_with_rate_and_time_left():
    out = Terminal()
    items = list(track(range(40), "feature extraction", unit="images", stream=out))
    assert items == list(range(40))
    text = out.getvalue()
    assert "feature extraction" in text and "images/s" in text and "left" in text
    assert "\x1b[" in text  # drawn and redrawn in place (and erased at the end: transient)


def test_an_error_ends_the_bar_without_a_summary(clock):
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(10, "hashing", stream=out, interval=1.0) as bar:
        clock[0] += 2
        bar.advance()
        raise KeyboardInterrupt
    assert out.getvalue().splitlines() == ["  hashing: 1/10 items (0.5/s, ~18s left)"]


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m"), (-3, "0s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
