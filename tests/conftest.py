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
