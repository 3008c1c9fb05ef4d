"""The README's Python examples run as written (blocks with `...` placeholders, MPI and
user test functions are excluded), each in a fresh graph and a temporary directory."""
import os
import re

import numpy as np
import pytest

import flowgraph as fg

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _blocks():
    text = open(README, encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    # not standalone: placeholders, a user's test function, ops on MPI tasks
    runnable = [b for b in blocks if "..." not in b and "@given" not in b and "/job:" not in b]
    return [pytest.param(b, id=b.strip().splitlines()[-1][:40]) for b in runnable]


def test_readme_has_runnable_examples():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("code", _blocks())
def test_readme_example_runs(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with fg.Graph().as_default():
        # blocks that continue an earlier one use its imports
        exec(compile(code, "README.md", "exec"), {"__name__": "readme", "fg": fg, "np": np})


def test_readme_tanh_derivatives_are_the_printed_ones(capsys):
    text = open(README, encoding="utf-8").read()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
                 if "fg.constant(1.0, fg.float64)" in b)
    printed = re.findall(r"^# (\d) (-?[0-9.]+)", block, flags=re.M)
    with fg.Graph().as_default():
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out.split("\n")
    got = {line.split()[0]: float(line.split()[1]) for line in out if line.strip()}
    assert len(printed) == 4
    for order, value in printed:
        assert abs(got[order] - float(value)) < 1e-15, (order, got[order], value)
