"""Loop passes: what the compiler does to ``While`` loops beyond running their bodies.

:func:`run` is the compiler's hook (after :data:`flowgraph.passes.PIPELINE`):

- :func:`mark_live_outputs` records which of a loop's outputs anything reads, so
  that the loop step computes and stores only those (a forward loop whose history
  no gradient reads stores none; an emit nobody reads is not computed in the body).
"""
from __future__ import annotations


def mark_live_outputs(prog):
    """Give every ``While`` node ``attrs["_live"]``: one bool per output, whether a
    node reads it or it is fetched. The node's attrs become its own copy (the graph
    op's are left as they are)."""
    loops = [n for n in prog.nodes if n.type == "While"]
    if not loops:
        return prog
    users = prog.users()
    fetched = set(prog.fetches)
    for n in loops:
        live = tuple((n, k) in users or (n, k) in fetched for k in range(len(n.shapes)))
        n.attrs = {**n.attrs, "_live": live}
    return prog


def run(prog):
    """The loop passes over an optimized program (the compiler calls this after the
    pipeline)."""
    return mark_live_outputs(prog)
