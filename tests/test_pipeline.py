"""imgclf.data.pipeline: undecodable files are dropped together with their labels and logged."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import write_bad_files
from PIL import Image

from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset, fits_cache, labels_of
from imgclf.data.scan import ImageItem

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture
def items_with_bad_ones(tmp_path):
    """Solid red images labelled 0 and solid blue ones labelled 1, with undecodable files between
    them."""
    items = []
    for i in range(6):
        label = i % 2
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (20, 16), RED if label == 0 else BLUE).save(path)
        items.append(ImageItem(str(path), label))
    bad = write_bad_files(tmp_path / "bad")
    items.insert(1, ImageItem(str(bad["truncated"]), 0))  # label 0 between a 0 and a 1
    items.insert(4, ImageItem(str(bad["empty"]), 1))
    return items, bad


def test_undecodable_files_are_dropped_and_labels_stay_aligned(items_with_bad_ones):
    items, bad = items_with_bad_ones
    log = DecodeLog()
    pairs = list(decoded_dataset(items, 24, log, cache=False).as_numpy_iterator())
    assert len(pairs) == 6
    for image, label in pairs:
        assert image.shape == (24, 24, 3) and image.dtype == np.uint8
        expected = RED if label == 0 else BLUE
        assert tuple(image.reshape(-1, 3).mean(axis=0).round()) == expected
    # order is kept
    assert [int(label) for _, label in pairs] == [0, 1, 0, 1, 0, 1]


def test_failures_are_recorded_with_a_reason(items_with_bad_ones):
    items, bad = items_with_bad_ones
    log = DecodeLog()
    list(decoded_dataset(items, 24, log).as_numpy_iterator())
    assert set(log.failures) == {str(bad["truncated"]), str(bad["empty"])}
    assert log.failures[str(bad["truncated"])].startswith("cannot decode: ")
    assert "truncated" in log.failures[str(bad["truncated"])]
    assert log.failures[str(bad["empty"])] == "empty file (0 bytes)"  # the scan's verdict
    assert all(bad[k].exists() for k in ("truncated", "empty"))


def test_unchecked_files_get_the_scans_verdict_checked_ones_are_trusted(tmp_path):
    """Files that did not come from a scan (width 0: files to predict) get its header check, so a
    1x1 picture is refused as doctor and train refuse it; scanned items are not checked twice."""
    from imgclf.data.scan import check_header

    dot, fine = tmp_path / "dot.png", tmp_path / "fine.png"
    Image.new("RGB", (1, 1), RED).save(dot)
    Image.new("RGB", (20, 16), BLUE).save(fine)
    log = DecodeLog()
    pairs = list(
        decoded_dataset([ImageItem(str(dot), 0), ImageItem(str(fine), 1)], 16, log, cache=False)
    )
    assert [int(y) for _, y in pairs] == [1]
    assert log.failures == {str(dot): check_header(str(dot))[0]}
    assert log.failures[str(dot)] == "too small: 1x1 pixels (minimum side 8)"
    scanned = ImageItem(str(dot), 0, width=1, height=1)  # a scan let it through: decoded as given
    assert len(list(decoded_dataset([scanned], 16, DecodeLog(), cache=False))) == 1


def test_cached_dataset_gives_the_same_pairs_twice(items_with_bad_ones):
    items, _ = items_with_bad_ones
    ds = decoded_dataset(items, 24, DecodeLog(), cache=True)
    first = [int(y) for _, y in ds.as_numpy_iterator()]
    second = [int(y) for _, y in ds.as_numpy_iterator()]
    assert first == second == [0, 1, 0, 1, 0, 1]


def test_labels_of_skips_dropped_files(items_with_bad_ones):
    items, _ = items_with_bad_ones
    labels = labels_of(decoded_dataset(items, 24, DecodeLog()))
    assert labels.dtype == np.int32
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_batched_keeps_uint8_and_batches(items_with_bad_ones):
    items, _ = items_with_bad_ones
    batches = list(batched(decoded_dataset(items, 24, DecodeLog()), batch_size=4))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 2]
    x, y = batches[0]
    assert x.dtype.name == "uint8" and x.shape[1:] == (24, 24, 3)
    assert int(np.max(x)) == 255


def test_models_read_uint8_batches_as_the_same_pixels_in_float(items_with_bad_ones):
    """The pipeline hands over uint8; the classifier (augmentation and backbone inside) casts it."""
    from imgclf.models.classifier import build_classifier
    from imgclf.models.registry import get_spec

    items, _ = items_with_bad_ones
    clf = build_classifier(get_spec("cnn"), 2, 24, "flip,rotate=10", seed=0)
    x, _ = next(iter(batched(decoded_dataset(items, 24, DecodeLog()), batch_size=4)))
    assert x.dtype.name == "uint8"
    np.testing.assert_allclose(
        clf.model.predict_on_batch(x),
        clf.model.predict_on_batch(np.asarray(x, np.float32)),
        rtol=1e-6,
    )


def test_batched_shuffle_is_seeded_and_keeps_pairs(items_with_bad_ones):
    items, _ = items_with_bad_ones
    ds = decoded_dataset(items, 24, DecodeLog())

    def order(seed):
        out = []
        for x, y in batched(ds, batch_size=8, shuffle_seed=seed, buffer=8):
            for image, label in zip(x.numpy(), y.numpy(), strict=True):
                assert (image[..., 0].mean() > 128) == (label == 0)  # red <-> 0 still paired
                out.append(float(image.sum()) + int(label))
        return out

    assert sorted(order(1)) == sorted(order(2))
    assert order(3) == order(3)


@pytest.mark.parametrize(
    "n, size, mb, expected",
    [
        (100, 32, 1, True),
        (1000, 32, 1, False),
        (1, 32, 0, False),
        (1024, 64, 12, True),
        (1025, 64, 12, False),
    ],
)
def test_fits_cache(n, size, mb, expected):
    assert fits_cache(n, size, mb) is expected


def test_unicode_paths_decode(tmp_path):
    folder = tmp_path / "hündin"
    folder.mkdir()
    path = folder / "фото, 1.png"
    Image.new("RGB", (20, 20), RED).save(path)
    log = DecodeLog()
    pairs = list(decoded_dataset([ImageItem(str(path), 0)], 16, log).as_numpy_iterator())
    assert len(pairs) == 1 and log.failures == {}
