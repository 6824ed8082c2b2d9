"""Data larger than memory (issue 20, part 3): training on decoded images shuffles the file order
each epoch and decodes in that order — no buffer of decoded images that grows with the data — while
images the in-memory cache holds anyway are shuffled as before (the same order)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import tensorflow as tf
from helpers import history_rows, make_dataset, write_bad_files
from PIL import Image

import imgclf
from imgclf.data.decode import DecodeLog
from imgclf.data.pipeline import batched, decoded_dataset, shuffled
from imgclf.data.scan import ImageItem
from imgclf.training.fitting import fit_dataset

SEED, BATCH, GOOD = 7, 4, 20


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """20 solid images, PNG and JPEG, whose red channel says their number (12 × i) and whose green
    channel their label (0 or 200), with two undecodable files between them."""
    folder = tmp_path_factory.mktemp("stream")
    out = []
    for i in range(GOOD):
        path = folder / f"img{i:02d}.{'png' if i % 2 else 'jpg'}"
        Image.new("RGB", (20, 20), (12 * i, 200 * (i % 2), 0)).save(path)
        out.append(ImageItem(str(path), i % 2))
    bad = write_bad_files(folder / "bad")
    out.insert(3, ImageItem(str(bad["truncated"]), 0))  # fails the native decode, then Pillow's
    out.insert(9, ImageItem(str(bad["empty"]), 1))
    return out


def fit_input(train_raw: tf.data.Dataset, n: int) -> tf.data.Dataset:
    """The training dataset :func:`fit_dataset` hands to ``model.fit``."""
    seen: dict = {}
    session = SimpleNamespace(
        cfg=SimpleNamespace(seed=SEED, batch_size=BATCH),
        clf=SimpleNamespace(model=SimpleNamespace(fit=lambda data, **kw: seen.update(data=data))),
        one_hot=False,
        mixing=None,
        distribution=SimpleNamespace(batch_for=lambda batch, n: batch),
        epochs=2,
        deadline=None,
        plan=SimpleNamespace(line=None, val_items=[]),
        start_fit=lambda *args, **kwargs: 0,
        callbacks=lambda *args, **kwargs: [],
        class_weight=None,
        fit_verbose=0,
        end_stage=lambda: None,
    )
    fit_dataset(session, "train", train_raw, train_raw, n, 0.01, None)
    return seen["data"]


def epoch(data: tf.data.Dataset) -> list[int]:
    """The images' numbers in one pass, each checked against its label."""
    numbers = []
    for x, y in data.as_numpy_iterator():
        for image, label in zip(x, y, strict=True):
            assert (image[..., 1].mean() > 100) == (label == 1), "an image lost its label"
            numbers.append(round(float(image[..., 0].mean()) / 12))
    return numbers


def dataset_ops(data: tf.data.Dataset) -> list[str]:
    """The op of every node in the dataset's graph, its functions' bodies included."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(data._as_serialized_graph().numpy())
    return [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]


def test_uncached_training_holds_no_shuffle_buffer_of_decoded_images(items):
    data = fit_input(decoded_dataset(items, 16, DecodeLog(), cache=False), len(items))
    ops = dataset_ops(data)
    assert "StatelessShuffle" in ops  # the file order is what is shuffled
    assert not [op for op in ops if op.startswith("Shuffle")], ops


def test_uncached_epochs_are_new_seeded_orders_of_every_image_with_its_label(items):
    def two_epochs() -> list[list[int]]:
        data = fit_input(decoded_dataset(items, 16, DecodeLog(), cache=False), len(items))
        return [epoch(data), epoch(data)]

    first, second = two_epochs()
    assert sorted(first) == sorted(second) == list(range(GOOD))  # bad files dropped, none lost
    assert first != second and first != sorted(first)
    assert two_epochs() == [first, second]  # the same seed, the same orders


def test_cached_images_are_shuffled_in_memory_in_the_same_order_as_before(items):
    data = fit_input(decoded_dataset(items, 16, DecodeLog(), cache=True), len(items))
    # the order before the file-order shuffle: every cached image in the shuffle buffer
    before = batched(
        decoded_dataset(items, 16, DecodeLog(), cache=True), BATCH, SEED, buffer=len(items)
    )
    assert [epoch(data), epoch(data)] == [epoch(before), epoch(before)]


def test_shuffled_takes_only_what_decoded_dataset_made(items):
    with pytest.raises(ValueError, match="made by decoded_dataset"):
        shuffled(decoded_dataset(items, 16, DecodeLog()).take(3), SEED)


def test_an_uncached_from_scratch_run_trains_and_repeats_exactly_with_its_seed(tmp_path):
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, size=(20, 20), seed=31)
    options = dict(model="cnn", image_size=32, batch_size=8, augment="none", epochs=2)
    options.update(cache_mb=0, verbose=0, report=False, out=str(tmp_path / "runs"))
    runs = [imgclf.train(data, name=name, **options).run_dir for name in ("a", "b")]
    a, b = (history_rows(run) for run in runs)
    assert len(a) == 2
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [float(r[column]) for r in a] == [float(r[column]) for r in b], column
