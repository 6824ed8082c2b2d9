"""Gate checks on the package's shape: no import cycle, modules under 300 lines, a light ``import
imgclf``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imgclf"
MAX_LINES = 300
MAX_FUNCTION_LINES = 60  # def (or its first decorator) to its last line, on the formatted code


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imgclf_imports(path: Path) -> set[str]:
    """The imgclf modules ``path`` imports, at module level or inside functions alike.
    ``from imgclf.models import backbones`` is the submodule; ``from imgclf import x`` the
    package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "imgclf"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] == "imgclf"
        ):
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= subs or {node.module}
            if len(subs) < len(node.names):
                found.add(node.module)
    return {m for m in found if m in MODULES}


GRAPH = {name: imgclf_imports(path) - {name} for name, path in MODULES.items()}


def dependency_order() -> list[str]:
    """Modules with what they import first (depth-first); raises on a cycle, naming it."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = trail[trail.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        state[name] = "open"
        for dep in sorted(GRAPH[name]):
            visit(dep, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(GRAPH):
        visit(name, [])
    return order


def test_the_module_list_is_complete():
    assert {
        "imgclf",
        "imgclf.cli",
        "imgclf.config",
        "imgclf.models.registry",
        "imgclf.training.trainer",
    } <= MODULES.keys()
    assert GRAPH["imgclf.models.registry"].isdisjoint(
        {"imgclf.models.backbones", "imgclf.models.cnn"}
    )


def test_no_import_cycle_in_imgclf():
    order = dependency_order()  # raises naming the cycle
    assert len(order) == len(MODULES)


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    monkeypatch.setitem(
        GRAPH, "imgclf.config", GRAPH["imgclf.config"] | {"imgclf.training.trainer"}
    )
    with pytest.raises(AssertionError, match=r"import cycle: .*imgclf\.config"):
        dependency_order()


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    order = [
        name for name in dependency_order() if name != "imgclf.__main__"
    ]  # that one runs the CLI
    code = (
        "import importlib, json, sys\nfor name in json.loads(sys.argv[1]):\n    "
        "importlib.import_module(name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(order)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_300_lines(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it by concept"


def long_functions(path: Path) -> list[str]:
    """``name (N lines)`` for each function or method in ``path`` longer than MAX_FUNCTION_LINES."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_function_is_over_60_lines(name):
    found = long_functions(MODULES[name])
    assert not found, f"{MODULES[name]}: {', '.join(found)}; name its parts"


def test_the_function_length_check_finds_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"@staticmethod\ndef f():\n{body}", encoding="utf-8")
    assert long_functions(tmp_path / "m.py") == [f"f ({MAX_FUNCTION_LINES + 2} lines)"]


def test_no_formatter_escape_hatch():
    roots = [PACKAGE, PACKAGE.parent / "tests", PACKAGE.parent / "bench", PACKAGE.parent / "tools"]
    marks = ("fmt: " + "skip", "fmt: " + "off")
    found = [
        f"{path}:{number}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(mark in line for mark in marks)
    ]
    assert not found, f"the formatter decides the layout; remove the markers at {found}"


def test_import_imgclf_sets_no_environment_variable_and_loads_no_tensorflow():
    code = (
        "import json, os, sys\nbefore = dict(os.environ)\nimport imgclf\n"
        "print(json.dumps([dict(os.environ) == before, 'tensorflow' in sys.modules, "
        "'keras' in sys.modules,"
        " imgclf.DoctorReport.__name__, imgclf.Metrics.__name__, sorted(imgclf.__all__)]))"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL")
    }
    env["PYTHONPATH"] = str(PACKAGE.parent)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    same_env, tf_loaded, keras_loaded, report, metrics, names = json.loads(done.stdout)
    assert same_env and not tf_loaded and not keras_loaded
    assert (report, metrics) == ("DoctorReport", "Metrics")
    assert {"Run", "Prediction", "Metrics", "TrainResult", "DoctorReport", "train"} <= set(names)


def test_every_public_name_resolves():
    import imgclf

    for name in imgclf.__all__:
        assert getattr(imgclf, name) is not None, name


# docs/architecture.md's table: what each part of the package may import (the front ends: anything)
MAY_IMPORT = {
    "imgclf.errors": set(),
    "imgclf.options": {"imgclf.errors"},
    "imgclf.config_checks": {"imgclf.errors", "imgclf.options"},
    "imgclf.config": {"imgclf.config_checks", "imgclf.errors", "imgclf.options"},
    "imgclf.config_files": {"imgclf.config", "imgclf.errors"},
    "imgclf.runtime": set(),
    "imgclf.atomic": {"imgclf.errors"},
    "imgclf.progress": set(),
    "imgclf.runs": {"imgclf.atomic", "imgclf.config", "imgclf.errors"},
    "imgclf.data": {"imgclf.config", "imgclf.errors", "imgclf.options", "imgclf.progress"},
    "imgclf.models": {
        "imgclf.config",
        "imgclf.data",
        "imgclf.errors",
    },  # config: the thresholds of --model auto (models/choose.py)
    "imgclf.evaluation": {
        "imgclf.data",
        "imgclf.errors",
        "imgclf.models",
        "imgclf.progress",
        "imgclf.runs",
    },
    "imgclf.reporting": {"imgclf.config", "imgclf.data", "imgclf.evaluation", "imgclf.runs"},
    "imgclf.training": {
        "imgclf.atomic",
        "imgclf.config",
        "imgclf.data",
        "imgclf.errors",
        "imgclf.evaluation",
        "imgclf.models",
        "imgclf.options",
        "imgclf.progress",
        "imgclf.reporting",
        "imgclf.runs",
    },
    "imgclf.serving": {
        "imgclf.atomic",
        "imgclf.config",
        "imgclf.data",
        "imgclf.errors",
        "imgclf.evaluation",
        "imgclf.models",
        "imgclf.progress",
        "imgclf.reporting",
        "imgclf.runs",
    },
}


def part(module: str) -> str:
    """``imgclf.data.scan`` → ``imgclf.data``; a top-level module is its own part."""
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("name", sorted(m for m in MODULES if part(m) in MAY_IMPORT))
def test_imports_point_down_the_layers(name):
    outside = {part(m) for m in GRAPH[name]} - {part(name)}
    assert outside <= MAY_IMPORT[part(name)], (
        f"{name} imports {sorted(outside - MAY_IMPORT[part(name)])}"
    )
