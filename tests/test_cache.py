"""imgclf.cache: what the cache holds, clearing it, the size cap's setting; and two runs
sharing one cache."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import make_dataset, manifest_rows, tree_hashes

from imgclf.cache import (
    build_once,
    cache_info,
    cache_root,
    clear_cache,
    max_cache_bytes,
    part_folder,
)
from imgclf.errors import ConfigError
from imgclf.training.feature_cache import FeatureCache
from imgclf.training.shards import read_keys


def fill(root, key=("k", 1), n=5):
    cache = FeatureCache(root / "features", key)
    cache.get([f"h{i}" for i in range(n)], 0, lambda idx: (idx, np.ones((len(idx), 8), np.float32)))
    return cache


def fake_engine(root):
    """A TFLite copy as imgclf.engines.choose keeps it for a read-only run: engines/<key>/{model,
    parity.json}."""
    folder = root / "engines" / "0123abcd-tf2.21.0"
    folder.mkdir(parents=True)
    (folder / "model_float32.tflite").write_bytes(b"x" * 1000)
    (folder / "parity.json").write_bytes(b"{}" * 5)


def test_info_counts_each_part_and_clear_removes_only_imgclfs_folders(tmp_path):
    fill(tmp_path)
    fill(tmp_path, key=("k", 2))
    (tmp_path / "arrays" / "abc" / "digits" / "0").mkdir(parents=True)
    (tmp_path / "arrays" / "abc" / "digits" / "0" / "00001.png").write_bytes(b"x" * 100)
    (tmp_path / "mine.txt").write_text("not imgclf's")
    fake_engine(tmp_path)
    info = cache_info(tmp_path)
    assert info.files == {"features": 4, "arrays": 1, "engines": 2}  # a shard is 2 files
    assert (
        info.sizes["arrays"] == 100 and info.sizes["features"] > 0 and info.sizes["engines"] == 1010
    )
    assert info.total == info.sizes["features"] + 100 + 1010
    text = info.format()
    assert str(tmp_path) in text and "$IMGCLF_CACHE_MAX_GB" in text
    assert all(f"{part}/" in text for part in ("features", "arrays", "engines"))

    assert clear_cache(tmp_path, "arrays") == 100
    assert cache_info(tmp_path).files == {"features": 4, "arrays": 0, "engines": 2}
    assert clear_cache(tmp_path, "engines") == 1010
    assert cache_info(tmp_path).files == {"features": 4, "arrays": 0, "engines": 0}
    assert clear_cache(tmp_path) == info.sizes["features"]
    assert cache_info(tmp_path).total == 0
    assert (tmp_path / "mine.txt").read_text() == "not imgclf's"


def test_info_and_clear_default_to_imgclf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path))
    fill(tmp_path)
    assert cache_info().root == tmp_path and cache_info().files["features"] == 2
    clear_cache()
    assert cache_info().files["features"] == 0


def test_clear_of_an_unknown_part_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"invalid value for `part`: received 'models'"):
        clear_cache(tmp_path, "models")


def test_the_cap_comes_from_imgclf_cache_max_gb(monkeypatch):
    monkeypatch.delenv("IMGCLF_CACHE_MAX_GB", raising=False)
    assert max_cache_bytes() == 5 * 2**30
    monkeypatch.setenv("IMGCLF_CACHE_MAX_GB", "0.5")
    assert max_cache_bytes() == 2**29
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("IMGCLF_CACHE_MAX_GB", bad)
        with pytest.raises(
            ConfigError, match=rf"`IMGCLF_CACHE_MAX_GB`: received '{bad}'; expected a size in GB"
        ):
            max_cache_bytes()


def test_a_zero_cap_keeps_only_the_entry_in_use(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_CACHE_MAX_GB", "0")
    fill(tmp_path, key=("k", 1))
    second = fill(tmp_path, key=("k", 2))
    kept = {p.parent.parent.name for p in (tmp_path / "features").rglob("*.npy")}
    assert kept == {second.key}


def test_every_part_lives_under_the_one_root(tmp_path, monkeypatch):
    """The feature cache, the arrays' PNGs and read-only runs' engines all ask imgclf.cache."""
    from imgclf.data import arrays
    from imgclf.training.feature_cache import default_cache_root

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    assert default_cache_root() == part_folder("features") == tmp_path / "mine" / "features"
    np.save(tmp_path / "features.npy", np.zeros((4, 8, 8), np.uint8))
    np.save(tmp_path / "target.npy", np.array([0, 1, 0, 1]))
    folder, _ = arrays.materialise_arrays(tmp_path)
    assert folder.is_relative_to(part_folder("arrays"))
    with pytest.raises(ConfigError, match=r"`part`: received 'models'"):
        part_folder("models")


def test_build_once_builds_an_entry_once_and_leaves_nothing_from_a_failed_build(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "model.bin").write_bytes(b"m")

    entry = build_once(tmp_path / "engines", "key1", build)
    assert entry == tmp_path / "engines" / "key1" and (entry / "model.bin").read_bytes() == b"m"
    assert build_once(tmp_path / "engines", "key1", build) == entry and len(calls) == 1
    assert calls[0].name.startswith(".staging-key1.")  # written aside, then renamed

    def broken(folder):
        (folder / "half.bin").write_bytes(b"h")
        raise ValueError("converter failed")

    with pytest.raises(ValueError, match="converter failed"):
        build_once(tmp_path / "engines", "key2", broken)
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == ["key1"]


def test_build_once_from_two_threads_builds_once(tmp_path):
    """The lock is flock on the folder: two openers exclude each other, threads as processes."""
    started, calls = threading.Event(), []

    def slow_build(folder):
        calls.append(folder)
        started.set()
        time.sleep(0.3)  # the other thread arrives while this one builds
        (folder / "done").write_text("1")

    first = threading.Thread(target=build_once, args=(tmp_path, "k", slow_build))
    first.start()
    started.wait(10)
    assert build_once(tmp_path, "k", slow_build) == tmp_path / "k"
    first.join()
    assert len(calls) == 1 and (tmp_path / "k" / "done").read_text() == "1"


# ---------------------------------------------------------------------------- two runs at once

TRAIN = (
    "import sys, imgclf; imgclf.train(sys.argv[1], out=sys.argv[2], name=sys.argv[3], "
    "model=sys.argv[4], "
    "image_size=32, head_epochs=1, fine_tune='none', batch_size=8, views=2, "
    "augment='flip', verbose=0, report=False)"
)


@pytest.mark.subprocess
def test_two_train_runs_at_once_on_one_data_folder_and_cache(tmp_path, tiny_backbone):
    """Both runs (head-only, the tiny pretrained-style backbone) finish with the same split and a
    model;
    the cache then holds whole files with every image's row; the data folder is untouched."""
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=5)
    before = tree_hashes(data)
    env = {
        **os.environ,
        "IMGCLF_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    runs = tmp_path / "runs"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(data), str(runs), name, tiny_backbone],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-3000:]
    assert manifest_rows(runs / "first") == manifest_rows(runs / "second")
    for name in ("first", "second"):
        assert (runs / name / "model.keras").is_file() and (runs / name / "metrics.json").is_file()
    split = [r["split"] for r in manifest_rows(runs / "first")]
    expected = {
        "view0": split.count("train") + split.count("val"),
        "view1": split.count("train"),
    }
    stored = [p for p in (tmp_path / "cache" / "features").rglob("*") if p.is_file()]
    assert not [p for p in stored if p.name.startswith(".tmp-")]  # no temporary file left behind
    for view, count in expected.items():
        (folder,) = (tmp_path / "cache" / "features").glob(f"*/{view}")
        shards = read_keys(folder)  # whole shards with every row: neither writer lost the other's
        assert len({h for _, keys in shards for h in keys}) == count
        assert all(len(np.load(rows)) == len(keys) for rows, keys in shards)
    assert tree_hashes(data) == before


def test_the_cache_command_shows_and_clears(tmp_path, monkeypatch, capsys):
    from imgclf.cli import main

    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path))
    fill(tmp_path)
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imgclf cache: {tmp_path}\n") and "in 2 file(s)" in out
    assert main(["cache", "clear", "--part", "features"]) == 0
    out = capsys.readouterr().out
    assert "cleared features/" in out and "MB freed" in out and "in 0 file(s)" in out
    assert cache_info().total == 0
    fake_engine(tmp_path)
    assert main(["cache", "info"]) == 0
    assert any(
        line.split()[0] == "engines/" and line.endswith("in 2 file(s)")
        for line in capsys.readouterr().out.splitlines()
    )
    assert main(["cache", "clear"]) == 0
    assert (
        "cleared features/, arrays/ and engines/, 0.0 MB freed" in capsys.readouterr().out
        and cache_info().total == 0
    )
    monkeypatch.setenv("IMGCLF_CACHE_MAX_GB", "much")
    assert main(["cache", "info"]) == 2
    assert "imgclf: error: invalid value for `IMGCLF_CACHE_MAX_GB`" in capsys.readouterr().err
