"""The README and pyproject.toml say what the code does: environment variables, dependency
versions."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
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


def imported_top_level_modules() -> set[str]:
    """The third-party modules the package imports (module level or inside functions)."""
    found = set()
    for path in (ROOT / "imgclf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "imgclf"}


def _dist(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_library_the_code_imports_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_dist(d) for d in project["dependencies"]}
    declared |= {_dist(d) for extra in project["optional-dependencies"].values() for d in extra}
    declared |= {"tensorflow-cpu"} if "tensorflow" in declared else set()
    providers = importlib.metadata.packages_distributions()
    missing = {
        module
        for module in imported_top_level_modules()
        if not {_dist(d) for d in providers.get(module, [module])} & declared
    }
    assert "scipy" in imported_top_level_modules()  # calibration's minimize_scalar
    assert not missing, f"imported but not in pyproject.toml's dependencies: {sorted(missing)}"


def test_comments_and_help_texts_stand_on_their_own():
    """No reference to material outside the repository ("the notes' …")."""
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "imgclf").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bnotes'", line)
    ]
    assert not found, f"say what is meant instead of pointing elsewhere: {found}"
