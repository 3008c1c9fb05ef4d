"""Shared fixtures: every test gets a fresh default graph.

Hypothesis runs under the ``flowgraph`` profile: derandomized (the same examples on
every run and machine), modest example counts, no deadline (a first run may compile).
``HYPOTHESIS_PROFILE=randomized`` draws fresh examples on every run (tests keep their
own ``max_examples``), to hunt for new failures locally.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("FLOWGRAPH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                          ".pytest_cache", "flowgraph"))

import flowgraph as fg  # noqa: E402

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
