"""The shared fixtures keep tests off the user's files: every test has its own feature cache."""

from __future__ import annotations

import os
from pathlib import Path


def test_every_test_has_its_own_cache_without_asking(tmp_path):
    assert os.environ["IMGCLF_CACHE"] == str(tmp_path / "cache")
    assert not Path(os.environ["IMGCLF_CACHE"]).is_relative_to(Path.home() / ".cache")
