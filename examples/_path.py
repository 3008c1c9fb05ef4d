"""Make ``import flowgraph`` work when the examples run from a source checkout that is
not installed (``python examples/char_rnn.py`` from the repository root)."""
import os
import sys

try:
    import flowgraph  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
