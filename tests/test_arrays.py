"""imgclf.data.arrays: NumPy arrays as DATA, materialised once as PNGs and scanned like a folder."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import manifest_rows, tree_hashes

import imgclf
from imgclf.data.arrays import load_arrays
from imgclf.data.decode import load_image
from imgclf.data.scan import scan_folder
from imgclf.errors import DataError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def grey_arrays(n_per_class=6, classes=3, size=28):
    """Class k's images are a flat grey level 40 + 80 k, so a decoded pixel tells its label."""
    y = np.repeat(np.arange(classes), n_per_class)
    x = np.stack([np.full((size, size), (40 + 80 * k) / 255.0, np.float32) for k in y])
    return x, y


def test_npz_of_grayscale_floats(tmp_path):
    x, y = grey_arrays()
    np.savez(tmp_path / "digits.npz", features=x, target=y)
    data = scan_folder(tmp_path / "digits.npz")
    assert data.classes == ["0", "1", "2"]
    assert data.counts() == {"0": 6, "1": 6, "2": 6}
    assert data.skipped == [] and data.root.endswith("/digits")
    for item in data.items:
        pixels = load_image(item.path, 16)
        assert pixels.shape == (16, 16, 3)  # grayscale became RGB
        assert int(pixels[0, 0, 0]) == 40 + 80 * item.label


def test_folder_of_npy_with_class_names_and_many_classes_keeps_label_order(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(24) % 12
    x = rng.integers(0, 256, (24, 12, 12, 3), dtype=np.uint8)
    folder = tmp_path / "course"
    folder.mkdir()
    np.save(folder / "X.npy", x)
    np.save(folder / "y.npy", y.reshape(-1, 1))
    names = [f"sign {i}" for i in range(12)]
    np.save(folder / "classes.npy", np.array(names))
    before = tree_hashes(folder)
    data = scan_folder(folder)
    assert data.classes == names  # label order, not folder-name order ("sign 10" < "sign 2")
    for item in data.items:
        assert item.path.split("/")[-2] == names[item.label]
        index = int(item.path.rsplit("/", 1)[1].split(".")[0])
        np.testing.assert_array_equal(load_image(item.path, 12), x[index])
    assert tree_hashes(folder) == before


def test_numbered_classes_beyond_nine_keep_label_order(tmp_path):
    y = np.arange(22) % 11
    np.savez(tmp_path / "d.npz", X=np.zeros((22, 8, 8), np.uint8), y=y)
    assert scan_folder(tmp_path / "d.npz").classes == [str(i) for i in range(11)]


def test_arrays_are_written_once_per_content(tmp_path, cache):
    x, y = grey_arrays()
    np.savez(tmp_path / "a.npz", features=x, target=y)
    first = scan_folder(tmp_path / "a.npz")
    stamp = {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")}
    second = scan_folder(tmp_path / "a.npz")
    assert (
        first.root == second.root
        and {p: p.stat().st_mtime_ns for p in cache.rglob("*.png")} == stamp
    )
    np.savez(tmp_path / "a.npz", features=x[::-1], target=y[::-1])  # new content, new folder
    assert scan_folder(tmp_path / "a.npz").root != first.root


def test_one_hot_labels(tmp_path):
    x, y = grey_arrays(classes=2)
    np.savez(tmp_path / "d.npz", images=x, labels=np.eye(2)[y])
    _, labels, classes, _ = load_arrays(tmp_path / "d.npz")
    assert classes == ["0", "1"] and labels.tolist() == y.tolist()


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            dict(features=np.zeros((4, 8)), target=np.zeros(4, int)),
            r"images in '.*' have shape \(4, 8\); expected images shaped \(N, H, W\)",
        ),
        (
            dict(features=np.zeros((4, 3, 8, 8)), target=np.zeros(4, int)),
            r"have shape \(4, 3, 8, 8\) \(channels first\?\)",
        ),
        (
            dict(features=np.zeros((4, 8, 8)), target=np.zeros(3, int)),
            r"labels in '.*' have shape \(3,\); expected \(4,\): one integer label per image",
        ),
        (
            dict(features=np.zeros((2, 8, 8)), target=np.array([0, -1])),
            r"labels in '.*' include -1; expected integers from 0",
        ),
        (
            dict(features=np.zeros((2, 8, 8)), target=np.array([0.5, 1])),
            r"labels in '.*' are not whole numbers",
        ),
        (
            dict(features=np.full((2, 8, 8), 300.0), target=np.array([0, 1])),
            r"have values from 300 to 300; expected 0–255",
        ),
        (
            dict(pixels=np.zeros((2, 8, 8)), target=np.array([0, 1])),
            r"holds arrays \['pixels', 'target'\]; expected images and labels named "
            r"features \+ target",
        ),
        (
            dict(X=np.zeros((2, 8, 8)), y=np.array([0, 2]), classes=np.array(["a", "b"])),
            r"names 2 classes but its labels go up to 2",
        ),
        (
            dict(X=np.zeros((2, 8, 8)), y=np.array([0, 1]), classes=np.array(["a", "train"])),
            r"class name 'train' in .* cannot name a folder",
        ),
    ],
)
def test_bad_arrays_are_explained(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        scan_folder(tmp_path / "bad.npz")


def test_train_from_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    x = rng.integers(0, 256, (20, 16, 16), dtype=np.uint8) // 2 + (y * 100)[:, None, None].astype(
        np.uint8
    )
    np.savez(tmp_path / "tiny.npz", features=x, target=y)
    result = imgclf.train(
        tmp_path / "tiny.npz",
        model="cnn",
        image_size=32,
        epochs=1,
        batch_size=8,
        augment="none",
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    assert result.classes == ["0", "1"] and result.run_dir.name == "tiny"
    assert result.metrics.n > 0


# ---------------------------------------------------------------------------- pre-split arrays (the
# course notes' layout)


def course_arrays(folder, val_prefix=None, n_train=10, n_test=3, size=16):
    """train_features.npy + train_target.npy, test_… (and ``val_prefix``…): class k's images are
    grey level 40 + 80 k plus the image's index in its split (so a decoded pixel tells label and
    index)."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = {
        "train": n_train,
        "test": n_test,
        **({val_prefix.rstrip("_"): 2} if val_prefix else {}),
    }
    for split, n in splits.items():
        y = np.repeat([0, 1], n)
        x = np.stack([np.full((size, size), 40 + 80 * k + i, np.uint8) for i, k in enumerate(y)])
        np.save(folder / f"{split}_features.npy", x)
        np.save(folder / f"{split}_target.npy", y)
    return folder


def split_pixels(data):
    out = {}
    for item in data.items:
        out.setdefault(item.split, []).append((item.label, int(load_image(item.path, 16)[0, 0, 0])))
    return {k: sorted(v) for k, v in out.items()}


def test_presplit_arrays_become_a_presplit_folder_with_the_test_arrays_as_test(tmp_path):
    folder = course_arrays(tmp_path / "fashion")
    before = tree_hashes(folder)
    data = scan_folder(folder)
    assert data.presplit and data.classes == ["0", "1"]
    pixels = split_pixels(data)
    assert pixels["test"] == sorted(
        (k, 40 + 80 * k + i) for i, k in enumerate(np.repeat([0, 1], 3))
    )
    assert (
        len(pixels["train"]) == 16 and len(pixels["val"]) == 4
    )  # 20 % of each class held out for val
    assert {lab for lab, _ in pixels["val"]} == {0, 1}
    assert not set(pixels["val"]) & set(pixels["train"])
    assert tree_hashes(folder) == before


@pytest.mark.parametrize("prefix", ["val_", "valid_"])
def test_presplit_arrays_with_their_own_validation_arrays(tmp_path, prefix):
    data = scan_folder(course_arrays(tmp_path / "fashion", val_prefix=prefix))
    pixels = split_pixels(data)
    assert {k: len(v) for k, v in pixels.items()} == {"train": 20, "val": 4, "test": 6}
    assert pixels["val"] == [(0, 40), (0, 41), (1, 122), (1, 123)]


def test_bad_presplit_arrays_name_the_file(tmp_path):
    folder = course_arrays(tmp_path / "fashion")
    np.save(folder / "test_target.npy", np.array([0, 1]))  # 2 labels for 6 test images
    with pytest.raises(
        DataError, match=r"labels in '.*test_features.npy' \+ 'test_target.npy' have shape \(2,\)"
    ):
        scan_folder(folder)


def test_train_on_presplit_arrays_tests_on_the_test_arrays(tmp_path):
    folder = course_arrays(tmp_path / "fashion", n_train=12, n_test=4)
    result = imgclf.train(
        folder,
        model="cnn",
        image_size=32,
        epochs=1,
        batch_size=8,
        augment="none",
        out=str(tmp_path / "runs"),
        verbose=0,
        report=False,
    )
    rows = manifest_rows(result.run_dir)
    assert sum(r["split"] == "test" for r in rows) == 8
    assert result.metrics.n == 8 and result.run_dir.name == "fashion"


def test_two_users_of_the_same_arrays_at_once_write_the_pictures_once(tmp_path, monkeypatch):
    """The arrays' PNGs are a cache entry like any other (imgclf.cache.build_once): under its
    lock, written aside, renamed; the second caller waits and uses the first one's."""
    from concurrent.futures import ThreadPoolExecutor

    import imgclf.data.arrays as arrays

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.integers(0, 255, (12, 8, 8), np.uint8), y=np.arange(12) % 2)
    written = []
    real = arrays._write_pngs

    def counted(folder, x, y, classes):
        written.append(folder)
        real(folder, x, y, classes)

    monkeypatch.setattr(arrays, "_write_pngs", counted)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(arrays.materialise_arrays, [tmp_path / "a.npz"] * 2))
    assert results[0] == results[1] and len(written) == 1
    assert len(list(results[0][0].rglob("*.png"))) == 12
    assert not [p for p in results[0][0].parent.parent.iterdir() if p.name.startswith(".")]
