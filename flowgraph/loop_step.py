"""The compiled plan's loop step: ``While`` and ``If`` ops run their bodies as plans
compiled once (:func:`flowgraph.compiler.compile_plan` on the body's sub-graph, with
its own buffers), keyed by the body's input shapes. The number of iterations is data:
a new sequence length needs no new compile of the body.

Registered as the CPU kernels of ``While`` and ``If`` (:mod:`kernels`); a plan that
finds them calls the step like any other prebound kernel.
"""
from __future__ import annotations

import numpy as np

from kernels import register

from . import control_flow


def _compiled_plan_for(function, arrays):
    return function.compiled_plan(arrays)


def _copy_into(outputs, values):
    copyto = np.copyto
    for out, value in zip(outputs, values):
        if np.shape(value) != out.shape:
            raise ValueError(f"produced shape {np.shape(value)}, expected {out.shape}")
        copyto(out, value, casting="unsafe")


class _OpView:
    """What the loop evaluator reads of an op: attrs, a name for errors."""

    __slots__ = ("attrs", "type", "name", "location")

    def __init__(self, attrs, type_):
        self.attrs, self.type = attrs, type_
        self.name, self.location = attrs.get("_name", type_), None


@register("While", "cpu")
def while_step(attrs, inputs, outputs):
    view = _OpView(attrs, "While")
    run = control_flow.run_loop

    def generic():
        _copy_into(outputs, run(view, inputs, _compiled_plan_for))

    if attrs["cond"] is not None or attrs["has_max"] or not attrs["n_seqs"]:
        return generic

    def step():
        if len(inputs[attrs["n_vars"]]) == 0 or not _run_counted(attrs, inputs, outputs):
            generic()
    return step


def _run_counted(attrs, inputs, outputs):
    """A loop over sequences (scan, dynamic_rnn) run straight on the body plan's
    buffers: each iteration copies
    the inputs in and the emits, history and sums straight into the loop's output
    buffers (no per-iteration arrays). ``False``: the body is not a compiled plan."""
    from .executor import RunState
    from .plan import CompiledPlan
    nv, ns, nc = attrs["n_vars"], attrs["n_seqs"], attrs["n_caps"]
    ne, nsum = attrs["n_emits"], attrs["n_sums"]
    body, reverse = attrs["body"], attrs["reverse"]
    seqs = inputs[nv:nv + ns]
    caps = inputs[nv + ns:nv + ns + nc]
    n = len(seqs[0])
    index = [np.int32(0)] if attrs["with_index"] else []
    plan = body.compiled_plan(list(inputs[:nv]) + [s[0] for s in seqs] + index + list(caps))
    if not isinstance(plan, CompiledPlan):
        return False
    buffers = {tensor: buf for buf, tensor in plan._feed_loads}
    var_bufs = [buffers.get(t) for t in body.params[:nv]]
    seq_bufs = [buffers.get(t) for t in body.params[nv:nv + ns]]
    index_buf = buffers.get(body.params[-1]) if index else None
    fetch = plan._fetch_arrays
    current = outputs[:nv]
    emits = outputs[nv:nv + ne]
    sums = outputs[nv + ne:nv + ne + nsum]
    hist = outputs[nv + ne + nsum:2 * nv + ne + nsum]
    copyto, add = np.copyto, np.add
    with plan._lock, np.errstate(all="ignore"):
        plan._state[0] = RunState({}, lambda v: v.initial_value)
        try:
            # the plan pools its feed buffers with other values: reload the captured
            # tensors every iteration, as a run of the plan would
            cap_loads = [(buffers[t], c) for t, c in zip(body.captures, caps) if t in buffers]
            for j in range(nv):
                copyto(current[j], inputs[j])
            for s in sums:
                s[...] = 0
            for k in range(n):
                row = n - 1 - k if reverse else k
                for j in range(nv):
                    copyto(hist[j][row, ...], current[j])
                    if var_bufs[j] is not None:
                        copyto(var_bufs[j], current[j])
                for buf, c in cap_loads:
                    copyto(buf, c)
                for buf, seq in zip(seq_bufs, seqs):
                    if buf is not None:
                        copyto(buf, seq[row, ...])
                if index_buf is not None:
                    index_buf[...] = row
                for step in plan._steps:
                    step()
                for e in range(ne):
                    copyto(emits[e][row, ...], fetch[nv + e])
                for s in range(nsum):
                    add(sums[s], fetch[nv + ne + s], out=sums[s])
                for j in range(nv):
                    copyto(current[j], fetch[j])
        finally:
            plan._state[0] = None
    outputs[-1][...] = n
    return True


@register("If", "cpu")
def if_step(attrs, inputs, outputs):
    view = _OpView(attrs, "If")
    run = control_flow.run_if

    def step():
        _copy_into(outputs, run(view, inputs, _compiled_plan_for))
    return step
