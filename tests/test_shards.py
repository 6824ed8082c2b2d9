"""imgclf.training.shards and the sharded feature cache: rows written in shards, read back equal a
batch at a time through memory maps, split between workers; an older cache format is rebuilt, never
read; epochs over shards are the epochs over the same rows held in memory."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from imgclf.training import feature_cache
from imgclf.training.feature_cache import FeatureCache
from imgclf.training.shards import ShardedRows
from imgclf.training.views import RowBatches, ViewBatches

pytestmark = pytest.mark.usefixtures("private_cache")

KEY = ("efficientnet_lite0", "w123", "block8_expand_conv", 32, "flip", 42)
HASHES = [f"h{i:03d}" for i in range(10)]


def compute(indices):
    """Row i is (i, i + 0.5, -i) (exact in float16), in chunks of 4 as Activations yields them."""
    for at in range(0, len(indices), 4):
        part = list(indices[at : at + 4])
        yield part, np.array([[i, i + 0.5, -i] for i in part], np.float32).reshape(-1, 3)


def expected(indices) -> np.ndarray:
    return np.array([[i, i + 0.5, -i] for i in indices], np.float32)


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(feature_cache, "SHARD_ROWS", 3)  # 10 rows -> shards of 3, 1, 3, 1, 2


def test_rows_are_written_in_shards_and_read_back_equal_through_memory_maps(tmp_path, small_shards):
    kept, rows = FeatureCache(tmp_path, KEY).get(HASHES, 0, compute)
    assert kept == list(range(10)) and rows.shape == (10, 3) and rows.dtype == np.float32
    assert [len(m) for m in rows.memmaps()] == [3, 1, 3, 1, 2]  # no shard holds more than 3
    assert all(isinstance(m, np.memmap) for m in rows.memmaps())
    assert all(not isinstance(f, np.ndarray) for f in rows.files)  # nothing is held in memory
    np.testing.assert_array_equal(rows.take([7, 0, 9]), expected([7, 0, 9]))

    again = FeatureCache(tmp_path, KEY)  # another run: every row from the shards on disk
    kept, back = again.get(list(reversed(HASHES)), 0, lambda idx: pytest.fail("recomputed"))
    assert (again.hits, again.misses) == (10, 0)
    np.testing.assert_array_equal(np.asarray(back), expected(range(9, -1, -1)))


def test_each_worker_reads_its_own_shards_and_together_they_read_all(tmp_path, small_shards):
    _, rows = FeatureCache(tmp_path, KEY).get(HASHES, 0, compute)
    parts = [rows.part(i, 2) for i in range(2)]
    for i, part in enumerate(parts):
        assert set(part.shard.tolist()) == {s for s in range(len(rows.files)) if s % 2 == i}
    seen = np.concatenate([np.asarray(p)[:, 0] for p in parts])
    assert sorted(seen.astype(int).tolist()) == list(range(10))  # each row once
    with pytest.raises(ValueError, match="worker 2 of 2"):
        rows.part(2, 2)


def test_a_cache_of_the_older_format_is_rebuilt_never_read(tmp_path):
    """A ``view0.npz`` entry written before the shards (under the old key, and even one planted
    under the new key) is ignored: every row is computed again."""
    old_key = hashlib.blake2b(repr(tuple(KEY)).encode(), digest_size=12).hexdigest()
    new = FeatureCache(tmp_path, KEY)
    assert new.key != old_key  # the format version is part of the key
    for key in (old_key, new.key):
        (tmp_path / key).mkdir(exist_ok=True)
        stale = np.full((len(HASHES), 3), 99.0, np.float16)
        np.savez(tmp_path / key / "view0.npz", hashes=np.array(HASHES), activations=stale)
    calls = []

    def counted(indices):
        calls.append(list(indices))
        yield from compute(indices)

    kept, rows = new.get(HASHES, 0, counted)
    assert calls == [list(range(10))] and (new.hits, new.misses) == (0, 10)
    np.testing.assert_array_equal(np.asarray(rows), expected(range(10)))


def test_epochs_over_shards_are_the_epochs_over_the_same_rows_in_memory(tmp_path, small_shards):
    """Training reads the same batches from the shards as from arrays: views, order, targets."""
    cache = FeatureCache(tmp_path, KEY)
    views = [cache.get(HASHES, v, compute)[1] for v in range(2)]
    in_memory = [np.asarray(v) for v in views]
    two = ShardedRows.concat(views)  # the views one after the other, as fit_arrays gets them
    np.testing.assert_array_equal(np.asarray(two), np.concatenate(in_memory))
    targets = np.arange(10) % 3
    on_disk = ViewBatches(views, targets, batch_size=4, seed=5)
    in_ram = ViewBatches(np.stack(in_memory), targets, batch_size=4, seed=5)
    for epoch in range(3):
        on_disk.draw(epoch)
        in_ram.draw(epoch)
        for k in range(len(on_disk)):
            (x1, y1), (x2, y2) = on_disk[k], in_ram[k]
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)
    ordered = RowBatches(views[0], targets, batch_size=4)
    assert len(ordered) == 3
    np.testing.assert_array_equal(np.concatenate([ordered[k][0] for k in range(3)]), in_memory[0])
