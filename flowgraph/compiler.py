"""The graph compiler: placed graph -> plan of kernel calls.

Until the optimizing compiler lands, the compiled path runs the reference plan.
"""
from __future__ import annotations

from .executor import ReferencePlan


def compile_plan(graph, fetch_tensors, target_ops, feed_tensors, feed_arrays, config):
    """Build the plan a session runs for one (fetches, feeds) signature."""
    return ReferencePlan(graph, fetch_tensors, target_ops, feed_tensors, config.check_numerics)
