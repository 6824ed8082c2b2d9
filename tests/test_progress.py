"""imgclf.progress: a live bar (count, rate, time left) on a terminal; piped, one line at most every
few seconds and none for a short step; nothing when disabled. The clock is faked, so nothing here
waits."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from imgclf import progress
from imgclf.progress import (
    PIPED_INTERVAL_S,
    Progress,
    format_seconds,
    track,
)
from imgclf.progress import (
    progress as progress_callback,
)


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
    assert len(lines) == 100 * 0.25 // PIPED_INTERVAL_S  # one every 5 s
    assert lines[0] == "hashing: 20/100 files (4.0/s, ~20s left)"
    assert lines[-1] == "hashing: 100/100 files (4.0/s, ~0s left)"
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
    assert out.getvalue().splitlines()[0] == "reading: 10 images (5.0/s)"


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


def test_a_log_that_reported_ends_at_the_final_count(clock):
    out = io.StringIO()
    with Progress(10, "hashing", stream=out, interval=5.0) as bar:
        clock[0] += 6
        bar.advance(3)  # reported
        clock[0] += 1
        bar.advance(7)  # not yet: under 5 s since the last line
    assert out.getvalue().splitlines() == [
        "hashing: 3/10 items (0.5/s, ~14s left)",
        "hashing: 10/10 items (1.4/s, ~0s left)",
    ]


def test_the_callback_form_counts_without_a_unit(clock):
    out = io.StringIO()
    with progress_callback("evaluating", 6, stream=out) as advance:
        for _ in range(3):
            clock[0] += 3
            advance(2)
    assert out.getvalue().splitlines() == [
        "evaluating: 4/6 (0.7/s, ~3s left)",
        "evaluating: 6/6 (0.7/s, ~0s left)",
    ]
    with progress_callback("evaluating", 6, enabled=False, stream=out) as advance:
        advance(6)
    assert out.getvalue().count("\n") == 2


def test_an_error_ends_the_bar_without_a_summary(clock):
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(10, "hashing", stream=out, interval=1.0) as bar:
        clock[0] += 2
        bar.advance()
        raise KeyboardInterrupt
    assert out.getvalue().splitlines() == ["hashing: 1/10 items (0.5/s, ~18s left)"]


@pytest.mark.parametrize(
    "seconds, text", [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (3720, "1h02m"), (-3, "0s")]
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


# ---------------------------------------------------------------------------- where imgclf shows it


@pytest.fixture
def every_step(monkeypatch):
    """A progress line at every step when piped (the default is one per PIPED_INTERVAL_S
    seconds)."""
    monkeypatch.setattr(progress, "PIPED_INTERVAL_S", 0.0)


def test_doctor_shows_the_progress_of_checking_files(every_step, tmp_path, capsys):
    from helpers import make_textured_dataset

    from imgclf.cli import main

    data = make_textured_dataset(tmp_path / "d", {"a": 5, "b": 5}, seed=3)
    assert main(["doctor", str(data)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith("checking files (decode, hash): 1/10 files (") and lines[0].endswith(
        " left)"
    )
    assert "checking files (decode, hash): 10/10 files (" in err
    assert "checking files" not in out  # progress goes to stderr, the report to stdout


def test_feature_extraction_shows_its_progress(every_step, tmp_path, capsys, private_cache):
    from helpers import make_dataset

    from imgclf.config import TrainConfig
    from imgclf.data.scan import scan_folder
    from imgclf.models.classifier import build_classifier
    from imgclf.models.registry import get_spec
    from imgclf.training.activations import Activations

    items = scan_folder(make_dataset(tmp_path / "d", {"a": 5, "b": 5}, seed=4)).items
    cfg = TrainConfig(
        data=str(tmp_path / "d"), image_size=32, batch_size=4, augment="none"
    ).validate()
    clf = build_classifier(get_spec("efficientnet_lite0"), 2, 32, "none", 0)
    acts, labels = Activations(cfg, clf, clf.backbone, "output", progress=True).get(items, 0)
    assert len(acts) == len(labels) == 10
    err = capsys.readouterr().err
    assert (
        "feature extraction: 4/10 images (" in err and "feature extraction: 10/10 images (" in err
    )
    uncached = replace(cfg, feature_cache=False)
    Activations(uncached, clf, clf.backbone, "output").get(
        items, 0
    )  # computed again, progress off (verbose=0): silent
    assert capsys.readouterr().err == ""
