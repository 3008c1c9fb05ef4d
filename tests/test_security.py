"""The kernel cache executes only what flowgraph wrote (issue 15, cache scenarios).

Each test is one scenario of the issue's fault battery that used to misbehave:

1. test_planted_pyc_is_never_executed: an unchecked-hash ``.pyc`` planted in
   ``__pycache__`` for a kernel module ran its code.
2. test_planted_numba_index_and_data_are_never_unpickled: a planted ``.nbi`` (and
   ``.nbc``) was unpickled, running its code.
3. test_cache_folder_writable_by_others_or_not_yours_is_refused: a mode-0777 folder (or
   one owned by another user) was used without a word.
4. test_swapped_nbc_files_are_rebuilt_not_trusted: two kernels' ``.nbc`` files swapped
   gave wrong values, then a heap-corruption abort.
5. test_read_only_empty_cache_folder_compiles_in_memory: bare ``PermissionError``.
6. test_cache_path_under_a_regular_file_compiles_in_memory: bare ``NotADirectoryError``.
7. test_cache_entry_that_is_a_directory_compiles_in_memory: bare ``IsADirectoryError``.
8. test_read_only_filled_cache_stays_inside_flowgraph_folder: Numba recompiled into its
   own folder outside flowgraph's.

Every scenario runs in child processes (a new process is what loads a cache): each
checks the values computed, how many kernels Numba compiled, the warnings, and which
files exist afterwards. The compiled path is what uses the cache; the last test checks
that the reference path never touches it.
"""
import glob
import importlib.util
import json
import os
import pickle
import py_compile
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two distinct Numba kernels of one signature (float64[::1] in, float64[::1] out), run
# as two plans; the child reports values, compiles, and the kernel-cache warnings.
CHILD = r"""
import json, sys, warnings
import numpy as np
import flowgraph as fg
from numba.core.dispatcher import _FunctionCompiler
compiled = []
orig = _FunctionCompiler._compile_core
def counting(self, *a, **k):
    compiled.append(1)
    return orig(self, *a, **k)
_FunctionCompiler._compile_core = counting
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x = fg.placeholder(fg.float64, (3,))
    y1 = fg.tanh(x * 3.0) - fg.sigmoid(x) * 0.25
    y2 = fg.exp(x) * 0.5 - x / 3.0
    # eager: the kernels compile (and touch the cache) before the first run returns
    config = fg.SessionConfig(compile="eager")
    with fg.Session(config=config) as sess:
        v1 = sess.run(y1, {x: [0.1, 0.2, 0.3]})
        v2 = sess.run(y2, {x: [0.1, 0.2, 0.3]})
print(json.dumps({"y1": v1.tolist(), "y2": v2.tolist(), "compiled": len(compiled),
                  "warnings": [str(w.message) for w in caught
                               if issubclass(w.category, fg.errors.KernelCacheWarning)]}))
"""

X = np.array([0.1, 0.2, 0.3])
Y1 = np.tanh(X * 3.0) - 1 / (1 + np.exp(-X)) * 0.25
Y2 = np.exp(X) * 0.5 - X / 3.0


def child_env(tmp_path, cache, key=None):
    """The child's environment: its cache folder, its key (by default a new one under
    ``tmp_path``), and Numba's user-wide cache folder redirected under
    ``tmp_path/xdg`` (to see writes there)."""
    return dict(os.environ, PYTHONPATH=ROOT, FLOWGRAPH_CACHE_DIR=str(cache),
                FLOWGRAPH_CACHE_KEY=str(key or tmp_path / "key" / "kernel-cache.key"),
                XDG_CACHE_HOME=str(tmp_path / "xdg"), NUMBA_CACHE_DIR="")


def run_child(tmp_path, cache, key=None):
    proc = subprocess.run([sys.executable, "-c", CHILD], env=child_env(tmp_path, cache, key),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["y1"], Y1, rtol=1e-12)
    np.testing.assert_allclose(result["y2"], Y2, rtol=1e-12)
    return result


def tree(folder):
    """Every path under ``folder`` (relative), with file contents' sizes."""
    out = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(base, name)
            out[os.path.relpath(path, folder)] = os.path.getsize(path) if name in files else -1
    return out


class Plant:
    """A pickle that, when unpickled, creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def filled_once(tmp_path_factory):
    """A cache folder filled by one child run, and its key (filled once per module)."""
    base = tmp_path_factory.mktemp("filled")
    key = base / "key" / "kernel-cache.key"
    first = run_child(base, base / "cache", key)
    assert first["compiled"] >= 2 and first["warnings"] == []
    return base / "cache", key


@pytest.fixture
def filled(tmp_path, filled_once):
    """A copy of the filled cache folder for this test, with the key in its place
    (``tmp_path/key``): the seals name files relative to the folder, so they hold."""
    cache, key = filled_once
    shutil.copytree(cache, tmp_path / "cache")
    (tmp_path / "key").mkdir()
    shutil.copy2(key, tmp_path / "key" / "kernel-cache.key")
    return tmp_path / "cache"


def test_planted_pyc_is_never_executed(tmp_path, filled):
    marker = tmp_path / "pyc_ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n")
    sources = glob.glob(str(filled / "fg_*.py"))
    assert sources
    for source in sources:
        # The .pyc the import system would pick for this file, not checked against it.
        py_compile.compile(str(evil), cfile=importlib.util.cache_from_source(source),
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    second = run_child(tmp_path, filled)
    assert not marker.exists(), "a planted .pyc was executed"
    assert second["compiled"] == 0          # the sealed Numba entries still load


def test_planted_numba_index_and_data_are_never_unpickled(tmp_path, filled):
    import numba
    marker = tmp_path / "pickle_ran"
    files = glob.glob(str(filled / "__pycache__" / "*.nb[ic]"))
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    for path in files:
        with open(path, "wb") as f:
            if path.endswith(".nbi"):       # what stock Numba would unpickle: version, body
                pickle.dump(numba.__version__, f, protocol=-1)
            f.write(pickle.dumps(Plant(str(marker))))
    second = run_child(tmp_path, filled)
    assert not marker.exists(), "a planted Numba cache file was unpickled"
    assert second["compiled"] >= 2          # rebuilt
    assert len(second["warnings"]) == 1 and "authentication" in second["warnings"][0]
    third = run_child(tmp_path, filled)     # the rebuilt entries are sealed and load
    assert third["compiled"] == 0 and third["warnings"] == []


@pytest.mark.parametrize("how", ["mode 0777", "another owner"])
def test_cache_folder_writable_by_others_or_not_yours_is_refused(tmp_path, how):
    cache = tmp_path / "cache"
    cache.mkdir()
    if how == "mode 0777":
        os.chmod(cache, 0o777)
    else:
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(cache, 65534, 65534)
    result = run_child(tmp_path, cache)
    assert len(result["warnings"]) == 1, result["warnings"]
    assert str(cache) in result["warnings"][0] and "compile in memory" in result["warnings"][0]
    assert result["compiled"] >= 2
    assert tree(cache) == {}                 # nothing written into the refused folder
    assert not (tmp_path / "xdg").exists()   # nor into Numba's own folder


def test_swapped_nbc_files_are_rebuilt_not_trusted(tmp_path, filled):
    data = sorted(glob.glob(str(filled / "__pycache__" / "*.nbc")))
    kernels = {os.path.basename(p).split(".")[0] for p in data}
    assert len(data) == 2 and len(kernels) == 2, data
    a, b = (open(p, "rb").read() for p in data)
    open(data[0], "wb").write(b)
    open(data[1], "wb").write(a)
    second = run_child(tmp_path, filled)     # right values (checked in run_child)
    assert second["compiled"] >= 2
    assert len(second["warnings"]) == 1 and "authentication" in second["warnings"][0]
    third = run_child(tmp_path, filled)      # and later runs are fine (no abort)
    assert third["compiled"] == 0 and third["warnings"] == []


def test_read_only_empty_cache_folder_compiles_in_memory(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o555)
    try:
        result = run_child(tmp_path, cache)
    finally:
        os.chmod(cache, 0o755)
    assert len(result["warnings"]) == 1 and "read-only" in result["warnings"][0]
    assert result["compiled"] >= 2 and tree(cache) == {}
    assert not (tmp_path / "xdg").exists()


def test_cache_path_under_a_regular_file_compiles_in_memory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_child(tmp_path, blocker / "cache")
    assert len(result["warnings"]) == 1 and "cannot be created" in result["warnings"][0]
    assert result["compiled"] >= 2 and blocker.read_text() == "not a folder"


def test_cache_entry_that_is_a_directory_compiles_in_memory(tmp_path, filled):
    sources = sorted(glob.glob(str(filled / "fg_*.py")))
    indexes = sorted(glob.glob(str(filled / "__pycache__" / "*.nbi")))
    # The first kernel's source file and the second kernel's index become folders.
    os.remove(sources[0])
    os.mkdir(sources[0])
    second_stem = os.path.basename(sources[1])[:-3]
    index = next(p for p in indexes if os.path.basename(p).startswith(second_stem))
    os.remove(index)
    os.mkdir(index)
    result = run_child(tmp_path, filled)
    assert result["compiled"] >= 2
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "IsADirectoryError" in result["warnings"][0]
    assert os.path.isdir(sources[0]) and os.path.isdir(index)


def test_read_only_filled_cache_stays_inside_flowgraph_folder(tmp_path, filled):
    before = tree(filled)
    for base, dirs, files in os.walk(filled):
        for name in files:
            os.chmod(os.path.join(base, name), 0o444)
    for base, dirs, files in list(os.walk(filled))[::-1]:
        os.chmod(base, 0o555)
    try:
        result = run_child(tmp_path, filled)
    finally:
        for base, dirs, files in os.walk(filled):
            os.chmod(base, 0o755)
    assert len(result["warnings"]) == 1 and "read-only" in result["warnings"][0]
    assert tree(filled) == before            # nothing written in flowgraph's folder
    assert not (tmp_path / "xdg").exists()   # nor in Numba's user-wide folder


def test_reference_path_never_touches_the_cache(tmp_path):
    code = CHILD.replace('fg.SessionConfig(compile="eager")', "fg.SessionConfig(optimize=False)")
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(tmp_path, cache),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["y1"], Y1, rtol=1e-6)
    assert result["compiled"] == 0 and not cache.exists()


def test_key_readable_by_others_is_refused(tmp_path):
    key = tmp_path / "key" / "kernel-cache.key"
    key.parent.mkdir()
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o644)
    cache = tmp_path / "cache"
    result = run_child(tmp_path, cache)
    assert len(result["warnings"]) == 1 and "readable or writable by others" in \
        result["warnings"][0]
    assert not glob.glob(str(cache / "__pycache__" / "*"))
    shutil.rmtree(cache, ignore_errors=True)


def _cuda_cache_class():
    """numba-cuda's CUDACache; under the CUDA simulator (which has none) a cache class
    built the same way on numba-cuda's own caching module."""
    try:
        from numba.cuda.dispatcher import CUDACache
        return CUDACache
    except ImportError:
        caching = pytest.importorskip("numba.cuda.core.caching")

        class Impl(caching.CacheImpl):
            def reduce(self, data):
                return data

            def rebuild(self, target_context, payload):
                return payload

            def check_cachable(self, data):
                return True

        return type("CUDALikeCache", (caching.Cache,), {"_impl_class": Impl})


def test_cuda_cache_files_are_sealed_too(tmp_path, monkeypatch):
    # numba-cuda's disk cache (used on a real GPU) goes through the same sealed,
    # confined classes; their save/load is exercised here without a GPU.
    import flowgraph as fg
    from kernels import cache, cache_auth
    from kernels.sealed_cache import sealed_cache_class
    monkeypatch.setattr(cache_auth, "_WARNED", set())   # warnings are once per process
    monkeypatch.setenv("FLOWGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FLOWGRAPH_CACHE_KEY", str(tmp_path / "key"))
    module = cache.load_module("def fused(a):\n    return a  # test_security\n",
                               subdir="cuda", stem="fused")
    sealed = sealed_cache_class(_cuda_cache_class())(module.fused, module.__flowgraph_trust__)
    assert os.path.dirname(sealed._cache_path) == str(tmp_path / "cache" / "cuda")
    sealed._cache_file.save(("key",), {"kernel": 1})
    assert sealed._cache_file.load(("key",)) == {"kernel": 1}
    data = glob.glob(os.path.join(sealed._cache_path, "*.nbc"))
    assert len(data) == 1
    with open(data[0], "r+b") as f:          # one flipped byte of the payload
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.warns(fg.errors.KernelCacheWarning, match="authentication"):
        assert sealed._cache_file.load(("key",)) is None
    assert not os.path.exists(data[0])       # deleted, to be rebuilt
