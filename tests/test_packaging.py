"""The README and pyproject.toml say what the code does: environment variables, dependency
versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "imgclf").rglob("*.py")))


def test_every_environment_variable_the_readme_names_is_read_by_the_code():
    named = set(re.findall(r"\$(IMGCLF_[A-Z_]+)", (ROOT / "README.md").read_text(encoding="utf-8")))
    read = set(re.findall(r"""environ(?:\.get\(|\[)\s*["'](IMGCLF_[A-Z_]+)["']""", code_text()))
    read |= set(re.findall(r"""^\w*ENV\w* = ["'](IMGCLF_[A-Z_]+)["']""", code_text(), re.MULTILINE))
    assert named, "the README names the cache variable"
    assert named <= read, f"named in README.md but never read: {sorted(named - read)}"


def test_pyproject_states_the_numpy_the_code_needs():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "dependencies"
    ]
    numpy = next(d for d in deps if re.match(r"numpy\b", d))
    if "bitwise_count" in code_text():  # new in NumPy 2.0
        assert re.search(r">=\s*2(\.|$|,)", numpy), numpy
