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
body plan's buffers. The body plan keeps the feed buffers of its captured tensors
("pinned"), so they are loaded once per loop run, or not at all once rows are bound:
the steps reading a captured weight are then built over the loop's input itself
where its layout allows (:func:`flowgraph.loop_rows.bindable_captures`). A loop
variable's new value is written by the body straight into the buffer the next
iteration reads it from where the buffer planner can (``carried_feeds``: the old value's buffer, free after its
last reader, is kept for the new one), else copied there. Per iteration only what
changes moves: the sequence rows in, the emits out, the history rows (only the
outputs somebody reads: :func:`flowgraph.loop_passes.mark_live_outputs`; a history
that equals an emit shifted by one row is one copy after the loop). Those copies are
bound per row on the first run as byte-memoryview pairs, so an iteration is a few
memcpys and the body's steps. The last iteration runs no step that only the new
value of a variable nothing reads after the loop needs
(:func:`flowgraph.loop_rows.dead_units`). Once the body's kernels are final, a run
of that length is one flat tuple of calls (``_run_final``): no per-run rebinding
checks, no per-row tuple unpacking.

Registered as the CPU kernels of ``While`` and ``If`` as well (:mod:`kernels`), for
callers without a plan.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     xs = fg.placeholder(fg.float64, (None, 2))
...     ys = fg.scan(lambda acc, x: acc * 0.5 + x, xs)
...     sess = fg.Session(config=fg.SessionConfig(compile="never"))
...     out = sess.run(ys, {xs: np.ones((3, 2))})
...     done = sess.wait_compiled()          # bodies included: nothing to wait for
>>> out[:, 0].tolist(), done
([1.0, 1.5, 1.75], True)
"""
from __future__ import annotations

from functools import partial

import numpy as np

from kernels import register

from . import control_flow, loop_rows
from .executor import RunState


def _copy_into(outputs, values):
    copyto = np.copyto
    for out, value in zip(outputs, values):
        if value is None:        # an output nobody reads, not recorded
            continue
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
    mode and ``check_numerics``; the body's captured values keep their feed buffers
    (``pinned_feeds``: never pooled, never overwritten in place), so that they are
    loaded once per loop run."""

    optimize = True
    allow_soft_placement = False
    log_device_placement = False

    def __init__(self, compile="eager", check_numerics=False, pinned_feeds=(),
                 carried_feeds=()):
        self.compile, self.check_numerics = compile, check_numerics
        self.pinned_feeds = frozenset(pinned_feeds)
        self.carried_feeds = tuple(carried_feeds)

    @property
    def key(self):
        return (self.compile, self.check_numerics, tuple(sorted(map(id, self.pinned_feeds))),
                tuple(map(id, self.carried_feeds)))

    def pinning(self, pinned, carried=()):
        """The same configuration with the feed buffers of ``pinned`` kept, and those
        of ``carried`` handed to the fetches in the same positions after their last
        reader (:class:`flowgraph.buffers.BufferLayout`)."""
        return BodyConfig(self.compile, self.check_numerics, pinned, carried)


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
    stacks = {}
    dynamic_out = attrs.get("_dynamic", ())
    dynamic_in = [(i, node, k) for i, (node, k) in enumerate(getattr(op, "inputs", ()))
                  if k in getattr(node, "attrs", {}).get("_dynamic", ())] \
        if owner is not None else []
    if dynamic_out or dynamic_in:
        # A loop whose trip count is known only when it runs (a ``while_loop``), or
        # the loop reading its history (the backward loop): the rows are recorded in
        # growable buffers (control_flow.Stack, capacity kept between runs) and
        # handed from the loop that records them to the loop that reads them through
        # ``rows``, outside the plan's buffers (which hold empty placeholders).
        rows = owner.__dict__.setdefault("_loop_rows", {})
        node = op

        def dynamic_step():
            args = list(inputs)
            for i, src, k in dynamic_in:
                args[i] = rows[(id(src), k)]
            values = list(run(op, args, plan_for, stacks=stacks))
            for k in dynamic_out:
                rows[(id(node), k)] = values[k]
                values[k] = None
            _copy_into(outputs, values)
        return dynamic_step

    def generic():
        _copy_into(outputs, run(op, inputs, plan_for, stacks=stacks))

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
    while_step.counted = counted     # (what tests inspect)
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
    """A loop over sequences run straight on a compiled body plan's buffers. Every
    array an iteration touches is bound here, once per outer plan."""

    def __init__(self, owner, op, attrs, inputs, outputs, config):
        from .plan import CompiledPlan
        self.op, self.attrs, self.config = op, attrs, config
        nv, ns, nc = attrs["n_vars"], attrs["n_seqs"], attrs["n_caps"]
        ne, nsum = attrs["n_emits"], attrs["n_sums"]
        body = self.body = attrs["body"]
        live = attrs.get("_live") or (True,) * len(outputs)
        live_emits = [e for e in range(ne) if live[nv + e]]
        live_sums = [s for s in range(nsum) if live[nv + ne + s]]
        live_hist = [j for j in range(nv) if live[nv + ne + nsum + j]]
        # what the last iteration must compute: every emit and sum, and the new value
        # of a variable only where the loop's final value is read (fetch positions)
        self.last_needed = [j for j in range(nv) if live[j]] + list(
            range(nv, nv + len(live_emits) + len(live_sums)))
        fetch = ([body.outputs[j] for j in range(nv)]
                 + [body.outputs[nv + e] for e in live_emits]
                 + [body.outputs[nv + ne + s] for s in live_sums])
        seqs = inputs[nv:nv + ns]
        caps = inputs[nv + ns:nv + ns + nc]
        index = [np.zeros((), np.int32)] if attrs["with_index"] else []
        like = ([np.empty(np.shape(v), np.asarray(v).dtype) for v in inputs[:nv]]
                + [np.empty(np.shape(s)[1:], np.asarray(s).dtype) for s in seqs]
                + index + [np.empty(np.shape(c), np.asarray(c).dtype) for c in caps])
        # the sequence rows' feeds are pinned too: a row-bound body reads the row in
        # place (flowgraph.loop_rows), which nothing may reuse or overwrite
        pinned = list(body.captures)
        if loop_rows.ENABLED and not config.check_numerics:
            pinned += body.params[nv:nv + ns]
        plan = body.compiled_plan(like, config.pinning(pinned, body.params[:nv]),
                                  fetch=fetch)
        self.plan = plan if isinstance(plan, CompiledPlan) else None
        if self.plan is None:
            return
        self.inputs, self.outputs = inputs, outputs
        buffers = {tensor: buf for buf, tensor in plan._feed_loads}
        fetched = plan._fetch_arrays
        var_bufs = [buffers.get(t) for t in body.params[:nv]]
        # where each loop variable's value is between iterations: its feed buffer
        # (written after the body's steps, read by the next iteration's), or for a
        # variable the body does not read, the loop's output
        cur = self.cur = [b if b is not None else outputs[j] for j, b in enumerate(var_bufs)]
        self.seq_pairs = [(buffers[t], s) for t, s in zip(body.params[nv:nv + ns], seqs)
                          if t in buffers]
        self.seq_feeds = [t for t in body.params[nv:nv + ns] if t in buffers]
        self.index_buf = buffers.get(body.params[nv + ns]) if index else None
        self.cap_loads = [(buffers[t], c) for t, c in zip(body.captures, caps)
                          if t in buffers]
        self.cap_feeds = [t for t in body.captures if t in buffers]
        self.seqs = seqs
        self.bound_caps = ()       # the captured inputs the body's steps read in place
        self._final_n = None       # the length whose bound iterations are final
        k = nv
        self.emit_moves, emitted = [], {}
        self.emit_fetch = []        # the body's fetch position of each emit move
        for e in live_emits:
            self.emit_moves.append((outputs[nv + e], fetched[k]))
            self.emit_fetch.append(k)
            emitted[id(body.outputs[nv + e])] = outputs[nv + e]
            k += 1
        self.sums = []
        for s in live_sums:
            self.sums.append((outputs[nv + ne + s], fetched[k]))
            k += 1
        # the history of a variable that is also emitted (scan's accumulators, an
        # RNN's h) is the emits shifted by one row: copied once after the loop
        self.hist, self.hist_after = [], []
        for j in live_hist:
            rows = outputs[nv + ne + nsum + j]
            same = emitted.get(id(body.outputs[j]))
            if same is not None:
                self.hist_after.append((j, rows, same))
            else:
                self.hist.append((rows, cur[j]))
        # the new values into the variables' buffers, after the emits are out; a
        # value the body left in another variable's buffer goes through a copy first
        moves = [(cur[j], fetched[j]) for j in range(nv)
                 if not _same_memory(cur[j], fetched[j])]
        self.pre_moves = []
        for i, (dst, src) in enumerate(moves):
            if any(np.shares_memory(src, d) for m, (d, _) in enumerate(moves) if m != i):
                scratch = np.empty_like(src)
                self.pre_moves.append((scratch, src))
                moves[i] = (dst, scratch)
        self.var_moves = moves

    def _bind_rows(self, n, bind):
        """Per row, the copies before the body's steps (history rows out, sequence
        rows and the row number in), the steps, and the copies after them (emit rows
        out), built on the first run (the number of rows is fixed for the outer plan),
        not when the plan is compiled.

        With ``bind``, the sequence rows and emits that row binding can take
        (:mod:`flowgraph.loop_rows`) are read and written in place by steps built for
        each row, and not copied. The copies left are pairs of byte memoryviews where
        both sides are C-contiguous (a memoryview slice assignment is a memcpy at a
        fraction of ``np.copyto``'s call cost), else of arrays."""
        plan = self.plan
        reverse = self.attrs["reverse"]
        rows = np.arange(n, dtype=np.int32)
        seq_pairs, emit_moves = self.seq_pairs, self.emit_moves
        bound_seqs, bound_emits, fixed, by_ref = [], [], {}, []
        if bind:
            # captured inputs (weights, hoisted products) read where the outer plan
            # keeps them, instead of copied into the body's buffers every loop run
            caps = [(t, c) for t, (_, c) in zip(self.cap_feeds, self.cap_loads)]
            by_ref = loop_rows.bindable_captures(plan, caps, list(self.outputs)
                                                 + list(self.seqs))
            fixed = {plan._feed_values[t]: c for t, c in caps if t in by_ref}
            feeds, fetches = loop_rows.bindable(plan, self.seq_feeds, self.emit_fetch)
            seq_pairs, emit_moves = [], []
            for t, (buf, seq) in zip(self.seq_feeds, self.seq_pairs):
                if t in feeds and _row_like(seq, buf):
                    bound_seqs.append((plan._feed_values[t], seq))
                else:
                    seq_pairs.append((buf, seq))
            first = {}      # value -> the stacked output its first emit is bound to
            for k, (out, value) in zip(self.emit_fetch, self.emit_moves):
                v = plan._fetch_values[k]
                if v in first:
                    # emitted again: from the row of that output (None: not bound)
                    emit_moves.append((out, value if first[v] is None else first[v]))
                elif k in fetches and _row_like(out, value):
                    bound_emits.append((v, out))
                    first[v] = out
                else:
                    emit_moves.append((out, value))
                    first[v] = None
        order = [n - 1 - step_k if reverse else step_k for step_k in range(n)]
        # the last iteration skips the units only dead variables' new values need
        dead = (loop_rows.dead_units(plan, self.last_needed)
                if loop_rows.ENABLED and not self.config.check_numerics else set())
        steps = None
        if bound_seqs or bound_emits or fixed:
            steps = loop_rows.bind_rows(plan, dict(bound_seqs + bound_emits), order,
                                        fixed, dead)
            if steps is None:       # too long to bind: copy everything
                seq_pairs, emit_moves = self.seq_pairs, self.emit_moves
        if steps is None:
            steps = [None] * n      # the plan's own steps
            if n and dead:
                steps[-1] = loop_rows.last_steps(plan, dead)
            bound_seqs, bound_emits, by_ref = [], [], []
        # how many sequences and emits the steps read and write in place
        self.bound = (len(bound_seqs), len(bound_emits))
        self.bound_caps = tuple(i for i, t in enumerate(self.cap_feeds) if t in by_ref)
        before, after = [], []
        for row in order:
            pre = [(out[row, ...], value) for out, value in self.hist]
            pre += [(buf, seq[row, ...]) for buf, seq in seq_pairs]
            if self.index_buf is not None:
                pre.append((self.index_buf, rows[row, ...]))
            before.append(_movers(pre))
            after.append(_movers([(out[row, ...], value[row, ...] if any(
                value is o for _, o in bound_emits) else value) for out, value in emit_moves]))
        return before, steps, after

    def _bind_ends(self, n):
        """The copies before the first iteration (captured values into the body's
        pinned buffers, the loop variables' initial values) and after the last (a
        history that is an emit shifted by a row, the final values), as movers."""
        nv, inputs, outputs, cur = self.attrs["n_vars"], self.inputs, self.outputs, self.cur
        loads = [pair for i, pair in enumerate(self.cap_loads) if i not in self.bound_caps]
        self._start = _movers(loads + [(cur[j], inputs[j]) for j in range(nv)])
        finish = []
        for j, hist, emits in self.hist_after:
            if self.attrs["reverse"]:
                finish += [(hist[n - 1, ...], inputs[j]), (hist[:n - 1], emits[1:])]
            else:
                finish += [(hist[0, ...], inputs[j]), (hist[1:], emits[:n - 1])]
        finish += [(outputs[j], cur[j]) for j in range(nv) if cur[j] is not outputs[j]]
        self._finish = _movers(finish)

    def run(self):
        """One run of the loop: every iteration, then the final values."""
        attrs, plan = self.attrs, self.plan
        nv = attrs["n_vars"]
        n = len(self.inputs[nv])
        if n == self._final_n:
            self._run_final(plan, n)
            return
        add = np.add
        outputs, sums = self.outputs, self.sums
        with plan._lock, np.errstate(all="ignore"):
            if plan._swaps:
                plan._apply_swaps()      # compiled kernels go in between loop runs
            steps = tuple(plan._steps)
            checked = self.config.check_numerics
            # rows are bound to steps once the plan's kernels are final (bound
            # earlier, they would keep the interim steps)
            bind = (loop_rows.ENABLED and not checked and loop_rows.kernels_final(plan))
            rows = getattr(self, "_rows", None)
            if rows is None or self._rows_key != (n, bind, steps):
                # per iteration: the copies before the body's steps, the row's steps
                # (the plan's where unbound), the copies after them (the emitted rows
                # out, then the new loop variables into place)
                moves = _movers(self.pre_moves) + _movers(self.var_moves)
                before, row_steps, after = self._bind_rows(n, bind)
                rows = self._rows = [(pre, steps if row is None else row, post + moves)
                                     for pre, row, post in zip(before, row_steps, after)]
                self._rows_key = (n, bind, steps)
                self._bind_ends(n)
                # with the kernels final the steps never change again: later runs of
                # this length take _run_final, one flat sequence of calls
                self._final_n = None
                if loop_rows.kernels_final(plan) and not checked and not sums:
                    self._final_n = n
                    self._flat = _flatten(rows)
            plan._state[0] = _fresh_state()
            try:
                for dst, src in self._start:    # captured values, initial values
                    dst[:] = src
                for total, _ in sums:
                    total[...] = 0
                if not checked and not sums:
                    for pre, row_steps, post in rows:
                        for dst, src in pre:
                            dst[:] = src
                        for step in row_steps:
                            step()
                        for dst, src in post:
                            dst[:] = src
                else:
                    for step_k, (pre, row_steps, post) in enumerate(rows):
                        for dst, src in pre:
                            dst[:] = src
                        if checked:
                            self._run_checked(step_k)
                        else:
                            for step in row_steps:
                                step()
                        for total, value in sums:
                            add(total, value, out=total)
                        for dst, src in post:
                            dst[:] = src
            finally:
                plan._state[0] = None
            for dst, src in self._finish:       # histories, final values
                dst[:] = src
        outputs[-1][...] = n

    def _run_final(self, plan, n):
        """``run`` once the iterations are bound for good (kernels final, no sums, no
        numerics checks): the start copies, every iteration's calls in one flat
        sequence (:func:`_flatten`), the finishing copies."""
        with plan._lock, np.errstate(all="ignore"):
            plan._state[0] = _fresh_state()
            try:
                for dst, src in self._start:    # captured values, initial values
                    dst[:] = src
                for call in self._flat:
                    call()
            finally:
                plan._state[0] = None
            for dst, src in self._finish:       # histories, final values
                dst[:] = src
        self.outputs[-1][...] = n

    def _run_checked(self, iteration):
        """The body's steps, each output checked for NaN/Inf; the first bad one is
        named by rerunning this iteration on the body's reference plan."""
        plan = self.plan
        values = {t: np.array(buf) for buf, t in plan._feed_loads}
        for unit_steps, outs, origin in plan._checked_steps:
            for step in unit_steps:
                step()
            for out in outs:
                if not np.isfinite(out).all():
                    self._name_the_op(iteration, origin, values)

    def _name_the_op(self, iteration, origin, values):
        from .errors import NumericsError, describe_op
        from .executor import ReferencePlan
        body = self.body
        reference = ReferencePlan(body.graph, body.outputs, [], body.params + body.captures,
                                  True)
        where = f" (iteration {iteration} of the loop {describe_op(self.op)})"
        try:
            reference.run(values, _fresh_state())
        except NumericsError as exc:
            raise NumericsError(f"{exc}{where}") from None
        raise NumericsError(f"{describe_op(origin.origin or origin)}: produced a NaN or "
                            f"Inf in the compiled loop body{where}")


def _movers(pairs):
    """``(dst, src)`` array pairs as pairs for ``dst[:] = src``: byte memoryviews when
    both are C-contiguous with the same dtype and size, else ``(view, array)`` with
    the destination an ``ndarray`` (``[:]`` assignment broadcasts and casts as
    ``np.copyto`` does)."""
    out = []
    for dst, src in pairs:
        src = np.asarray(src)
        if (dst.flags.c_contiguous and src.flags.c_contiguous and dst.dtype == src.dtype
                and dst.shape == src.shape and dst.nbytes):
            out.append((memoryview(dst.reshape(-1)).cast("B"),
                        memoryview(src.reshape(-1)).cast("B")))
        else:
            out.append((dst.reshape((1,) + dst.shape) if dst.ndim == 0 else dst, src))
    return out


def _flatten(rows):
    """Every iteration's calls, in order, as one tuple of callables: a row's copies
    before its steps, its steps, its copies after. A copy is the destination's bound
    ``__setitem__`` (``dst[:] = src`` with no Python frame or tuple unpacking)."""
    whole = slice(None)
    flat = []
    for pre, steps, post in rows:
        flat += [partial(dst.__setitem__, whole, src) for dst, src in pre]
        flat += steps
        flat += [partial(dst.__setitem__, whole, src) for dst, src in post]
    return tuple(flat)


def _row_like(stacked, buf):
    """Is a row of ``stacked`` a drop-in for ``buf`` (shape, dtype, C layout)?"""
    return (stacked.ndim == buf.ndim + 1 and stacked.shape[1:] == buf.shape
            and stacked.dtype == buf.dtype and stacked.flags.c_contiguous)


def _same_memory(a, b):
    return a.shape == b.shape and a.__array_interface__["data"][0] == \
        b.__array_interface__["data"][0] and a.strides == b.strides


def _initial_value(variable):
    return variable.initial_value


def _fresh_state():
    return RunState({}, _initial_value)
