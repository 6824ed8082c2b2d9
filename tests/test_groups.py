"""imgclf.data.groups: --group-by as a regex or a CSV, and merging groups with duplicate
clusters."""

from __future__ import annotations

import pytest

from imgclf.data.groups import UnionFind, check_group_by, group_labels, merge_groups
from imgclf.errors import ConfigError, DataError

ROOT = "/data"
PATHS = [
    f"{ROOT}/{c}/patient{p}_img{i}.png" for c in ("sick", "well") for p in (1, 2) for i in (1, 2)
]


def test_regex_first_group_names_the_group():
    groups = group_labels(PATHS, ROOT, r"patient(\d+)_")
    assert (
        groups[f"{ROOT}/sick/patient1_img1.png"] == groups[f"{ROOT}/well/patient1_img2.png"] == "1"
    )
    assert set(groups.values()) == {"1", "2"}


def test_regex_without_groups_uses_the_whole_match_and_unmatched_paths_are_left_out():
    groups = group_labels(PATHS + [f"{ROOT}/sick/other.png"], ROOT, r"^sick/patient\d")
    assert groups[f"{ROOT}/sick/patient2_img1.png"] == "sick/patient2"
    assert f"{ROOT}/sick/other.png" not in groups and f"{ROOT}/well/patient1_img1.png" not in groups


def test_regex_is_searched_in_the_path_relative_to_the_data_folder():
    assert group_labels([f"{ROOT}/a/x.png"], ROOT, r"^data") == {}


def test_csv_of_path_and_group(tmp_path):
    table = tmp_path / "groups.csv"
    table.write_text(
        f"path,group\nsick/patient1_img1.png,alice\n{ROOT}/well/patient2_img2.png,alice\nnot/there.png,bob\n"
    )
    groups = group_labels(PATHS, ROOT, str(table))
    assert groups == {
        f"{ROOT}/sick/patient1_img1.png": "alice",
        f"{ROOT}/well/patient2_img2.png": "alice",
    }


def test_csv_without_the_columns(tmp_path):
    table = tmp_path / "groups.csv"
    table.write_text("file,patient\na.png,1\n")
    with pytest.raises(
        DataError,
        match=r"group file '.*groups.csv' has columns \['file', 'patient'\]; expected a header "
        r"with 'path' and 'group'",
    ):
        group_labels(PATHS, ROOT, str(table))


@pytest.mark.parametrize(
    "value, message",
    [
        ("", r"invalid value for `group_by`: received ''; expected a regular expression"),
        ("[a-", r"invalid value for `group_by`: received '\[a-'; expected .*regex error"),
        (
            "nowhere.csv",
            r"invalid value for `group_by`: received 'nowhere.csv'; expected .*\(no such file\)",
        ),
    ],
)
def test_bad_group_by(value, message):
    with pytest.raises(ConfigError, match=message):
        check_group_by(value)


def test_merge_groups_joins_named_groups_and_clusters_transitively():
    paths = ["a", "b", "c", "d", "e"]
    ids = merge_groups(paths, {"a": "p1", "c": "p1"}, [["c", "d"]])
    assert ids["a"] == ids["c"] == ids["d"]
    assert len({ids["a"], ids["b"], ids["e"]}) == 3
    assert ids == {"a": 0, "b": 1, "c": 0, "d": 0, "e": 2}  # numbered by first appearance: stable


def test_union_find_components():
    uf = UnionFind(6)
    uf.union(0, 5)
    uf.union(5, 3)
    uf.union(1, 2)
    assert sorted(sorted(c) for c in uf.components()) == [[0, 3, 5], [1, 2], [4]]
