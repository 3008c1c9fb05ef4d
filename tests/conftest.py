"""Shared fixtures: every test gets a fresh default graph."""
import os

import pytest

os.environ.setdefault("FLOWGRAPH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                          ".pytest_cache", "flowgraph"))

import flowgraph as fg  # noqa: E402


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
