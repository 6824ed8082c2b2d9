"""imgclf.data.file_facts.inspect_files on every core: a process pool gives the same facts in the
same order as one process, and a broken file is still reported on its own line."""

from __future__ import annotations

import pytest
from helpers import make_dataset

from imgclf.data import file_facts
from imgclf.data.file_facts import inspect_files


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """36 images (PNG and JPEG, one an exact copy) and 4 files that cannot be used, interleaved."""
    base = tmp_path_factory.mktemp("facts")
    png = make_dataset(base / "png", {"a": 9, "b": 9}, size=(24, 20), seed=1)
    jpg = make_dataset(base / "jpg", {"a": 9, "b": 9}, size=(20, 24), fmt="jpeg", seed=2)
    good = sorted(str(p) for p in [*png.rglob("*.png"), *jpg.rglob("*.jpeg")])
    broken = base / "broken"
    broken.mkdir()
    (broken / "empty.png").write_bytes(b"")
    (broken / "text.jpg").write_bytes(b"not an image at all")
    data = open(good[0], "rb").read()
    (broken / "truncated.png").write_bytes(data[: len(data) // 2])
    (broken / "copy.png").write_bytes(data)  # fine: an exact duplicate of the first image
    bad = sorted(str(p) for p in broken.iterdir())
    files = list(good)
    for k, path in enumerate(bad):  # spread among the good ones, so they land in several chunks
        files.insert(7 * k + 1, path)
    return files


@pytest.mark.subprocess
def test_the_pool_gives_the_facts_of_one_process_in_the_same_order(mixed_files, monkeypatch):
    monkeypatch.setattr(file_facts, "POOL_MIN_FILES", 0)  # a pool even for these few files
    serial = inspect_files(mixed_files, workers=1)
    pooled = inspect_files(mixed_files, workers=2)
    assert pooled == serial
    assert [f.path for f in pooled] == mixed_files
    errors = {f.path.rsplit("/", 1)[-1]: f.error for f in pooled if f.error}
    assert sorted(errors) == ["empty.png", "text.jpg", "truncated.png"]  # each broken file, alone
    assert all(e.startswith("cannot decode") for e in errors.values())
    by_name = {f.path.rsplit("/", 1)[-1]: f for f in pooled}
    assert by_name["copy.png"].digest == pooled[0].digest and by_name["copy.png"].error is None


def test_a_few_files_are_checked_without_a_pool(mixed_files, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for a few files")

    monkeypatch.setattr(file_facts, "ProcessPoolExecutor", no_pool)
    assert len(mixed_files) < file_facts.POOL_MIN_FILES
    assert [f.path for f in inspect_files(mixed_files)] == mixed_files
