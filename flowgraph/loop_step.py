"""The compiled plan's loop step: ``While`` and ``If`` ops run their bodies as plans
compiled once (:func:`flowgraph.compiler.compile_plan` on the body's sub-graph, with
its own buffers), keyed by the body's input shapes. The number of iterations is data:
a new sequence length needs no new compile of the body.

A plan builds the step of a loop node with :func:`build` (the CPU backend calls it for
nodes of kind ``"loop"``). The body plan then follows the outer plan's configuration:
its generated kernels compile when the session's ``compile`` mode says (and are
swapped in between loop runs, as the outer plan's are), ``Session.wait_compiled``
waits for them too, and with ``check_numerics`` a NaN or Inf made inside the body
names the body's op.

A loop over sequences (``scan``, ``dynamic_rnn``: no ``cond``) runs straight on the
body plan's buffers. The body plan keeps its feed buffers for itself ("pinned"), so
per loop run the captured tensors are loaded once, and per iteration only what
changes moves: the new loop variables into their feed buffers, the sequence rows in,
the emits out, and the history rows (only the outputs somebody reads:
:func:`flowgraph.loop_passes.mark_live_outputs`). Everything per iteration is bound
once per loop run into flat lists, so the loop is a few ``np.copyto`` calls and the
body's steps.

Registered as the CPU kernels of ``While`` and ``If`` as well (:mod:`kernels`), for
callers without a plan.
"""
from __future__ import annotations

import numpy as np

from kernels import register

from . import control_flow


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


class BodyConfig:
    """The configuration a body plan is compiled with: the outer plan's ``compile``
    mode and ``check_numerics``, and pinned feed buffers (never pooled, never
    overwritten in place) so that captured values are loaded once per loop run."""

    optimize = True
    allow_soft_placement = False
    log_device_placement = False
    pin_feeds = True

    def __init__(self, compile="eager", check_numerics=False):
        self.compile, self.check_numerics = compile, check_numerics

    @property
    def key(self):
        return (self.compile, self.check_numerics, self.pin_feeds)


def _config_of(plan):
    if plan is None:
        return BodyConfig()
    return BodyConfig(getattr(plan, "_compile_mode", "eager"),
                      bool(getattr(plan, "_check_numerics", False)))


def _adopt(owner, body_plan):
    """Let ``owner`` (the outer plan) wait for the body plan's kernels too."""
    if owner is None or body_plan is None:
        return
    subplans = owner.__dict__.setdefault("_subplans", [])
    if body_plan not in subplans:
        subplans.append(body_plan)


def _plan_for(config, owner):
    def plan_for(function, arrays):
        body_plan = function.compiled_plan(arrays, config)
        _adopt(owner, body_plan)
        return body_plan
    return plan_for


def build(plan, node, inputs, outputs):
    """The step of loop node ``node`` (``While`` or ``If``) in compiled plan ``plan``
    (``None``: no plan, default configuration)."""
    config = _config_of(plan)
    plan_for = _plan_for(config, plan)
    op = node if plan is not None else _OpView(node.attrs, node.type)
    if node.type == "If":
        run = control_flow.run_if

        def if_step():
            _copy_into(outputs, run(op, inputs, plan_for))
        return if_step
    return _while_step(plan, op, node.attrs, inputs, outputs, config, plan_for)


def _while_step(owner, op, attrs, inputs, outputs, config, plan_for):
    run = control_flow.run_loop

    def generic():
        _copy_into(outputs, run(op, inputs, plan_for))

    if attrs["cond"] is not None or attrs["has_max"] or not attrs["n_seqs"] or any(
            i is not None for i in attrs["invariants"]):
        return generic
    counted = _CountedLoop(owner, op, attrs, inputs, outputs, config)
    if counted.plan is None:
        return generic
    _adopt(owner, counted.plan)

    def while_step():
        if len(inputs[attrs["n_vars"]]) == 0:
            generic()
        else:
            counted.run()
    return while_step


@register("While", "cpu")
def while_step(attrs, inputs, outputs):
    return _while_step(None, _OpView(attrs, "While"), attrs, inputs, outputs, BodyConfig(),
                       _plan_for(BodyConfig(), None))


@register("If", "cpu")
def if_step(attrs, inputs, outputs):
    view = _OpView(attrs, "If")
    run = control_flow.run_if
    plan_for = _plan_for(BodyConfig(), None)

    def step():
        _copy_into(outputs, run(view, inputs, plan_for))
    return step


class _CountedLoop:
    """A loop over sequences run straight on a compiled body plan's buffers."""

    def __init__(self, owner, op, attrs, inputs, outputs, config):
        from .plan import CompiledPlan
        self.op, self.attrs, self.config = op, attrs, config
        nv, ns, nc = attrs["n_vars"], attrs["n_seqs"], attrs["n_caps"]
        ne, nsum = attrs["n_emits"], attrs["n_sums"]
        body = self.body = attrs["body"]
        live = attrs.get("_live") or (True,) * len(outputs)
        self.live_emits = [e for e in range(ne) if live[nv + e]]
        self.live_sums = [s for s in range(nsum) if live[nv + ne + s]]
        self.live_hist = [j for j in range(nv) if live[nv + ne + nsum + j]]
        fetch = ([body.outputs[j] for j in range(nv)]
                 + [body.outputs[nv + e] for e in self.live_emits]
                 + [body.outputs[nv + ne + s] for s in self.live_sums])
        seqs = inputs[nv:nv + ns]
        caps = inputs[nv + ns:nv + ns + nc]
        index = [np.zeros((), np.int32)] if attrs["with_index"] else []
        shapes_of = ([np.empty(np.shape(v), np.asarray(v).dtype) for v in inputs[:nv]]
                     + [np.empty(np.shape(s)[1:], np.asarray(s).dtype) for s in seqs]
                     + index + [np.empty(np.shape(c), np.asarray(c).dtype) for c in caps])
        plan = body.compiled_plan(shapes_of, config, fetch=fetch)
        self.plan = plan if isinstance(plan, CompiledPlan) else None
        if self.plan is None:
            return
        self.inputs, self.outputs = inputs, outputs
        buffers = {tensor: buf for buf, tensor in plan._feed_loads}
        self.var_bufs = [buffers.get(t) for t in body.params[:nv]]
        self.seq_pairs = [(buffers[t], s) for t, s in zip(body.params[nv:nv + ns], seqs)
                          if t in buffers]
        self.index_buf = buffers.get(body.params[nv + ns]) if index else None
        self.cap_loads = [(buffers[t], c) for t, c in zip(body.captures, caps)
                          if t in buffers]

    def run(self):
        """One run of the loop: every iteration, then the final values."""
        attrs, plan = self.attrs, self.plan
        nv, ne, nsum = attrs["n_vars"], attrs["n_emits"], attrs["n_sums"]
        inputs, outputs = self.inputs, self.outputs
        copyto, add = np.copyto, np.add
        n = len(inputs[nv])
        reverse = attrs["reverse"]
        with plan._lock, np.errstate(all="ignore"):
            if plan._swaps:
                plan._apply_swaps()      # compiled kernels go in between loop runs
            fetched = plan._fetch_arrays
            # where each loop variable lives during the loop: its feed buffer, or
            # (a variable the body does not read) the loop's output
            cur = [b if b is not None else outputs[j] for j, b in enumerate(self.var_bufs)]
            var_moves = [(cur[j], fetched[j]) for j in range(nv)
                         if not np.shares_memory(cur[j], fetched[j])]
            k = nv
            emit_moves = []
            for e in self.live_emits:
                emit_moves.append((outputs[nv + e], fetched[k]))
                k += 1
            sums = []
            for s in self.live_sums:
                out = outputs[nv + ne + s]
                out[...] = 0
                sums.append((out, fetched[k]))
                k += 1
            hist = [(outputs[nv + ne + nsum + j], cur[j]) for j in self.live_hist]
            seq_pairs, index_buf = self.seq_pairs, self.index_buf
            steps = plan._steps
            checked = self.config.check_numerics
            plan._state[0] = _fresh_state()
            try:
                for buf, c in self.cap_loads:
                    copyto(buf, c)
                for j in range(nv):
                    copyto(cur[j], inputs[j])
                for step_k in range(n):
                    row = n - 1 - step_k if reverse else step_k
                    for rows, value in hist:
                        copyto(rows[row], value)
                    for buf, seq in seq_pairs:
                        copyto(buf, seq[row])
                    if index_buf is not None:
                        index_buf.fill(row)
                    if checked:
                        self._run_checked(step_k)
                    else:
                        for step in steps:
                            step()
                    for rows, value in emit_moves:
                        copyto(rows[row], value)
                    for total, value in sums:
                        add(total, value, out=total)
                    for buf, value in var_moves:
                        copyto(buf, value)
            finally:
                plan._state[0] = None
            for j in range(nv):
                if cur[j] is not outputs[j]:
                    copyto(outputs[j], cur[j])
        outputs[-1][...] = n

    def _run_checked(self, iteration):
        """The body's steps, each output checked for NaN/Inf; the first bad one is
        named by rerunning this iteration on the body's reference plan."""
        for unit_steps, outs, origin in self.plan._checked_steps:
            for step in unit_steps:
                step()
            for out in outs:
                if not np.isfinite(out).all():
                    self._name_the_op(iteration, origin)

    def _name_the_op(self, iteration, origin):
        from .errors import NumericsError, describe_op
        from .executor import ReferencePlan
        body, plan = self.body, self.plan
        values = {t: np.array(buf) for buf, t in plan._feed_loads}
        reference = ReferencePlan(body.graph, body.outputs, [], body.params + body.captures,
                                  True)
        where = f" (iteration {iteration} of the loop {describe_op(self.op)})"
        try:
            reference.run(values, _fresh_state())
        except NumericsError as exc:
            raise NumericsError(f"{exc}{where}") from None
        raise NumericsError(f"{describe_op(origin.origin or origin)}: produced a NaN or "
                            f"Inf in the compiled loop body{where}")


def _fresh_state():
    from .executor import RunState
    return RunState({}, lambda v: v.initial_value)
