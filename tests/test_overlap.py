"""Issue 18 item 1, without a model: which images of a folder a run saw in training or validation
(:mod:`imgclf.evaluation.overlap`), its hash cache, and the honesty check on the unseen part."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_distinct_dataset

from imgclf.config import TrainConfig
from imgclf.data.scan import ImageItem
from imgclf.data.split import write_manifest
from imgclf.evaluation.honesty import compare_accuracy, honesty_check
from imgclf.evaluation.overlap import HASHES_FILE, find_seen, overlap_summary
from imgclf.evaluation.stats import proportion
from imgclf.runs import write_config

CLASSES = ["cat", "dog"]
SPLITS = ["train", "train", "val", "test"]  # of each class's four pictures


@pytest.fixture
def run(tmp_path) -> tuple[Path, Path]:
    """A run folder (config.yaml, split.csv only) over 2 × 4 pictures: 2 train, 1 val, 1 test."""
    data = make_distinct_dataset(tmp_path / "data", {"cat": 4, "dog": 4}, seed=61)
    items = [
        ImageItem(str(data / c / f"{c}_{i:03d}.jpg"), k, SPLITS[i])
        for k, c in enumerate(CLASSES)
        for i in range(4)
    ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir / "config.yaml", TrainConfig(data=str(data)))
    write_manifest(run_dir / "split.csv", items, CLASSES, str(data))
    return run_dir, data


def _copy(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return str(dst)


def test_paths_and_copies_of_train_and_val_are_seen_and_test_images_are_not(run, tmp_path):
    run_dir, data = run
    cat = data / "cat"
    paths = [
        str(cat / "cat_000.jpg"),  # train, the same file
        _copy(cat / "cat_002.jpg", tmp_path / "new" / "a.jpg"),  # val, a copy
        str(cat / "cat_003.jpg"),  # the run's test split: not seen
        _copy(cat / "cat_003.jpg", tmp_path / "new" / "b.jpg"),
    ]
    seen = find_seen(run_dir, CLASSES, paths)
    assert {p: (s.split, s.by) for p, s in seen.items()} == {
        paths[0]: ("train", "path"),
        paths[1]: ("val", "content"),
    }
    assert seen[paths[1]].match == str((cat / "cat_002.jpg").resolve())


def test_the_hash_cache_follows_a_changed_file(run, tmp_path):
    run_dir, data = run
    train_file = data / "dog" / "dog_000.jpg"
    old = _copy(train_file, tmp_path / "old" / "x.jpg")
    assert find_seen(run_dir, CLASSES, [old])[old].by == "content"
    assert (run_dir / HASHES_FILE).is_file()
    # the training file is replaced by another picture (a test image's bytes): the cached hash
    # is stale, so the old copy is no longer "seen" and a copy of the new content is
    shutil.copy(data / "cat" / "cat_003.jpg", train_file)
    new = _copy(train_file, tmp_path / "new" / "y.jpg")
    seen = find_seen(run_dir, CLASSES, [old, new])
    assert list(seen) == [new] and seen[new].split == "train"


def test_a_listed_file_that_is_gone_matches_by_path_only(run, tmp_path):
    run_dir, data = run
    gone = data / "cat" / "cat_001.jpg"
    copy = _copy(gone, tmp_path / "kept" / "c.jpg")
    gone.unlink()
    assert find_seen(run_dir, CLASSES, [copy]) == {}


def test_a_run_folder_that_cannot_be_written_only_loses_the_cache(run, tmp_path, monkeypatch):
    import imgclf.evaluation.overlap as overlap

    def read_only(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(overlap, "write_json", read_only)
    run_dir, data = run
    copy = _copy(data / "dog" / "dog_002.jpg", tmp_path / "ro" / "d.jpg")
    assert find_seen(run_dir, CLASSES, [copy])[copy].split == "val"
    assert not (run_dir / HASHES_FILE).exists()


def test_seen_and_unseen_are_scored_apart_with_wilson_intervals(run, tmp_path):
    run_dir, data = run
    paths = [str(data / "cat" / "cat_000.jpg"), str(data / "cat" / "cat_003.jpg")]
    summary = overlap_summary(paths, [True, False], find_seen(run_dir, CLASSES, paths), "x/all")
    assert summary["seen_in_train"] == 1 and summary["unseen"] == 1
    assert summary["accuracy_seen"] == proportion(1, 1) and summary["accuracy_unseen"]["value"] == 0
    assert summary["message"] == (
        "WARNING 1 of 2 images of 'x/all' were seen by the run (1 in training, 0 in validation; "
        "1 same path): accuracy 1.0000 [0.2065, 1.0000] on the 1 seen, "
        "0.0000 [0.0000, 0.7935] on the 1 unseen"
    )
    nothing = overlap_summary(paths[1:], [True], {}, "x/all")
    assert nothing["message"] == "" and nothing["by"] == {
        "path": 0,
        "content": 0,
        "near_duplicate": 0,
    }


def _metrics(correct: int, n: int, overlap: dict | None = None) -> dict:
    return {"n": n, "statistics": {"accuracy": proportion(correct, n)}, "overlap": overlap}


def _overlap(seen: int, unseen: int, unseen_correct: int) -> dict:
    return {
        "seen_in_train": seen,
        "seen_in_val": 0,
        "unseen": unseen,
        "accuracy_unseen": proportion(unseen_correct, unseen),
        "message": "WARNING some were seen" if seen else "",
    }


def test_the_honesty_check_compares_only_the_unseen_part():
    internal = _metrics(90, 100)
    leaky = _metrics(290, 300, _overlap(270, 30, 20))  # 270 seen, all right; 20 of 30 new right
    check = honesty_check(internal, leaky, "x/all", "internal test split")
    assert check["external"]["n"] == 30 and check["external"]["accuracy"] == pytest.approx(2 / 3)
    assert check["external"]["name"] == "x/all, unseen part" and check["differs"] is True
    assert "overstates" in check["message"] and check["seen"] == "WARNING some were seen"


def test_the_honesty_check_claims_no_estimate_when_every_image_was_seen():
    check = honesty_check(
        _metrics(90, 100), _metrics(270, 270, _overlap(270, 0, 0)), "x/all", "internal test split"
    )
    assert check["estimate"] is False and check["differs"] is False and check["p_value"] is None
    assert check["message"].startswith("WARNING honesty check: every image of 'x/all' was seen")
    assert "no external estimate exists" in check["message"] and "0.9000" in check["message"]


def test_the_honesty_check_is_unchanged_when_nothing_was_seen():
    internal, new = _metrics(90, 100), _metrics(50, 60, _overlap(0, 60, 50))
    check = honesty_check(internal, new, "x/all", "internal test split")
    assert check == compare_accuracy(internal, new, "x/all") and "seen" not in check
