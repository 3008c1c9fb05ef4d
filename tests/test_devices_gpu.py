"""Device discovery and the CUDA runtime's launch sizes."""
import ctypes.util
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")

import flowgraph as fg  # noqa: E402
from kernels.cuda import runtime as rt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, **env_changes):
    env = dict(os.environ, PYTHONPATH=ROOT)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_flowgraph_does_not_import_numba_cuda():
    proc = _python("import sys, flowgraph\n"
                   "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', "
                   "'numba_cuda'))))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_gpu_listed_under_the_simulator():
    proc = _python("import flowgraph as fg; print(fg.list_devices())",
                   NUMBA_ENABLE_CUDASIM="1")
    assert proc.stdout.strip() == "['/cpu:0', '/gpu:0']", proc.stderr


NO_DRIVER = not (os.path.exists("/dev/nvidiactl") or ctypes.util.find_library("cuda"))
needs_no_driver = pytest.mark.skipif(
    not NO_DRIVER, reason="this machine has an NVIDIA driver: a GPU may really be there")


@needs_no_driver
def test_without_driver_or_simulator_only_the_cpu_is_listed():
    proc = _python("import flowgraph as fg; print(fg.list_devices())",
                   NUMBA_ENABLE_CUDASIM=None)
    assert proc.stdout.strip() == "['/cpu:0']", proc.stderr


@needs_no_driver
def test_placing_on_gpu_without_one_is_a_placement_error_naming_op_and_device():
    proc = _python(
        "import flowgraph as fg\n"
        "c = fg.constant(1.0)\n"
        "with fg.device('/gpu:0'):\n"
        "    y = fg.exp(c, name='needs_gpu')\n"
        "try:\n"
        "    fg.Session().run(y)\n"
        "except fg.errors.PlacementError as e:\n"
        "    print('PlacementError', e)\n"
        "print(fg.Session(config=fg.SessionConfig(allow_soft_placement=True)).run(y))\n",
        NUMBA_ENABLE_CUDASIM=None)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("PlacementError") and "needs_gpu" in lines[0] \
        and "/gpu:0" in lines[0], proc.stdout + proc.stderr
    assert abs(float(lines[1]) - 2.7182817) < 1e-5


def test_launch_sizes_are_tiny_under_the_simulator():
    if not rt.simulator_enabled():
        blocks, threads = rt.launch_config(10 ** 6)
        assert threads >= 32 and blocks > 1
        return
    assert rt.launch_config(10 ** 6) == (1, 8)
    assert rt.matmul_config() == (2, 2, 2) and rt.reduce_threads() == 8


def test_canonical_gpu_device_names():
    g = fg.Graph()
    with g.as_default():
        for spelling in ("/device:GPU:1", "gpu:1", "/GPU:1"):
            with fg.device(spelling):
                assert fg.constant(0.0).device == "/gpu:1"


def test_kernels_are_loaded_once_per_structure_from_source_files(tmp_path, monkeypatch):
    from kernels.cuda import codegen
    monkeypatch.setenv("FLOWGRAPH_CACHE_DIR", str(tmp_path))
    spec = codegen.FusedSpec(ops=(("Mul", (), (("in", 0), ("in", 0)), "float64", False),
                                  ("Tanh", (), (("t", 0),), "float64", False)),
                             modes=("full",), outputs=(1,))
    source = codegen.kernel_source(spec) + "\n# a structure no other test loads\n"
    first = codegen.load_kernel(source, "fused")
    assert codegen.load_kernel(source, "fused") is first  # compiled once, reused
    files = list((tmp_path / "cuda").glob("fused_*.py"))
    assert len(files) == 1 and "t1 = np.float64(math.tanh(t0))" in files[0].read_text()
    if not rt.simulator_enabled():  # numba's on-disk cache (sealed) keys on this file
        from kernels.sealed_cache import SealedCache
        assert isinstance(first._cache, SealedCache)
