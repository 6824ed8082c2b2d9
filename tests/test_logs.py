"""The library logs, the front end prints (imgclf.logs): a library user gets silence unless they
configure logging or pass verbose; the command line shows the same lines as before."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import imgclf
from imgclf.logs import to_terminal
from tests.helpers import make_dataset

PACKAGE = Path(imgclf.__file__).parent
FRONT_ENDS = {"cli.py", "progress.py", "serving/commands.py", "serving/predict_command.py"}
TINY = dict(model="cnn", image_size=32, epochs=1, report=False, precise_bn=0)


def test_only_the_front_ends_print():
    printing = set()
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.add(name)
    library = {n for n in printing if n not in FRONT_ENDS and not n.startswith("commands/")}
    assert not library, f"library modules print instead of logging: {sorted(library)}"


def test_to_terminal_prints_info_on_stdout_and_warnings_on_stderr(capsys):
    log = logging.getLogger("imgclf.somewhere")
    log.info("before: not shown")
    with to_terminal():
        log.info("doctor: 3 classes")
        log.warning("predicting with Keras")
    with to_terminal(info=False):  # --quiet: the warnings still reach the user
        log.info("quiet: not shown")
        log.warning("a first conversion")
    log.warning("after: not shown either (the NullHandler keeps lastResort quiet)")
    out, err = capsys.readouterr()
    assert out == "doctor: 3 classes\n"
    assert err == "imgclf: predicting with Keras\nimgclf: a first conversion\n"


def test_a_library_user_gets_silence_then_the_lines_when_asking(tmp_path, capsys, caplog):
    data = make_dataset(tmp_path / "pets", {"cat": 12, "dog": 12}, seed=3)
    with caplog.at_level(logging.INFO, logger="imgclf"):
        imgclf.train(data, out=tmp_path / "runs", **TINY)
    out, err = capsys.readouterr()
    assert out == "" and "stage train" not in err  # nothing printed by default ...
    said = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("imgclf"))
    assert "stage train: cnn from scratch" in said  # ... but logged for a configured handler
    assert "confusion matrix" in said and "run saved to" in said
    imgclf.train(data, out=tmp_path / "runs", verbose=1, **TINY)
    out = capsys.readouterr().out  # verbose=1: as `imgclf train` prints
    assert "stage train: cnn from scratch" in out and "run saved to" in out
