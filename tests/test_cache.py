"""The on-disk kernel cache: shared by processes, never trusting a corrupt entry."""
import glob
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A child process: build a graph, run it compiled, print the result, how many
# kernels Numba actually compiled (0 when everything came from the disk cache) and
# whether Numba's compiler registries were loaded (numba.np.arraymath is one of them).
CHILD = r"""
import sys
import numpy as np
import flowgraph as fg
from numba.core.dispatcher import _FunctionCompiler
compiled = []
orig = _FunctionCompiler._compile_core
def counting(self, *a, **k):
    compiled.append(1)
    return orig(self, *a, **k)
_FunctionCompiler._compile_core = counting
x = fg.placeholder(fg.float64, (3,))
y = fg.tanh(x * 3.0) - fg.sigmoid(x) * 0.25
with fg.Session(config=fg.SessionConfig(compile="eager")) as sess:   # compiles in run
    out = sess.run(y, {x: [0.1, 0.2, 0.3]})
print(repr(out.tolist()), len(compiled), "numba.np.arraymath" in sys.modules)
"""


def run_child(cache_dir, with_registries=False):
    env = dict(os.environ, FLOWGRAPH_CACHE_DIR=str(cache_dir), PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    values, compiles, registries = proc.stdout.strip().rsplit(" ", 2)
    result = eval(values), int(compiles)
    return result + (registries == "True",) if with_registries else result


def expected():
    x = np.array([0.1, 0.2, 0.3])
    return np.tanh(x * 3.0) - 1 / (1 + np.exp(-x)) * 0.25


def test_second_process_loads_kernels_from_disk(tmp_path):
    first, compiled_first = run_child(tmp_path)
    second, compiled_second, registries = run_child(tmp_path, with_registries=True)
    np.testing.assert_allclose(first, expected(), rtol=1e-12)
    np.testing.assert_allclose(second, expected(), rtol=1e-12)
    assert compiled_first >= 1
    assert compiled_second == 0
    # Loading cached machine code skips Numba's compiler set-up (about 0.4 s; see
    # kernels/cache.py _load_compiled): a Numba upgrade that breaks it shows here.
    assert not registries
    assert glob.glob(str(tmp_path / "fg_*.py"))
    assert not glob.glob(str(tmp_path / "*.tmp"))   # atomic writes leave no temp files


def test_corrupt_entries_are_rebuilt_not_trusted(tmp_path):
    run_child(tmp_path)
    for path in glob.glob(str(tmp_path / "__pycache__" / "*")):
        with open(path, "wb") as f:
            f.write(b"\x80garbage that is not a pickle")
    values, compiled = run_child(tmp_path)
    np.testing.assert_allclose(values, expected(), rtol=1e-12)
    assert compiled >= 1
    # A corrupt generated source file: rewritten from the expected text, not imported.
    for path in glob.glob(str(tmp_path / "fg_*.py")):
        with open(path, "w") as f:
            f.write("raise SystemExit('corrupt cache entry was imported')\n")
    values, _ = run_child(tmp_path)
    np.testing.assert_allclose(values, expected(), rtol=1e-12)


def test_concurrent_processes_share_one_cache(tmp_path):
    env = dict(os.environ, FLOWGRAPH_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        np.testing.assert_allclose(eval(out.strip().rsplit(" ", 2)[0]), expected(),
                                   rtol=1e-12)
    values, compiled = run_child(tmp_path)
    assert compiled == 0


def test_importing_flowgraph_compiles_nothing():
    code = ("import sys, flowgraph, kernels; "
            "print('numba' in sys.modules, 'numba.cuda' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT, timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


MIXED_CHILD = CHILD.replace("print(", "z = fg.exp(x) * 0.5 - x / 3.0\n"
                            "with fg.Session(config=fg.SessionConfig(compile=\"eager\")) as sess:\n"
                            "    out = sess.run(z, {x: [0.1, 0.2, 0.3]})\n"
                            "print(")


def test_compiling_after_loading_from_disk(tmp_path):
    # A process that first loads kernels from the disk cache (skipping Numba's compiler
    # set-up) and then compiles a new kernel: the compile sets Numba up as usual.
    run_child(tmp_path)
    env = dict(os.environ, FLOWGRAPH_CACHE_DIR=str(tmp_path), PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", MIXED_CHILD], env=env, capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    values, compiles, registries = proc.stdout.strip().rsplit(" ", 2)
    x = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(eval(values), np.exp(x) * 0.5 - x / 3.0, rtol=1e-12)
    assert int(compiles) >= 1 and registries == "True"
