"""imgclf.data.scan and imgclf.data.layout under faults and surprising layouts: symbolic links and
loops, unreadable folders and files, odd names, formats Pillow cannot read, nested classes, split
folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset, manifest_rows, tree_hashes
from PIL import Image

from imgclf.data.layout import check_split_classes
from imgclf.data.scan import check_header, one_line, scan_folder
from imgclf.data.split import read_manifest, write_manifest
from imgclf.errors import DataError
from imgclf.logs import to_terminal


def reasons(data) -> dict[str, str]:
    return {Path(s.path).relative_to(data.root).as_posix(): s.reason for s in data.skipped}


# ---------------------------------------------------------------------------- symbolic links


def test_a_symlink_loop_in_a_class_folder_neither_duplicates_nor_mislabels(tmp_path):
    """The issue's example: 16 real images and a/loop -> .. once became 656, b's images labelled
    a."""
    root = make_dataset(tmp_path / "d", {"a": 8, "b": 8})
    (root / "a" / "loop").symlink_to("..")
    before = tree_hashes(root)
    data = scan_folder(root)
    assert data.counts() == {"a": 8, "b": 8}
    assert len(data.items) == 16
    for item in data.items:
        assert Path(item.path).parent.name == data.classes[item.label]
    assert reasons(data) == {
        "a/loop": "symbolic link to a folder inside the data folder (a loop or a second copy of "
        "it); not followed"
    }
    assert tree_hashes(root) == before


def test_links_to_folders_outside_are_followed_once(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    extra = make_dataset(tmp_path / "elsewhere", {"more": 2})
    (root / "a" / "extra").symlink_to(extra / "more")  # data assembled from links: used
    (root / "b" / "same").symlink_to(extra / "more")  # the same folder again, under another class
    (root / "b" / "up").symlink_to(tmp_path)  # an ancestor of the data folder: a loop through it
    data = scan_folder(root)
    assert data.counts() == {"a": 5, "b": 3}
    why = reasons(data)
    assert why["b/same"].startswith("folder already scanned through another path")
    assert why["b/up"].startswith("symbolic link to a folder inside the data folder")


def test_a_file_reached_twice_through_a_link_counts_once(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    (root / "b" / "also_a.png").symlink_to(root / "a" / "a_000.png")
    (root / "a" / "zz_self.png").symlink_to(root / "a" / "a_001.png")
    data = scan_folder(root)
    assert data.counts() == {"a": 3, "b": 3}
    paths = {Path(i.path).relative_to(root).as_posix() for i in data.items}
    assert {"a/a_000.png", "a/a_001.png"} <= paths  # the real file is the one kept
    why = reasons(data)
    assert set(why) == {"b/also_a.png", "a/zz_self.png"}
    assert why["b/also_a.png"].startswith("same file as ") and why["b/also_a.png"].endswith(
        "a_000.png (through a symbolic link); used once"
    )


# ---------------------------------------------------------------------------- unreadable, vanished,
# odd names


def test_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    """Tests run as root, which reads anything: the permission error is injected where os.walk
    lists."""
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    locked = root / "a" / "locked"
    make_dataset(locked, {"x": 2})
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    data = scan_folder(root)
    assert data.counts() == {"a": 3, "b": 3}
    assert reasons(data) == {"a/locked": "cannot read folder: Permission denied"}


def test_a_file_without_read_permission_is_skipped_with_a_reason(tmp_path, monkeypatch):
    """Root reads a chmod-000 file anyway, so the PermissionError is injected where the header is
    read."""
    from PIL import Image as PILImage

    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    secret = str(root / "a" / "a_001.png")
    real_open = PILImage.open

    def guarded(fp, *args, **kwargs):
        if os.fspath(fp) == secret:
            raise PermissionError(13, "Permission denied", secret)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PILImage, "open", guarded)
    data = scan_folder(root)
    assert data.counts() == {"a": 2, "b": 3}
    assert reasons(data) == {
        "a/a_001.png": f"cannot read: [Errno 13] Permission denied: '{secret}'"
    }


ODD = ["with space.png", "ünïcödé ✓.png", "new\nline.png", 'quote"comma,semi;colon.png']


def test_one_line_escapes_control_characters_only():
    assert one_line("a/new\nline ü\t✓.png") == "a/new\\nline ü\\t✓.png"


def test_names_with_spaces_non_ascii_and_newlines_survive_the_manifest(tmp_path):
    root = make_dataset(tmp_path / "d", {"a b": 3, "çà": 3})
    for k, name in enumerate(ODD):
        (root / ("a b" if k % 2 else "çà") / f"{'a b' if k % 2 else 'çà'}_00{k % 3}.png").rename(
            root / ("a b" if k % 2 else "çà") / name
        )
    data = scan_folder(root)
    assert data.skipped == [] and data.classes == ["a b", "çà"]
    assert {Path(i.path).name for i in data.items} >= set(ODD)
    items = [i.__class__(i.path, i.label, "train") for i in data.items]
    write_manifest(tmp_path / "split.csv", items, data.classes, data.root)
    back = read_manifest(tmp_path / "split.csv", data.classes, data.root)
    assert sorted((i.path, i.label) for i in back) == sorted((i.path, i.label) for i in items)


# ---------------------------------------------------------------------------- formats Pillow cannot
# read

HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


def test_heic_by_extension_or_by_content_names_the_format_and_a_conversion(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / "IMG_0001.HEIC").write_bytes(HEIC_HEAD)
    (root / "b" / "exported.jpg").write_bytes(HEIC_HEAD)  # a phone's HEIC saved under .jpg
    (root / "b" / "photo.jxl").write_bytes(b"\xff\x0a" + bytes(30))
    data = scan_folder(root)
    why = reasons(data)
    for path in ("a/IMG_0001.HEIC", "b/exported.jpg"):
        assert why[path].startswith(
            "HEIC image, which imgclf cannot read; convert it to JPEG or PNG, e.g. "
        )
        assert "heif-convert" in why[path] and "magick mogrify -format jpg" in why[path]
    assert why["b/photo.jxl"].startswith("JPEG XL image") and "djxl" in why["b/photo.jxl"]
    assert data.counts() == {"a": 3, "b": 3}


def test_avif_names_the_format_and_a_conversion(tmp_path):
    from PIL import features

    path = tmp_path / "x.jpg"
    if features.check(
        "avif"
    ):  # this Pillow writes AVIF (and reads it; imgclf's pipeline does not take it)
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path, "AVIF")
    else:
        path.write_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64))
    reason, _, _ = check_header(str(path))
    assert (
        reason.startswith("AVIF image, which imgclf cannot read")
        and "magick mogrify -format jpg *.avif" in reason
    )


# ---------------------------------------------------------------------------- layouts


def test_nested_class_folders_are_warned_about_with_the_choice(tmp_path):
    make_dataset(tmp_path / "d" / "g1", {"a": 3, "b": 3})
    make_dataset(tmp_path / "d" / "g2", {"c": 3, "d": 3})
    data = scan_folder(tmp_path / "d")
    assert data.classes == ["g1", "g2"]
    (warning,) = data.warnings
    assert "every class folder holds only sub-folders (g1/: a, b; g2/: c, d)" in warning
    assert "trains the 2 classes g1, g2" in warning and "DATA/g1" in warning


def test_ordinary_folders_have_no_layout_warning(tmp_path, presplit):
    root = make_dataset(tmp_path / "d", {"a": 3, "b": 3})
    make_dataset(root / "a" / "2023", {"x": 2})  # a class with images and one sub-folder
    assert scan_folder(root).warnings == []
    assert scan_folder(presplit).warnings == []


def test_valid_is_accepted_beside_val_and_validation(tmp_path):
    make_dataset(tmp_path / "d" / "train", {"cat": 4, "dog": 4})
    make_dataset(tmp_path / "d" / "valid", {"cat": 2, "dog": 2})
    data = scan_folder(tmp_path / "d")
    assert data.presplit and sum(i.split == "val" for i in data.items) == 4
    make_dataset(tmp_path / "d" / "val", {"cat": 1, "dog": 1})
    with pytest.raises(
        DataError, match=r"has both val/ and valid/, which mean the same split; keep one"
    ):
        scan_folder(tmp_path / "d")


def test_a_class_named_train_gets_an_error_that_says_what_is_the_case(tmp_path):
    root = make_dataset(tmp_path / "d", {"cat": 3, "dog": 3, "train": 3})  # a class of trains
    with pytest.raises(DataError) as err:
        scan_folder(root)
    text = str(err.value)
    assert "has a folder named train/ beside cat, dog: it looks like a class named 'train'" in text
    assert "rename that folder (e.g. to 'train_')" in text
    assert "no val/" not in text  # not the pre-split advice for data that is not pre-split


def test_a_class_named_test_is_an_ordinary_class(tmp_path):
    root = make_dataset(tmp_path / "d", {"cat": 3, "test": 3})
    data = scan_folder(root)
    assert data.classes == ["cat", "test"] and not data.presplit


def presplit_without(tmp_path, missing: dict[str, str]):
    for split, counts in (("train", 4), ("val", 2), ("test", 2)):
        classes = {c: counts for c in ("cat", "dog", "emu") if missing.get(split) != c}
        make_dataset(tmp_path / "d" / split, classes)
    return scan_folder(tmp_path / "d")


def test_a_class_missing_from_val_is_a_warning(tmp_path):
    data = presplit_without(tmp_path, {"val": "emu"})
    assert check_split_classes(data) == [
        "class(es) 'emu' have no images in val/: their validation loss and accuracy are "
        "not measured"
    ]


def test_a_class_missing_from_test_is_refused_unless_allowed(tmp_path):
    data = presplit_without(tmp_path, {"test": "dog"})
    with pytest.raises(
        DataError,
        match=r"class\(es\) 'dog' have no images in test/ of .*support "
        r"0.*--allow-missing-test-classes",
    ):
        check_split_classes(data)
    assert check_split_classes(data, allow_missing_test=True) == [
        "class(es) 'dog' have no images in test/: their test metrics have support 0"
    ]


def test_complete_or_unsplit_data_passes_the_split_check(tmp_path, flat2, presplit):
    assert check_split_classes(scan_folder(flat2)) == []
    assert check_split_classes(scan_folder(presplit)) == []


# ---------------------------------------------------------------------------- in a run


def test_training_goes_on_past_vanished_files_and_links_and_writes_nothing_into_the_data(
    tmp_path, monkeypatch, capsys
):
    """One run meets a symlink loop, an odd file name, a HEIC photo, and two images deleted after
    the scan (before decoding): one line per problem, training finishes on the rest, and the data
    folder
    (read-only; root could still write, so every file's hash is compared) is unchanged."""
    import imgclf
    from imgclf.training import setup as trainer

    root = make_dataset(tmp_path / "d", {"a": 10, "b": 10})
    (root / "a" / "loop").symlink_to("..")
    (root / "b" / "b_000.png").rename(root / "b" / "new\nline ü.png")
    (root / "a" / "IMG_1.heic").write_bytes(HEIC_HEAD)
    before = tree_hashes(root)
    real_prepare = trainer.prepare_training_data
    vanished = []

    def prepare_then_delete(data, cfg, verbose=1):
        out = real_prepare(data, cfg, verbose)
        for item in sorted(
            out[1], key=lambda i: "\n" not in i.path
        ):  # the odd name first, if it is in train
            if item.split == "train" and len(vanished) < 2:  # gone between the scan and the decoder
                vanished.append(item.path)
                os.rename(item.path, tmp_path / Path(item.path).name)
        return out

    monkeypatch.setattr(trainer, "prepare_training_data", prepare_then_delete)
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        result = imgclf.train(
            root,
            out=str(tmp_path / "runs"),
            model="cnn",
            image_size=32,
            epochs=1,
            batch_size=8,
            verbose=1,
            report=False,
        )
    finally:
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
        for path in vanished:
            os.rename(tmp_path / Path(path).name, path)
    out = capsys.readouterr().out
    assert tree_hashes(root) == before
    assert "a/loop: symbolic link to a folder inside the data folder" in out
    assert "IMG_1.heic: HEIC image, which imgclf cannot read" in out
    assert any("\n" in p for p in vanished)
    for path in vanished:  # one line each, a newline in a name shown as \n
        expected = f"  skipped {one_line(path)}: cannot decode: [Errno 2] No such file or directory"
        assert any(line.startswith(expected) for line in out.splitlines()), out
    assert result.metrics.n > 0 and (result.run_dir / "model.keras").is_file()
    rows = {r["path"] for r in manifest_rows(result.run_dir)}
    assert len(rows) == 20 and any("new\nline ü.png" in r for r in rows)


# ---------------------------------------------------------------------------- what doctor and train
# show


def test_doctor_and_train_show_the_nested_layout_warning(tmp_path, capsys):
    from imgclf.cli import main
    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data

    make_dataset(tmp_path / "d" / "g1", {"a": 3, "b": 3})
    make_dataset(tmp_path / "d" / "g2", {"c": 3, "d": 3})
    assert main(["doctor", str(tmp_path / "d"), "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "\nLayout (1)\n  every class folder holds only sub-folders (g1/: a, b; g2/: c, d)" in out
    assert "every class folder holds only sub-folders" in (tmp_path / "report.json").read_text()
    with to_terminal():  # the doctor's lines as imgclf train shows them
        prepare_training_data(
            scan_folder(tmp_path / "d"), TrainConfig(data=str(tmp_path / "d")), verbose=1
        )
    assert (
        "doctor: every class folder holds only sub-folders (g1/: a, b; g2/: c, d)"
        in capsys.readouterr().out
    )


def test_train_refuses_a_test_split_without_a_class_unless_allowed(tmp_path, capsys):
    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data

    data = presplit_without(tmp_path, {"test": "emu", "val": "dog"})
    cfg = TrainConfig(data=data.root)
    with pytest.raises(
        DataError, match=r"'emu' have no images in test/.*--allow-missing-test-classes"
    ):
        prepare_training_data(data, cfg, verbose=1)
    with to_terminal():  # the doctor's lines as imgclf train shows them
        _, _, report = prepare_training_data(
            data, TrainConfig(data=data.root, allow_missing_test_classes=True), verbose=1
        )
    out = capsys.readouterr().out
    assert "doctor: class(es) 'dog' have no images in val/" in out
    assert (
        "doctor: class(es) 'emu' have no images in test/: their test metrics have support 0" in out
    )
    assert len(report.to_dict()["layout"]) == 2


def test_the_option_to_allow_it_is_a_train_flag():
    from imgclf.cli import build_parser

    args = build_parser().parse_args(["train", "DATA", "--allow-missing-test-classes"])
    assert args.allow_missing_test_classes is True


def test_presplit_train_without_val_beside_another_folder_gets_the_presplit_advice(tmp_path):
    make_dataset(tmp_path / "d" / "train", {"cat": 2, "dog": 2})
    (tmp_path / "d" / "notes").mkdir()
    with pytest.raises(
        DataError, match=r"is pre-split \(it has train/\) but has no val/, valid/ or validation/"
    ):
        scan_folder(tmp_path / "d")


def test_classes_named_val_and_valid_in_a_flat_folder_are_classes(tmp_path):
    root = make_dataset(tmp_path / "d", {"valid": 3, "val": 3})
    assert scan_folder(root).classes == ["val", "valid"]
