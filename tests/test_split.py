"""imgclf.data.split: stratified, seeded, disjoint splits and the split.csv manifest."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from imgclf.data.scan import scan_folder
from imgclf.data.split import SPLITS, assign_splits, read_manifest, write_manifest
from imgclf.errors import DataError


def relative_splits(items, root) -> dict[str, str]:
    return {Path(i.path).relative_to(root).as_posix(): i.split for i in items}


def test_stratified_proportions(flat3):
    data = scan_folder(flat3)
    items = assign_splits(data, val_fraction=0.2, test_fraction=0.1, seed=0)
    assert len(items) == 60
    counts = Counter((data.classes[i.label], i.split) for i in items)
    for name in data.classes:  # 20 per class -> 14 / 4 / 2
        assert (counts[(name, "train")], counts[(name, "val")], counts[(name, "test")]) == (
            14,
            4,
            2,
        )


def test_every_image_gets_exactly_one_split(flat3):
    data = scan_folder(flat3)
    items = assign_splits(data, 0.2, 0.1, seed=0)
    paths = [i.path for i in items]
    assert len(paths) == len(set(paths)) == len(data.items)
    assert {i.split for i in items} == set(SPLITS)
    assert sorted(paths) == sorted(i.path for i in data.items)
    # labels are not changed by the split
    assert {i.path: i.label for i in items} == {i.path: i.label for i in data.items}


def test_same_seed_same_split(flat3):
    data = scan_folder(flat3)
    assert assign_splits(data, 0.2, 0.1, seed=5) == assign_splits(data, 0.2, 0.1, seed=5)


def test_different_seed_different_split(flat3):
    data = scan_folder(flat3)
    a = relative_splits(assign_splits(data, 0.2, 0.1, seed=1), flat3)
    b = relative_splits(assign_splits(data, 0.2, 0.1, seed=2), flat3)
    assert a.keys() == b.keys()
    assert a != b


def test_same_folder_elsewhere_gets_the_same_split(flat3, tmp_path):
    copy = shutil.copytree(flat3, tmp_path / "elsewhere" / "copy")
    a = relative_splits(assign_splits(scan_folder(flat3), 0.2, 0.1, seed=3), flat3)
    b = relative_splits(assign_splits(scan_folder(copy), 0.2, 0.1, seed=3), copy)
    assert a == b


def test_zero_test_fraction_gives_no_test_split(flat3):
    items = assign_splits(scan_folder(flat3), 0.25, 0.0, seed=0)
    assert Counter(i.split for i in items) == {"train": 45, "val": 15}


def test_small_class_still_gets_a_test_image(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 20})
    data = scan_folder(root)
    items = assign_splits(data, 0.2, 0.1, seed=0)
    cat = Counter(i.split for i in items if data.classes[i.label] == "cat")
    assert cat == {"train": 1, "val": 1, "test": 1}


def test_presplit_layout_is_kept(presplit):
    data = scan_folder(presplit)
    items = assign_splits(data, 0.5, 0.3, seed=123)  # fractions do not apply
    for item in items:
        assert Path(item.path).relative_to(presplit).parts[0] == item.split
    assert Counter(i.split for i in items) == {"train": 12, "val": 4, "test": 4}


def test_presplit_with_unusable_val_folder(tmp_path, make_dataset):
    root = tmp_path / "d"
    make_dataset(root / "train", {"cat": 3, "dog": 3})
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="the val/ folder of .* has no usable images"):
        assign_splits(scan_folder(root), 0.2, 0.1, seed=0)


def test_too_few_images_to_split(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 2, "dog": 5})
    with pytest.raises(
        DataError,
        match=r"class 'cat' has 2 usable image\(s\): too few to split into train, validation "
        r"and test",
    ):
        assign_splits(scan_folder(root), val_fraction=0.4, test_fraction=0.4, seed=0)


def test_one_image_per_class_is_too_few(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"cat": 1, "dog": 1})
    with pytest.raises(DataError, match="too few|validation|val/"):
        assign_splits(scan_folder(root), 0.2, 0.1, seed=0)


def test_manifest_round_trip(flat3, tmp_path):
    data = scan_folder(flat3)
    items = assign_splits(data, 0.2, 0.1, seed=0)
    manifest = tmp_path / "split.csv"
    write_manifest(manifest, items, data.classes, data.root)

    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "split"]
    assert len(rows) == 60
    assert all(not Path(r["path"]).is_absolute() for r in rows)  # relative to the data folder
    assert all(r["path"].split("/")[0] == r["label"] for r in rows)

    back = read_manifest(manifest, data.classes, data.root)
    assert [(i.path, i.label, i.split) for i in back] == [(i.path, i.label, i.split) for i in items]

    test_only = read_manifest(manifest, data.classes, data.root, split="test")
    assert [i.path for i in test_only] == [i.path for i in items if i.split == "test"]
    assert len(test_only) == 6


def test_manifest_resolves_against_a_moved_root(flat3, tmp_path):
    data = scan_folder(flat3)
    items = assign_splits(data, 0.2, 0.1, seed=0)
    manifest = tmp_path / "split.csv"
    write_manifest(manifest, items, data.classes, data.root)
    moved = shutil.copytree(flat3, tmp_path / "moved")
    back = read_manifest(manifest, data.classes, str(moved))
    assert all(Path(i.path).exists() and str(moved) in i.path for i in back)


def test_manifest_keeps_absolute_paths_outside_the_root(tmp_path, flat2):
    data = scan_folder(flat2)
    items = assign_splits(data, 0.2, 0.1, seed=0)
    manifest = tmp_path / "split.csv"
    write_manifest(manifest, items, data.classes, str(tmp_path / "somewhere_else"))
    back = read_manifest(manifest, data.classes, str(tmp_path / "ignored"))
    assert [i.path for i in back] == [i.path for i in items]


def test_manifest_with_unicode_commas_and_spaces(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"hündin": 3, "кот": 3})
    (root / "кот" / "кот_000.png").rename(root / "кот" / "фото, 1.png")
    data = scan_folder(root)
    items = assign_splits(data, 0.34, 0.0, seed=0)
    write_manifest(tmp_path / "split.csv", items, data.classes, data.root)
    back = read_manifest(tmp_path / "split.csv", data.classes, data.root)
    assert [(i.path, i.label, i.split) for i in back] == [(i.path, i.label, i.split) for i in items]


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match=r"split manifest '.*split.csv' is missing"):
        read_manifest(tmp_path / "split.csv", ["a", "b"], str(tmp_path))


# ---------------------------------------------------------------------------- groups


def test_singleton_groups_give_exactly_the_ungrouped_split(flat3):
    data = scan_folder(flat3)
    groups = {i.path: n for n, i in enumerate(data.items)}
    assert assign_splits(data, 0.2, 0.1, seed=4, groups=groups) == assign_splits(
        data, 0.2, 0.1, seed=4
    )


def test_groups_stay_whole_and_classes_stay_stratified(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"a": 40, "b": 40})
    data = scan_folder(root)
    # 8 "patients" per class, 5 images each
    groups = {i.path: (i.label, int(Path(i.path).stem.split("_")[1]) // 5) for i in data.items}
    for seed in range(5):
        items = assign_splits(data, 0.2, 0.1, seed=seed, groups=groups)
        split_of = {}
        for item in items:
            assert split_of.setdefault(groups[item.path], item.split) == item.split
        counts = Counter((i.label, i.split) for i in items)
        for label in (
            0,
            1,
        ):  # targets 28 / 8 / 4 — reachable exactly with groups of 5 only within one group
            assert abs(counts[(label, "val")] - 8) <= 3 and abs(counts[(label, "test")] - 4) <= 3
            assert counts[(label, "train")] >= 25


def test_a_duplicate_across_classes_lands_in_one_split(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"a": 10, "b": 10})
    data = scan_folder(root)
    pair = (str(root / "a" / "a_003.png"), str(root / "b" / "b_007.png"))
    groups = {p: "dup" for p in pair}
    for seed in range(10):
        items = {i.path: i.split for i in assign_splits(data, 0.2, 0.2, seed=seed, groups=groups)}
        assert items[pair[0]] == items[pair[1]]


def test_a_planted_duplicate_is_split_apart_without_groups_and_never_with_them(
    tmp_path, make_dataset
):
    from helpers import plant_copy

    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data

    root = make_dataset(tmp_path / "d", {"a": 12, "b": 12}, fmt="jpg")
    plant_copy(root / "a" / "a_000.jpg", root / "a" / "a_000_copy.jpg")
    data = scan_folder(root)
    pair = [str(root / "a" / "a_000.jpg"), str(root / "a" / "a_000_copy.jpg")]
    apart = 0
    for seed in range(12):
        plain = {i.path: i.split for i in assign_splits(data, 0.2, 0.2, seed=seed)}
        apart += plain[pair[0]] != plain[pair[1]]
        cfg = TrainConfig(data=str(root), seed=seed, val_fraction=0.2, test_fraction=0.2)
        _, items, _ = prepare_training_data(data, cfg, verbose=0)
        grouped = {i.path: i.split for i in items}
        assert grouped[pair[0]] == grouped[pair[1]]
    assert apart > 0  # the test can fail: without groups the pair does get separated


def test_one_big_group_goes_to_train(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"a": 4, "b": 10})
    data = scan_folder(root)
    groups = {i.path: "same" for i in data.items if i.label == 0}
    items = assign_splits(data, 0.2, 0.1, seed=0, groups=groups)
    assert {i.split for i in items if i.label == 0} == {"train"}


def test_a_class_whose_groups_all_fit_val_and_test_cannot_be_trained(tmp_path, make_dataset):
    root = make_dataset(tmp_path / "d", {"a": 5, "b": 10})
    data = scan_folder(root)
    groups = {
        i.path: ("g1" if "a_00" in i.path and int(i.path[-5]) < 3 else "g2")
        for i in data.items
        if i.label == 0
    }
    with pytest.raises(
        DataError, match=r"class 'a': all its 5 image\(s\) are in groups placed in val/test"
    ):
        assign_splits(data, 0.4, 0.4, seed=0, groups=groups)
