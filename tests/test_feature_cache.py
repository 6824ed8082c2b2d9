"""imgclf.training.feature_cache: activations stored by file content, and what a run reports about
them.

The unit tests drive :class:`FeatureCache` with a fake ``compute`` (no TensorFlow); the integration
tests train a few tiny head-only efficientnet_lite0 runs that share one ``$IMGCLF_CACHE``.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import make_dataset, tree_hashes

from imgclf.training.feature_cache import FeatureCache, default_cache_root, file_digest
from imgclf.training.shards import read_keys

pytestmark = pytest.mark.usefixtures("private_cache")  # no test of this file may touch ~/.cache


# ---------------------------------------------------------------------------- a fake backbone


class FakeCompute:
    """compute(indices) -> (kept, rows); row i is [i, i+0.5, -i] (exact in float16); records each
    call.
    ``drop``: indices it cannot compute (as an undecodable image)."""

    def __init__(self, drop=()):
        self.calls: list[list[int]] = []
        self.drop = set(drop)

    def __call__(self, indices):
        self.calls.append(list(indices))
        kept = [i for i in indices if i not in self.drop]
        rows = np.array([[i, i + 0.5, -i] for i in kept], np.float32).reshape(len(kept), 3)
        return kept, rows


def row(i):
    return [i, i + 0.5, -i]


def shard_names(folder: Path) -> list[str]:
    """The files in ``folder``, each shard id taken out (``shard-<id>.npy`` -> ``shard.npy``)."""
    return sorted(re.sub(r"^shard-[0-9a-f]+", "shard", p.name) for p in folder.iterdir())


def rows_file(folder: Path) -> Path:
    """The one shard's rows file in ``folder``."""
    (f,) = [p for p in folder.glob("shard-*.npy") if not p.name.endswith(".keys.npy")]
    return f


HASHES = ["h-aaa", "h-bbb", "h-ccc", "h-ddd"]
KEY = ("efficientnet_lite0", "w123", "block8_expand_conv", 32, "flip", 42)


def test_first_call_computes_everything_and_keeps_the_order(tmp_path):
    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute()
    kept, acts = cache.get(HASHES, 0, compute)
    assert compute.calls == [[0, 1, 2, 3]]
    assert (cache.hits, cache.misses) == (0, 4)
    assert kept == [0, 1, 2, 3]
    assert acts.dtype == np.float32 and acts.shape == (4, 3)
    np.testing.assert_array_equal(acts, [row(i) for i in range(4)])
    assert shard_names(tmp_path / "c" / cache.key / "view0") == ["shard.keys.npy", "shard.npy"]


def test_second_lookup_is_all_hits_and_computes_nothing(tmp_path):
    FeatureCache(tmp_path / "c", KEY).get(HASHES, 0, FakeCompute())
    again = FeatureCache(tmp_path / "c", KEY)  # a new run: a new instance on the same disk
    compute = FakeCompute()
    kept, acts = again.get(HASHES, 0, compute)
    assert compute.calls == []
    assert (again.hits, again.misses) == (4, 0)
    assert kept == [0, 1, 2, 3]
    np.testing.assert_array_equal(acts, [row(i) for i in range(4)])
    # a subset, in another order: rows follow the hashes asked for, not the stored order
    subset = FeatureCache(tmp_path / "c", KEY)
    kept, acts = subset.get(["h-ddd", "h-aaa"], 0, FakeCompute())
    assert kept == [0, 1]
    np.testing.assert_array_equal(acts, [row(3), row(0)])


@pytest.mark.parametrize(
    "other_key",
    [
        ("efficientnet_lite0", "w123", "block8_expand_conv", 64, "flip", 42),  # image size
        ("efficientnet_lite0", "w123", "output", 32, "flip", 42),  # cut layer
        ("efficientnet_lite0", "w123", "block8_expand_conv", 32, "none", 42),  # augmentation
        ("efficientnet_lite0", "w999", "block8_expand_conv", 32, "flip", 42),  # backbone weights
    ],
)
def test_different_key_parts_miss(tmp_path, other_key):
    FeatureCache(tmp_path / "c", KEY).get(HASHES, 0, FakeCompute())
    other = FeatureCache(tmp_path / "c", other_key)
    compute = FakeCompute()
    other.get(HASHES, 0, compute)
    assert compute.calls == [[0, 1, 2, 3]]
    assert (other.hits, other.misses) == (0, 4)


def test_each_view_is_cached_separately(tmp_path):
    FeatureCache(tmp_path / "c", KEY).get(HASHES, 0, FakeCompute())
    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute()
    cache.get(HASHES, 1, compute)
    assert compute.calls == [[0, 1, 2, 3]] and (cache.hits, cache.misses) == (0, 4)
    assert sorted(p.name for p in (tmp_path / "c" / cache.key).iterdir()) == ["view0", "view1"]


def test_entries_are_keyed_by_file_content_not_path(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    files = []
    for i in range(3):
        files.append(folder / f"img{i}.jpg")
        files[-1].write_bytes(f"pretend jpeg number {i}".encode())
    FeatureCache(tmp_path / "c", KEY).get(
        FeatureCache.digests([str(f) for f in files]), 0, FakeCompute()
    )

    files[1].write_bytes(b"the same name, new pixels")  # edited in place
    copy = tmp_path / "elsewhere" / "renamed.jpg"
    copy.parent.mkdir()
    shutil.copy(files[2], copy)  # the same bytes at another path
    paths = [str(files[0]), str(files[1]), str(copy)]

    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute()
    kept, acts = cache.get(FeatureCache.digests(paths), 0, compute)
    assert compute.calls == [[1]]  # only the changed file is recomputed
    assert (cache.hits, cache.misses) == (2, 1)
    assert kept == [0, 1, 2]
    np.testing.assert_array_equal(acts, [row(0), row(1), row(2)])


def test_file_digest_follows_content(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    a.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    b.write_bytes(b"x" * 3_000_000)
    c.write_bytes(b"x" * 2_999_999 + b"y")
    assert file_digest(a) == file_digest(b) != file_digest(c)
    assert re.fullmatch(r"[0-9a-f]{32}", file_digest(a))
    assert FeatureCache.digests([str(a), str(c)]) == [file_digest(a), file_digest(c)]


def write_damage(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(b"not a cache file at all " * 20)
    elif kind == "truncated":  # the first half of a real cache file (a full disk, a killed copy)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "wrong_arrays":  # a valid .npy of the wrong length
        np.save(path, np.zeros(3))


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "wrong_arrays",
        "truncated",
        "empty",
    ],
)
def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path, kind):
    first = FeatureCache(tmp_path / "c", KEY)
    first.get(HASHES, 0, FakeCompute())
    f = rows_file(tmp_path / "c" / first.key / "view0")
    write_damage(f, kind)

    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute()
    kept, acts = cache.get(HASHES, 0, compute)
    assert compute.calls == [[0, 1, 2, 3]]
    np.testing.assert_array_equal(acts, [row(i) for i in range(4)])
    f = rows_file(tmp_path / "c" / first.key / "view0")  # the damaged shard replaced by a new one
    assert np.load(f).shape == (4, 3)
    after = FeatureCache(tmp_path / "c", KEY)
    after.get(HASHES, 0, FakeCompute())
    assert (after.hits, after.misses) == (4, 0)


WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from imgclf.training.feature_cache import FeatureCache
root, go, first = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
hashes = [f"h{i:03d}" for i in range(first, first + 40)]
def compute(indices):
    time.sleep(0.5)  # both writers have read the (empty) entry before either writes it
    return indices, np.array([[int(hashes[i][1:]), 0.5, -1.0] for i in indices], np.float32)
while not go.exists():
    time.sleep(0.01)
kept, acts = FeatureCache(root, KEY_REPR).get(hashes, 0, compute)
assert kept == list(range(40)) and np.asarray(acts)[:, 0].tolist() == list(range(first, first + 40))
""".replace("KEY_REPR", repr(KEY))


@pytest.mark.subprocess
def test_two_processes_writing_one_entry_keep_each_others_rows(tmp_path):
    """Two runs on overlapping data fill the same entry at once: every row of both is on disk after,
    the file is a whole cache file, and neither process crashed."""
    import os
    import subprocess
    import sys

    script, go = tmp_path / "writer.py", tmp_path / "go"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "c"), str(go), str(first)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for first in (0, 20)  # rows 0-39 and 20-59: 20 shared, 20 own each
    ]
    go.touch()
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    (folder,) = (tmp_path / "c").glob("*/view0")
    names = shard_names(folder)  # one shard each, and no temporary file left behind
    assert names == ["shard.keys.npy", "shard.keys.npy", "shard.npy", "shard.npy"]
    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute()
    kept, acts = cache.get([f"h{i:03d}" for i in range(60)], 0, compute)
    assert compute.calls == [] and kept == list(range(60))
    assert np.asarray(acts)[:, 0].tolist() == list(range(60))


def test_a_cache_that_cannot_be_written_costs_reuse_not_the_run(tmp_path, monkeypatch):
    """A full disk (ENOSPC while writing) or a read-only cache: the rows come back, nothing
    half-written
    stays, and the problem is reported in ``write_error``."""
    import errno

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full_disk)
    cache = FeatureCache(tmp_path / "c", KEY)
    kept, acts = cache.get(HASHES, 0, FakeCompute())
    assert kept == [0, 1, 2, 3]
    np.testing.assert_array_equal(acts, [row(i) for i in range(4)])
    assert "No space left on device" in cache.write_error
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file()] == []


def test_the_cache_keeps_under_its_cap_by_evicting_the_least_recently_used(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("IMGCLF_CACHE_MAX_GB", raising=False)  # the default cap: room for all
    entries = []
    for n in range(3):  # three keys, each one entry, written oldest first
        cache = FeatureCache(tmp_path / "c", (*KEY[:-1], n))
        cache.get(HASHES, 0, FakeCompute())
        f = tmp_path / "c" / cache.key / "view0"
        for shard in f.iterdir():
            os.utime(shard, (1_000_000 + n, 1_000_000 + n))
        entries.append(f)
    size = sum(p.stat().st_size for p in entries[0].iterdir())
    FeatureCache(tmp_path / "c", (*KEY[:-1], 0)).get(
        HASHES, 0, FakeCompute()
    )  # a hit: entry 0 is used again
    monkeypatch.setenv(
        "IMGCLF_CACHE_MAX_GB", str(2.5 * size / 2**30)
    )  # room for two entries and a half
    newest = FeatureCache(tmp_path / "c", (*KEY[:-1], 3))
    newest.get(HASHES, 0, FakeCompute())
    left = sorted({p.parent.parent.name for p in (tmp_path / "c").rglob("*.npy")})
    # oldest use first: entry 1, then 2, go; 0 (read just now) and the new one stay
    assert entries[1].parent.name not in left and entries[2].parent.name not in left
    assert sorted([entries[0].parent.name, newest.key]) == left
    again = FeatureCache(tmp_path / "c", (*KEY[:-1], 1))
    compute = FakeCompute()
    again.get(HASHES, 0, compute)
    assert compute.calls == [[0, 1, 2, 3]]  # an evicted entry is recomputed, not an error


def test_root_none_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = tree_hashes(tmp_path)
    cache = FeatureCache(None, KEY)
    compute = FakeCompute()
    kept, acts = cache.get(HASHES, 0, compute)
    assert kept == [0, 1, 2, 3] and compute.calls == [[0, 1, 2, 3]]
    np.testing.assert_array_equal(acts, [row(i) for i in range(4)])
    again = FeatureCache(None, KEY)
    again.get(HASHES, 0, compute)
    assert (again.hits, again.misses) == (0, 4)  # nothing was kept
    assert tree_hashes(tmp_path) == before
    assert not (tmp_path / "cache").exists()


def test_an_index_compute_cannot_do_is_absent_from_the_result(tmp_path):
    cache = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute(drop={1})
    kept, acts = cache.get(HASHES, 0, compute)
    assert kept == [0, 2, 3]
    np.testing.assert_array_equal(acts, [row(0), row(2), row(3)])
    assert cache.misses == 3  # counts what was computed

    again = FeatureCache(tmp_path / "c", KEY)
    compute = FakeCompute(drop={1})
    kept, _ = again.get(HASHES, 0, compute)
    assert compute.calls == [[1]]  # a failure is not cached: it is tried again
    assert kept == [0, 2, 3] and (again.hits, again.misses) == (3, 0)


def test_nothing_computable_gives_an_empty_result(tmp_path):
    cache = FeatureCache(tmp_path / "c", KEY)
    kept, acts = cache.get(HASHES[:2], 0, FakeCompute(drop={0, 1}))
    assert kept == [] and len(acts) == 0
    assert not (tmp_path / "c").exists()  # nothing to store


def test_default_root_follows_imgclf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_root() == tmp_path / "elsewhere" / "features"


# ---------------------------------------------------------------------------- in a run

MESSAGE = re.compile(
    r"(?P<train>\d+) training activations \((?P<views>\d+) view\(s\)\) \+ (?P<val>\d+) "
    r"val at '(?P<cut>[^']+)' "
    r"in [\d.]+s \(cache: (?P<hit>\d+) hit, (?P<computed>\d+) computed\)"
)
HEAD_ONLY = dict(
    image_size=32, head_epochs=1, fine_tune="none", batch_size=8, verbose=1, report=False
)


def activation_report(out: str) -> dict[str, int | str]:
    found = MESSAGE.findall(out)
    assert len(found) == 1, out
    return {k: (v if k == "cut" else int(v)) for k, v in MESSAGE.search(out).groupdict().items()}


@pytest.fixture(scope="module")
def cached_runs(tmp_path_factory, tiny_backbone):
    """Three tiny head-only runs of the tiny pretrained-style backbone on one data folder: 3
    augmented views (fills an empty cache), then 1 view with the same cache (reads view 0 from it),
    then augment
    none and no cache (own $IMGCLF_CACHE)."""
    import io
    from contextlib import redirect_stdout

    import imgclf

    base = tmp_path_factory.mktemp("cache_runs")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=3)
    shared, unused = base / "cache", base / "unused_cache"
    patch = pytest.MonkeyPatch()
    outs = {}
    try:
        for name, cache, options in [
            ("three_views", shared, dict(augment="flip", views=3)),
            ("one_view", shared, dict(augment="flip", views=1)),
            ("through_cache", shared, dict(augment="none", views=1)),
            ("no_cache", unused, dict(augment="none", views=3, feature_cache=False)),
        ]:
            patch.setenv("IMGCLF_CACHE", str(cache))
            if name == "no_cache":
                outs["shared_before"] = tree_hashes(shared)
            stdout = io.StringIO()
            with redirect_stdout(stdout):
                result = imgclf.train(
                    data,
                    out=str(base / "runs"),
                    name=name,
                    model=tiny_backbone,
                    **HEAD_ONLY,
                    **options,
                )
            outs[name] = SimpleNamespace(out=stdout.getvalue(), result=result)
    finally:
        patch.undo()
    return SimpleNamespace(data=data, cache=shared, unused=unused, **outs)


def test_a_run_fills_the_cache_and_the_next_one_reads_it(cached_runs):
    first = activation_report(cached_runs.three_views.out)
    second = activation_report(cached_runs.one_view.out)
    assert first["hit"] == 0
    assert first["computed"] == first["train"] + first["val"] > 0
    # the second run needs view 0 of the same images with the same key: all of it is on disk
    assert second["hit"] > 0 and second["computed"] == 0
    assert second["hit"] == second["train"] + second["val"]
    assert re.search(rf"\(cache: {second['hit']} hit, 0 computed\)", cached_runs.one_view.out)
    assert (
        first["cut"] == second["cut"] == "output"
    )  # fine_tune none: the head trains on the backbone's output
    files = sorted(
        p.relative_to(cached_runs.cache).as_posix()
        for p in cached_runs.cache.rglob("*")
        if p.is_file()
    )
    assert {f.split("/")[0] for f in files} == {"features"}, files
    views = sorted({f.split("/")[-2] for f in files})
    assert views == ["view0", "view1", "view2"] and all(f.endswith(".npy") for f in files)


def test_views_multiply_the_training_activations(cached_runs):
    one = activation_report(cached_runs.one_view.out)
    three = activation_report(cached_runs.three_views.out)
    assert "(1 view(s))" in cached_runs.one_view.out
    assert "(3 view(s))" in cached_runs.three_views.out
    assert one["views"] == 1 and three["views"] == 3
    assert three["train"] == 3 * one["train"] > 0
    assert three["val"] == one["val"] > 0  # validation is never augmented


def test_augment_none_forces_one_view(cached_runs):
    report = activation_report(cached_runs.no_cache.out)
    assert report["views"] == 1
    assert "(1 view(s))" in cached_runs.no_cache.out
    assert report["train"] == activation_report(cached_runs.one_view.out)["train"]


def test_feature_cache_false_writes_nothing_under_imgclf_cache(cached_runs):
    report = activation_report(cached_runs.no_cache.out)
    assert report["hit"] == 0 and report["computed"] == report["train"] + report["val"]
    assert not cached_runs.unused.exists()
    assert (
        tree_hashes(cached_runs.cache) == cached_runs.shared_before
    )  # and nothing changed elsewhere


def test_a_run_from_the_cache_learns_what_a_run_without_it_learns(cached_runs):
    """The same run through the persistent cache's shards and through a temporary folder
    (``feature_cache=False``): the same rows, batches and seed, so the same accuracy and loss."""
    cached, uncached = cached_runs.through_cache.result, cached_runs.no_cache.result
    assert activation_report(cached_runs.through_cache.out)["computed"] > 0
    assert cached.metrics.accuracy == uncached.metrics.accuracy
    learned = []
    for result in (cached, uncached):
        with open(result.run_dir / "history.csv", newline="") as fh:
            learned.append(
                [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]
            )
    assert learned[0] == learned[1] and len(learned[0]) > 0


def test_augmented_views_differ_from_the_original(cached_runs):
    """The stored views 1 and 2 are augmented copies, not the same activations three times."""
    (key_dir,) = [d for d in (cached_runs.cache / "features").iterdir() if (d / "view1").is_dir()]
    tables = []
    for v in range(3):
        table = {}
        for rows, keys in read_keys(key_dir / f"view{v}"):
            table.update(zip(keys, np.load(rows).astype(np.float32), strict=True))
        tables.append(table)
    train_hashes = set(tables[1])
    assert train_hashes == set(tables[2]) and train_hashes < set(tables[0])
    changed = [h for h in train_hashes if not np.allclose(tables[0][h], tables[1][h])]
    assert len(changed) >= len(train_hashes) // 4  # flip is random: about half are flipped
