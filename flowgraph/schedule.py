"""Scheduling a program's units: fused regions and single nodes in an executable
order, by creation order where free, state ops in their relative order; for a placed
program, staying on one device while it has ready work.

>>> import flowgraph as fg
>>> from flowgraph import passes
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float64, (2,))
...     prog = passes.run_pipeline(passes.lower([fg.tanh(x) * 2.0], [], [x], [(2,)]))
>>> [(kind, p.type if kind == "node" else len(p.nodes)) for kind, p in schedule(prog)]
[('node', 'Feed'), ('node', 'Const'), ('group', 2)]
"""
from __future__ import annotations

import heapq

from .errors import FlowgraphError


def schedule(prog, device_of=None):
    """Units in an executable order: ``[(kind, payload)]`` where kind is ``"group"``
    (payload a Group) or ``"node"``.

    ``device_of(unit)``: for a placed program, the unit's device; among the units
    ready to run, those on the device of the unit just scheduled go first, so that a
    placed run switches devices (and copies values) as rarely as its dependencies
    allow.
    """
    unit_of = {}
    units = []
    for n in prog.nodes:
        if n.group is not None:
            if n.group not in unit_of:
                unit_of[n.group] = len(units)
                units.append(("group", n.group))
            unit_of[n] = unit_of[n.group]
        else:
            unit_of[n] = len(units)
            units.append(("node", n))
    preds = [set() for _ in units]
    last_state = None   # (collectives are ordered by control edges: passes.lower)
    for n in prog.nodes:
        u = unit_of[n]
        for v in n.inputs:
            preds[u].add(unit_of[v[0]])
        for c in n.controls:
            preds[u].add(unit_of[c])
        # Assignments (and reads of the latest value) keep their program order. A plain
        # Variable read sees the value from the start of the run whatever runs before
        # it, so it is left out of that chain: chained, a read created between two
        # assignments (an optimizer's slot made while building the updates) could
        # close a cycle through a fused region that feeds the first assignment and
        # reads the variable.
        if n.kind == "state" and n.type != "Variable":
            if last_state is not None:
                preds[u].add(unit_of[last_state])
            last_state = n
    for u, p in enumerate(preds):
        p.discard(u)
    key = [max(n.order for n in (p.nodes if k == "group" else [p])) for k, p in units]
    succs = [[] for _ in units]
    indegree = [len(p) for p in preds]
    for u, p in enumerate(preds):
        for q in p:
            succs[q].append(u)
    if device_of is not None:
        order = _schedule_by_device(units, key, succs, indegree, device_of)
    else:
        ready = [(key[u], u) for u in range(len(units)) if not indegree[u]]
        heapq.heapify(ready)
        order = []
        while ready:
            _, u = heapq.heappop(ready)
            order.append(units[u])
            for w in succs[u]:
                indegree[w] -= 1
                if not indegree[w]:
                    heapq.heappush(ready, (key[w], w))
    if len(order) != len(units):
        raise FlowgraphError("internal error: the fused graph has a cycle")
    return order


def _schedule_by_device(units, key, succs, indegree, device_of):
    """The topological order of ``schedule`` with one ready heap per device: stay on
    the current device while it has ready units, else go to the earliest ready one."""
    devices = [device_of(unit) for unit in units]
    ready = {}
    for u in range(len(units)):
        if not indegree[u]:
            ready.setdefault(devices[u], []).append((key[u], u))
    for heap in ready.values():
        heapq.heapify(heap)
    order, current = [], None
    while any(ready.values()):
        if not ready.get(current):
            current = min((heap[0], d) for d, heap in ready.items() if heap)[1]
        _, u = heapq.heappop(ready[current])
        order.append(units[u])
        for w in succs[u]:
            indegree[w] -= 1
            if not indegree[w]:
                heapq.heappush(ready.setdefault(devices[w], []), (key[w], w))
    return order
