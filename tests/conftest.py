"""Shared fixtures: every test gets a fresh default graph, and runs with the session
default ``optimize`` chosen on the command line.

``pytest --optimize=on`` (the default) runs sessions through the graph compiler,
``--optimize=off`` through the NumPy reference path, ``--optimize=both`` runs every
test twice. A test that passes an explicit ``SessionConfig(optimize=...)`` keeps it.
``--compile=eager`` (the default here) compiles generated kernels before a first run
returns; ``never`` and ``background`` as ``SessionConfig.compile`` says.

Hypothesis runs under the ``flowgraph`` profile: derandomized (the same examples on
every run and machine), modest example counts, no deadline (a first run may compile).
``HYPOTHESIS_PROFILE=randomized`` draws fresh examples on every run (tests keep their
own ``max_examples``), to hunt for new failures locally.
"""
import dataclasses
import os
import sys

# The tests' matrices are tiny and xdist already runs one worker per core: a
# multithreaded BLAS only oversubscribes the machine (measured 10-20x slower steps on a
# busy 2-core machine). Must be set before NumPy loads its BLAS.
if "numpy" not in sys.modules:
    for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("FLOWGRAPH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                          ".pytest_cache", "flowgraph"))

import flowgraph as fg  # noqa: E402
from flowgraph.session import SessionConfig  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--optimize", choices=("on", "off", "both"), default="on",
                     help="default SessionConfig.optimize for the tests (both: run twice)")
    # The suite compiles eagerly by default, so that a test sees the plan it asserts
    # about (generated kernels in place); --compile=never runs every compiled plan on
    # its interim ufunc chains, --compile=background as users run by default.
    parser.addoption("--compile", choices=("background", "eager", "never"),
                     default="eager", help="default SessionConfig.compile for the tests")


def pytest_generate_tests(metafunc):
    if "optimize_mode" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--optimize")
        modes = ["on", "off"] if choice == "both" else [choice]
        metafunc.parametrize("optimize_mode", modes, indirect=True,
                             ids=[f"optimize={m}" for m in modes] if len(modes) > 1 else None)


@pytest.fixture(autouse=True)
def optimize_mode(request):
    """Set the default of ``SessionConfig.optimize`` for this test."""
    mode = getattr(request, "param", request.config.getoption("--optimize"))
    mode = "on" if mode == "both" else mode
    init = SessionConfig.__init__
    saved = init.__defaults__
    # The defaults by field name (optimize is the first field of SessionConfig).
    names = [f.name for f in dataclasses.fields(SessionConfig)]
    defaults = list(saved)
    defaults[names.index("optimize")] = mode == "on"
    defaults[names.index("compile")] = request.config.getoption("--compile")
    init.__defaults__ = tuple(defaults)
    try:
        yield mode
    finally:
        init.__defaults__ = saved

settings.register_profile("flowgraph", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("randomized", max_examples=15, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "flowgraph"))


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own default graph."""
    graph = fg.Graph()
    with graph.as_default():
        yield graph


# --- GPU tests (issue 4): without an NVIDIA driver, numba.cuda runs its simulator. ----
# Set before anything imports numba.cuda (flowgraph imports it lazily, on first use).
def _nvidia_driver_present():
    import ctypes.util
    return os.path.exists("/dev/nvidiactl") or ctypes.util.find_library("cuda") is not None


if not _nvidia_driver_present():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


@pytest.fixture
def needs_gpu():
    """For a test that places ops on ``/gpu:0`` (``@pytest.mark.usefixtures("needs_gpu")``):
    skipped, with the reason, where numba-cuda is not installed or numba.cuda sees no
    GPU with the simulator off."""
    pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")
    if "/gpu:0" not in fg.list_devices():
        pytest.skip("numba.cuda sees no GPU and the simulator is off")
