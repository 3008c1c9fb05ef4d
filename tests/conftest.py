"""Shared fixtures: every test gets a fresh default graph, and runs with the session
default ``optimize`` chosen on the command line.

``pytest --optimize=on`` (the default) runs sessions through the graph compiler,
``--optimize=off`` through the NumPy reference path, ``--optimize=both`` runs every
test twice. A test that passes an explicit ``SessionConfig(optimize=...)`` keeps it.
"""
import os

import pytest

os.environ.setdefault("FLOWGRAPH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..",
                                                          ".pytest_cache", "flowgraph"))

import flowgraph as fg  # noqa: E402
from flowgraph.session import SessionConfig  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--optimize", choices=("on", "off", "both"), default="on",
                     help="default SessionConfig.optimize for the tests (both: run twice)")


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
    init.__defaults__ = (mode == "on",) + saved[1:]
    try:
        yield mode
    finally:
        init.__defaults__ = saved


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own default graph."""
    graph = fg.Graph()
    with graph.as_default():
        yield graph
