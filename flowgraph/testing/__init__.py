"""Testing helpers for users' own tests: gradient checks, device comparisons and
Hypothesis strategies (``flowgraph.testing.strategies``, imported on demand since it
needs Hypothesis).
"""
from .compare import compare_devices
from .gradcheck import check_gradients

__all__ = ["check_gradients", "compare_devices"]
