"""imgclf.data.scan: both layouts, class order, recursion, hidden files, errors, skipped files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import tree_hashes, write_bad_files, write_mixed_images
from PIL import Image

from imgclf.data.scan import check_header, scan_folder
from imgclf.errors import DataError


def rel(data, item_or_path) -> str:
    path = item_or_path if isinstance(item_or_path, str) else item_or_path.path
    return Path(path).relative_to(data.root).as_posix()


# ---------------------------------------------------------------------------- layouts


def test_flat_layout(flat3):
    data = scan_folder(flat3)
    assert data.classes == ["ant", "bee", "cow"]
    assert data.presplit is False
    assert data.counts() == {"ant": 20, "bee": 20, "cow": 20}
    assert data.skipped == []
    for item in data.items:
        assert item.split is None
        assert rel(data, item).split("/")[0] == data.classes[item.label]
        assert (item.width, item.height) == (48, 40)


def test_class_order_is_sorted_not_creation_order(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"zebra": 2, "Apple": 2, "mango": 2})
    data = scan_folder(root)
    assert data.classes == ["Apple", "mango", "zebra"]
    assert {data.classes[i.label] for i in data.items if "/zebra/" in i.path} == {"zebra"}


def test_presplit_layout_train_val_test(presplit):
    data = scan_folder(presplit)
    assert data.presplit is True
    assert data.classes == ["cat", "dog"]
    by_split = {}
    for item in data.items:
        by_split.setdefault(item.split, []).append(item)
        assert rel(data, item).split("/")[0] == item.split
        assert rel(data, item).split("/")[1] == data.classes[item.label]
    assert {k: len(v) for k, v in by_split.items()} == {"train": 12, "val": 4, "test": 4}


def test_presplit_layout_validation_folder_means_val(presplit_validation):
    data = scan_folder(presplit_validation)
    assert data.presplit is True
    assert {i.split for i in data.items} == {"train", "val"}
    assert sum(i.split == "val" for i in data.items) == 4


def test_presplit_needs_a_validation_folder(tmp_path, make_dataset):
    make_dataset(tmp_path / "d" / "train")
    with pytest.raises(
        DataError,
        match=r"is pre-split \(it has train/\) but has no val/, valid/ or validation/ folder",
    ):
        scan_folder(tmp_path / "d")


def test_files_in_nested_folders_are_found(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    nested = root / "cat" / "2023" / "summer"
    nested.mkdir(parents=True)
    shutil.copy(root / "cat" / "cat_000.png", nested / "deep.png")
    data = scan_folder(root)
    assert data.counts() == {"cat": 4, "dog": 3}
    deep = [i for i in data.items if i.path.endswith("deep.png")]
    assert len(deep) == 1 and data.classes[deep[0].label] == "cat"


def test_hidden_files_and_folders_are_ignored(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    shutil.copy(root / "cat" / "cat_000.png", root / "cat" / ".hidden.png")
    shutil.copy(root / "cat" / "cat_000.png", root / "cat" / "._cat_000.png")  # macOS resource fork
    (root / "cat" / ".thumbs").mkdir()
    shutil.copy(root / "cat" / "cat_000.png", root / "cat" / ".thumbs" / "t.png")
    (root / ".cache").mkdir()  # a hidden folder is not a class
    shutil.copy(root / "cat" / "cat_000.png", root / ".cache" / "x.png")
    (root / "__MACOSX").mkdir()
    data = scan_folder(root)
    assert data.classes == ["cat", "dog"]
    assert data.counts() == {"cat": 3, "dog": 3}
    assert not any("/." in i.path for i in data.items)
    assert data.skipped == []


def test_every_supported_format_and_mode_is_accepted(tmp_path):
    write_mixed_images(tmp_path / "d" / "a")
    write_mixed_images(tmp_path / "d" / "b", seed=1)
    data = scan_folder(tmp_path / "d")
    assert data.skipped == []
    assert data.counts() == {"a": 10, "b": 10}


def test_uppercase_extensions_are_images(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 2}, fmt="jpg")
    (root / "cat" / "cat_000.jpg").rename(root / "cat" / "IMG_0001.JPG")
    assert scan_folder(root).counts() == {"cat": 2, "dog": 2}


# ---------------------------------------------------------------------------- errors


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"data folder '.*nowhere' does not exist"):
        scan_folder(tmp_path / "nowhere")


def test_a_file_instead_of_a_folder(tmp_path):
    f = tmp_path / "photo.jpg"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match=r"data path '.*photo.jpg' is not a folder"):
        scan_folder(f)


def test_no_class_folders(tmp_path):
    root = tmp_path / "loose"
    root.mkdir()
    Image.new("RGB", (20, 20)).save(root / "a.png")
    with pytest.raises(
        DataError, match=r"no class sub-folders in '.*loose'; expected .*<class name>/<images>"
    ):
        scan_folder(root)


def test_one_class(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3})
    with pytest.raises(
        DataError, match=r"only one class folder \('cat'\); a classifier needs at least two classes"
    ):
        scan_folder(root)


def test_one_class_in_presplit_train(tmp_path, make_dataset):
    make_dataset(tmp_path / "d" / "train", {"cat": 3})
    make_dataset(tmp_path / "d" / "val", {"cat": 1})
    with pytest.raises(DataError, match=r"train/ of .* has only one class folder"):
        scan_folder(tmp_path / "d")


def test_empty_class_folder(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    (root / "emu").mkdir()
    with pytest.raises(DataError, match=r"class folder 'emu' in .* has no usable images"):
        scan_folder(root)


def test_class_folder_with_only_bad_files_is_empty(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3})
    write_bad_files(root / "dog")
    (root / "dog" / "truncated.jpg").unlink()  # its header is fine: it would count as an image
    with pytest.raises(DataError, match=r"class folder 'dog' .* has no usable images"):
        scan_folder(root)


def test_unknown_class_for_a_given_class_list(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 2, "emu": 2})
    with pytest.raises(
        DataError, match=r"class 'emu' in .* is not one of the run's classes: cat, dog"
    ):
        scan_folder(root, classes=["cat", "dog"])


def test_given_class_list_fixes_labels_and_allows_a_subset(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"dog": 2})
    data = scan_folder(root, classes=["cat", "dog", "emu"])
    assert data.classes == ["cat", "dog", "emu"]
    assert {i.label for i in data.items} == {1}


def test_presplit_class_outside_train_is_named(tmp_path, make_dataset):
    make_dataset(tmp_path / "d" / "train", {"cat": 2, "dog": 2})
    make_dataset(tmp_path / "d" / "val", {"cat": 1, "dog": 1, "emu": 1})
    with pytest.raises(DataError, match=r"class 'emu' in .* is not one of train/: cat, dog"):
        scan_folder(tmp_path / "d")


# ---------------------------------------------------------------------------- bad files


def test_bad_files_are_skipped_with_a_reason_and_never_touched(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3})
    bad = write_bad_files(root / "cat")
    before = tree_hashes(root)
    data = scan_folder(root)
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"] == "not an image (unrecognised content)"
    assert reasons["notes.txt"] == "not an image file extension (.txt)"
    # a truncated JPEG has a valid header: the scan keeps it, the decoder drops it later
    assert "truncated.jpg" not in reasons
    assert data.counts() == {"cat": 4, "dog": 3}
    assert (
        not {p.name for p in bad.values()} - {Path(i.path).name for i in data.items} - set(reasons)
    )
    assert tree_hashes(root) == before
    assert all(p.exists() for p in bad.values())


def test_file_without_extension_is_reported(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 2})
    (root / "dog" / "README").write_text("x")
    data = scan_folder(root)
    assert [(Path(s.path).name, s.reason) for s in data.skipped] == [
        ("README", "not an image file extension (none)")
    ]


def test_too_small_and_unsupported_formats_are_skipped(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 2})
    Image.new("RGB", (4, 30)).save(root / "cat" / "sliver.png")
    Image.new("RGB", (32, 32)).save(root / "dog" / "icon.png", format="ICO")  # an ICO named .png
    data = scan_folder(root)
    reasons = {Path(s.path).name: s.reason for s in data.skipped}
    assert reasons["sliver.png"] == "too small: 4x30 pixels (minimum side 8)"
    assert reasons["icon.png"] == "unsupported image format ICO"
    assert data.counts() == {"cat": 2, "dog": 2}


def test_check_header_reports_size_without_decoding(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((30, 70, 3), np.uint8)).save(path)
    assert check_header(str(path)) == (None, 70, 30)


def test_broken_symlink_is_skipped_not_fatal(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 2})
    (root / "cat" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    data = scan_folder(root)
    (skipped,) = data.skipped
    assert Path(skipped.path).name == "gone.jpg"
    assert skipped.reason.startswith("cannot read: ")
    assert data.counts() == {"cat": 2, "dog": 2}


def test_unicode_and_spaces_in_names(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"hündin": 2, "кот": 2})
    (root / "кот" / "кот_000.png").rename(root / "кот" / "фото, 1.png")
    data = scan_folder(root)
    assert data.classes == ["hündin", "кот"]
    assert any(i.path.endswith("фото, 1.png") for i in data.items)


def test_stray_files_beside_class_folders_are_listed_not_ignored(flat2):
    (Path(flat2) / "stray.jpg").write_bytes(b"not really")
    (Path(flat2) / "LICENSE").write_text(
        "a licence beside the data is not an image and not reported"
    )
    data = scan_folder(flat2)
    assert [(Path(s.path).name, s.reason) for s in data.skipped] == [
        ("stray.jpg", "not inside a class folder")
    ]


def test_extra_folder_beside_train_and_val_is_listed(presplit):
    (Path(presplit) / "extra" / "cat").mkdir(parents=True)
    data = scan_folder(presplit)
    assert any(Path(s.path).name == "extra" and "not a split" in s.reason for s in data.skipped)
