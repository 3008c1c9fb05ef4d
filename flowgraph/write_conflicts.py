"""Refuse a run with two independent overwrites of one variable.

A run's assignments commit together, and ``Assign`` (``v.assign(x)``, and every
optimizer's update, ``v.assign(v.value() - lr * g)``) writes a value computed from what
the run read at its start. Two such writes to one variable that do not depend on each
other therefore cannot both take effect: the one that happens to run last wins and the
other is lost without a trace. The TF1 program that does this is two optimizers'
``minimize`` ops sharing a variable, run together (``sess.run([train_a, train_b])`` or
``fg.group(train_a, train_b)``, multi-task training): TF1's in-place updates would
apply both. flowgraph raises ``FlowgraphError`` naming both writes instead of picking
one. ``assign_add`` / ``assign_sub`` read the latest value, so they compose and are not
checked; nor are writes where one depends on the other (the order is then defined).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     v = fg.Variable(0.0, name="v")
...     fg.Session().run([v.assign(1.0), v.assign(2.0)])
Traceback (most recent call last):
flowgraph.errors.FlowgraphError: one run writes variable 'v' twice with independent overwrites, Assign 'v/Assign' (created at ...) and Assign 'v/Assign_1' (created at ...): ... expected at most one ...
"""
from __future__ import annotations

from .errors import FlowgraphError, describe_op
from .executor import needed_ops

# State ops that overwrite a variable with a value computed from the start of the run.
OVERWRITES = ("Assign", "SparseRowsSGD")


def check(ops):
    """Raise ``FlowgraphError`` if two overwrites of one variable among ``ops`` (a
    run's needed ops) are independent of each other."""
    writers = {}
    for op in ops:
        if op.type in OVERWRITES:
            writers.setdefault(op.attrs["variable"], []).append(op)
    for var, ws in writers.items():
        if len(ws) < 2:
            continue
        # what each write depends on, through data and control inputs (itself
        # included, which changes nothing: the writes compared are distinct ops)
        ancestors = {w: set(needed_ops([w], ())) for w in ws}
        for i, a in enumerate(ws):
            for b in ws[i + 1:]:
                if a not in ancestors[b] and b not in ancestors[a]:
                    raise FlowgraphError(
                        f"one run writes variable '{var._op.name}' twice with independent "
                        f"overwrites, {describe_op(a)} and {describe_op(b)}: each is "
                        f"computed from the value at the start of the run, so one would "
                        f"be lost; expected at most one (run them in separate runs, make "
                        f"one depend on the other with fg.control_dependencies, or use "
                        f"assign_add/assign_sub, which compose)")
