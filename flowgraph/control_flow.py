"""Symbolic control flow: ``while_loop``, ``scan`` and ``cond``, with their gradients.

A loop body (or a branch of ``cond``) is traced once into a :class:`Function`: the ops
its Python function creates, as a sub-graph of the same graph from a list of
parameter placeholders to a list of outputs. Outer tensors it reads (weights, inputs,
variables) are *captured*: they become explicit inputs of the loop op, so placement,
pruning and autodiff see them like any other input.

One primitive runs every loop, ``While``. Its inputs are the loop variables, the
*sequences* (sliced along axis 0, one row per iteration, as ``tf.scan`` does with its
``elems``) and the captured tensors. The body returns the new loop variables, the
*emits* (stacked along axis 0 into an output, one row per iteration) and the *sums*
(added over the iterations). The op also outputs the *history* of every loop variable
(its value entering each iteration, stacked): that is the stack TF1 pushes in the
forward loop for the backward one. With ``reverse=True`` iteration ``k`` reads and
writes row ``N-1-k`` (the backward loop of a forward loop).

The gradient of a ``While`` is another ``While`` running the other way over the
history: its body is the forward body inlined at the recorded values and
differentiated with :func:`flowgraph.gradients`; the weight gradients are its sums
and the sequence gradients its emits. It is an ordinary graph, so it can be
differentiated again.

``If`` (``fg.cond``) runs one of two traced branches; its gradient is an ``If`` over
the branches' gradients.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     i, x = fg.while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, x * 2.0),
...                          (fg.constant(0), fg.constant(1.0, fg.float64)))
...     [float(v) for v in fg.Session().run([i, x])]
[3.0, 8.0]
"""
from __future__ import annotations

import numpy as np

from . import api as F
from . import dtypes
from . import shapes as S
from .errors import DTypeError, FlowgraphError, ShapeError, describe_op
from .executor import RunState, needed_ops
from .graph import (Tensor, _no_control_dependencies, get_default_graph, location_suffix,
                    name_scope)
from .nest import flatten
from .tensor_shape import TensorShape, dimension_value


def _state_outside(op):
    """A variable or a variable read: captured from outside the body, not copied in."""
    prim = op.primitive
    return prim.kind == "state" and not prim.writes_state


def _is_leaf(x):
    return not isinstance(x, (list, tuple, dict))


def _no_state():
    return RunState({}, lambda v: v.initial_value)


class Function:
    """A traced sub-graph ``params -> outputs`` that reads ``captures`` (outer
    tensors). ``ops`` are its own operations, in creation order.
    """

    def __init__(self, graph, params, captures, outputs, ops, name):
        self.graph, self.params, self.captures = graph, params, captures
        self.outputs, self.ops, self.name = outputs, ops, name
        self._reference = None
        self._compiled = {}
        self._shapes = {}
        self.compiles = 0      # body plans compiled so far (tests count them)

    @classmethod
    def trace(cls, fn, specs, name):
        """Call ``fn(*placeholders)`` (one per ``(shape, dtype)`` in ``specs``) and
        record what it builds. ``fn`` returns a flat list of tensors (or numbers).
        """
        graph = get_default_graph()
        start = len(graph._operations)
        with _no_control_dependencies(), name_scope(name):
            params = [F.placeholder(d, s, name=f"arg{i}") for i, (s, d) in enumerate(specs)]
            outputs = [F.convert_to_tensor(o) for o in fn(*params)]
        own = set(graph._operations[start:])
        fed = set(params)
        ops, captures = [], []
        for op in needed_ops([t.op for t in outputs], fed):
            if op not in own or _state_outside(op):
                continue
            if op.primitive.writes_state:
                raise FlowgraphError(f"{describe_op(op)}: assignments inside a loop body "
                                     "or cond branch are not supported; assign after it")
            ops.append(op)
            for t in op.inputs:
                if (t.op not in own or _state_outside(t.op)) and t not in captures:
                    captures.append(t)
        for t in outputs:
            if t not in fed and (t.op not in own or _state_outside(t.op)) \
                    and t not in captures:
                captures.append(t)
        return cls(graph, params, captures, outputs, ops, name)

    # --- evaluation -------------------------------------------------------------------
    def reference_plan(self):
        from .executor import ReferencePlan
        if self._reference is None:
            self._reference = ReferencePlan(self.graph, self.outputs, [],
                                            self.params + self.captures)
        return self._reference

    def compiled_plan(self, arrays, config=None, fetch=None):
        """The body compiled once per input shapes, configuration and fetched
        outputs (its own plan and buffers). ``config``: a
        :class:`flowgraph.loop_step.BodyConfig` (default: eager, pinned feeds);
        ``fetch``: the outputs to compute (default: all)."""
        from .loop_step import BodyConfig
        config = config or BodyConfig().pinning(self.captures)
        fetch = list(self.outputs if fetch is None else fetch)
        key = (tuple(np.shape(a) for a in arrays), config.key, tuple(id(t) for t in fetch))
        plan = self._compiled.get(key)
        if plan is None:
            from . import compiler
            plan = compiler.compile_plan(self.graph, fetch, [], self.params + self.captures,
                                         [np.asarray(a) for a in arrays], config)
            self._compiled[key] = plan
            self.compiles += 1
        return plan

    def output_shapes(self, input_shapes):
        """Static output shapes for these input shapes: concrete when they are (the
        body's shape rules rerun on them), else the traced ones."""
        key = tuple(input_shapes)
        if key not in self._shapes:
            shapes = [t.shape for t in self.outputs]
            if all(s is not None and None not in s for s in input_shapes):
                from . import passes
                try:
                    prog = passes.lower(self.outputs, [], self.params + self.captures,
                                        input_shapes)
                    shapes = [n.shapes[i] for n, i in prog.fetches]
                except passes.NotCompilable:
                    pass
            self._shapes[key] = shapes
        return self._shapes[key]

    # --- inlining ---------------------------------------------------------------------
    def call(self, args, captures=None, mapping_out=None):
        """Copy the body into the current graph with ``args`` for the parameters (and
        ``captures`` for the captured tensors); returns its outputs. ``mapping_out``
        (a dict) receives original tensor -> copy."""
        mapping = dict(zip(self.params, args))
        mapping.update(zip(self.captures, captures or self.captures))
        with _no_control_dependencies(), name_scope(self.name):
            for op in self.ops:
                if op.type == "Placeholder" and op.outputs[0] in mapping:
                    continue
                new = self.graph.create_op(op.type, [mapping.get(t, t) for t in op.inputs],
                                           op.attrs, name=op.name.rsplit("/", 1)[-1])
                mapping.update(zip(op.outputs, new.outputs))
        if mapping_out is not None:
            mapping_out.update(mapping)
        return [mapping.get(t, t) for t in self.outputs]


def _task(device):
    """``"/job:worker/task:1"`` of a device on an MPI task, else ``None`` (this one)."""
    if device is None or not device.startswith("/job:"):
        return None
    return "/".join(device.split("/")[:3])


def _check_one_task(op, functions):
    """A loop runs in one process: its ops may not span MPI tasks."""
    where = {_task(op.device): op}
    for function in functions:
        for inner in function.ops:
            where.setdefault(_task(inner.device), inner)
    if len(where) > 1:
        from .errors import PlacementError
        tasks = ", ".join(sorted(t or "the local task" for t in where))
        other = next(o for t, o in where.items() if o is not op)
        raise PlacementError(f"{describe_op(op)}: a loop or cond may not span MPI tasks; "
                             f"expected all of its ops on one task, found {tasks} "
                             f"({describe_op(other)} is on {other.device})")


# --- the While primitive ------------------------------------------------------------------

def _layout(attrs):
    nv, ns, nc = attrs["n_vars"], attrs["n_seqs"], attrs["n_caps"]
    return nv, ns, nc


def _while_infer(op):
    a = op.attrs
    nv, ns, nc = _layout(a)
    ins = op.inputs
    n = ins[nv].shape[0] if ns and ins[nv].shape is not None else None
    var_shapes = [inv if inv is not None else t.shape
                  for inv, t in zip(a["invariants"], ins[:nv])]
    seq_rows = [None if t.shape is None else tuple(t.shape[1:]) for t in ins[nv:nv + ns]]
    caps = [t.shape for t in ins[nv + ns:nv + ns + nc]]
    body = a["body"]
    index = [()] if a["with_index"] else []
    shapes = body.output_shapes(tuple(var_shapes) + tuple(seq_rows) + tuple(index)
                                + tuple(caps))
    ne, nsum = a["n_emits"], a["n_sums"]
    emit_shapes = shapes[nv:nv + ne]
    sum_shapes = shapes[nv + ne:nv + ne + nsum]
    dts = [t.dtype for t in body.outputs]
    out = [(s, t.dtype) for s, t in zip(var_shapes, ins[:nv])]
    out += [(None if s is None else (n,) + tuple(s), d)
            for s, d in zip(emit_shapes, dts[nv:nv + ne])]
    out += list(zip(sum_shapes, dts[nv + ne:]))
    out += [(None if s is None else (n,) + tuple(s), t.dtype)
            for s, t in zip(var_shapes, ins[:nv])]
    out.append(((), dtypes.int32))
    return out


def _check_var(op, j, value, want):
    if not S.compatible(want, np.shape(value)):
        raise ShapeError(f"{describe_op(op)}: loop variable {j} changed shape from "
                         f"{S.fmt(want)} to {np.shape(value)} in an iteration; give "
                         "shape_invariants to allow it")


def run_loop(op, inputs, plan_for, outputs=None, stacks=None):
    """Evaluate a ``While`` on arrays. ``plan_for(function, arrays)`` gives the plan
    to run a body with (reference or compiled). ``outputs``: unused (kept for
    callers). ``stacks``: a dict the caller keeps between runs, holding the growable
    buffers (:class:`Stack`) the emits and history are recorded in, so that a loop
    run again reuses the capacity its last run grew to.

    On a compiled plan's node (``op.attrs["_live"]``, :func:`flowgraph.loop_passes.
    mark_live_outputs`) the emits and history nobody reads are not recorded: they
    are ``None`` in the result.
    """
    a = op.attrs
    nv, ns, nc = _layout(a)
    ne, nsum = a["n_emits"], a["n_sums"]
    live = a.get("_live") or (True,) * (2 * nv + ne + nsum + 1)
    vars_ = list(inputs[:nv])
    seqs = inputs[nv:nv + ns]
    caps = list(inputs[nv + ns:nv + ns + nc])
    max_iter = int(inputs[nv + ns + nc]) if a["has_max"] else None
    fixed = len(seqs[0]) if ns else None
    reverse = a["reverse"]
    body, cond = a["body"], a["cond"]
    stacks = {} if stacks is None else stacks
    capacity = fixed if fixed is not None else (
        max_iter if max_iter is not None and max_iter <= Stack.START else Stack.START)

    def stack(key):
        st = stacks.get(key)
        if st is None:
            st = stacks[key] = Stack(capacity)
        st.clear(capacity)
        return st
    emits = [stack(("emit", e)) if live[nv + e] else None for e in range(ne)]
    hist = [stack(("hist", j)) if live[nv + ne + nsum + j] else None for j in range(nv)]
    sums = [None] * nsum
    k = 0
    while True:
        if fixed is not None and k >= fixed or max_iter is not None and k >= max_iter:
            break
        if cond is not None:
            args = vars_ + _cond_captures(cond, caps, a)
            if not bool(plan_for(cond, args).run(dict(zip(cond.params + cond.captures, args)),
                                                 _no_state())[0]):
                break
        row = (fixed - 1 - k) if reverse else k
        for j in range(nv):
            if hist[j] is not None:
                hist[j].push(vars_[j])
        index = [np.int32(row)] if a["with_index"] else []
        args = vars_ + [s[row] for s in seqs] + index + caps
        outs = plan_for(body, args).run(dict(zip(body.params + body.captures, args)),
                                        _no_state())
        for j in range(nv):
            _check_var(op, j, outs[j], a["invariants"][j] or np.shape(inputs[j]))
        vars_ = list(outs[:nv])
        for e in range(ne):
            if emits[e] is not None:
                emits[e].push(outs[nv + e])
        for s in range(nsum):
            v = outs[nv + ne + s]
            sums[s] = np.array(v, copy=True) if sums[s] is None else sums[s] + v
        k += 1
    result = list(vars_)
    specs = a["out_specs"]
    if k == 0 and ne + nsum:
        # no iteration ran: the emit rows and sums take the shapes the body would give
        # them on these inputs (its shape rules rerun on the concrete shapes)
        shapes = body.output_shapes(tuple(np.shape(v) for v in vars_) + tuple(
            np.shape(s)[1:] for s in seqs) + (((),) if a["with_index"] else ()) + tuple(
            np.shape(c) for c in caps))[nv:]
        specs = [(shape, dtype) for shape, (_, dtype) in zip(shapes, specs)]
    for e in range(ne):
        shape, dtype = specs[e]
        if emits[e] is None:
            result.append(None)
        else:
            result.append(emits[e].rows(reverse) if k else
                          np.zeros((0,) + tuple(d or 0 for d in shape or ()), dtype))
    for s in range(nsum):
        shape, dtype = specs[ne + s]
        result.append(sums[s] if sums[s] is not None else
                      np.zeros(tuple(d or 0 for d in shape or ()), dtype))
    for j in range(nv):
        rows = None if hist[j] is None else hist[j].rows(reverse)
        # a variable that changed shape (shape_invariants) has no stacked history;
        # its gradient is refused when built
        result.append(rows if rows is not None and len(rows) else None if hist[j] is None
                      else np.zeros((0,) + np.shape(inputs[j]), np.asarray(inputs[j]).dtype))
    result.append(np.int32(k))
    return tuple(result)


class Stack:
    """A growable buffer of rows, as TF1's stacks: capacity doubles when full, and is
    kept from one run to the next (``clear``), so a loop run again with as many
    iterations allocates nothing. ``push`` copies a row in; ``rows()`` is a view of
    the rows pushed (reversed with ``reverse``); ``None`` for rows whose shapes
    differed (a loop variable with ``shape_invariants``).

    >>> st = Stack(1)
    >>> for v in ([1., 2.], [3., 4.], [5., 6.]):
    ...     st.push(np.array(v))
    >>> st.rows().tolist(), st.capacity
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], 4)
    """

    START = 16

    __slots__ = ("buf", "n", "ragged", "_want")

    def __init__(self, capacity=START):
        self.buf, self.n, self.ragged = None, 0, False
        self._want = max(1, capacity)

    @property
    def capacity(self):
        return 0 if self.buf is None else len(self.buf)

    def clear(self, capacity=0):
        self.n, self.ragged = 0, False
        if self.buf is not None and capacity > len(self.buf):
            self.buf = None
        self._want = max(1, capacity, self.capacity)

    def push(self, row):
        row = np.asarray(row)
        buf = self.buf
        if buf is None or buf.shape[1:] != row.shape or buf.dtype != row.dtype:
            if self.n and (buf.shape[1:] != row.shape or buf.dtype != row.dtype):
                self.ragged = True
                self.n += 1
                return
            buf = self.buf = np.empty((max(self._want, 1),) + row.shape, row.dtype)
        elif self.n == len(buf):
            grown = np.empty((2 * len(buf),) + row.shape, row.dtype)
            grown[:self.n] = buf
            buf = self.buf = grown
        if not self.ragged:
            buf[self.n] = row
        self.n += 1

    def rows(self, reverse=False):
        if self.ragged:
            return None
        if self.buf is None:
            return None
        out = self.buf[:self.n]
        return out[::-1].copy() if reverse else out


def check_body_numerics(op, inputs, outputs):
    """With ``check_numerics``: when a ``While`` or ``If`` produced a NaN or Inf, run
    it again with its bodies checked, so that the error names the op inside the body
    that made it (and the loop). Returns when the bodies made none."""
    if all(np.isfinite(v).all() for v in outputs if np.asarray(v).dtype.kind == "f"):
        return
    from .errors import NumericsError
    from .executor import ReferencePlan
    plans = {}

    def checked(function, arrays):
        if function not in plans:
            plans[function] = ReferencePlan(function.graph, function.outputs, [],
                                            function.params + function.captures, True)
        return plans[function]
    try:
        if op.type == "While":
            run_loop(op, inputs, checked)
        else:
            run_if(op, inputs, checked)
    except NumericsError as exc:
        raise NumericsError(f"{exc} (inside {describe_op(op)})") from None


def _cond_captures(cond, caps, attrs):
    """The captured values the cond reads (a subset of the loop's captures)."""
    index = attrs["cond_caps"]
    return [caps[i] for i in index]


def _reference_plan_for(function, arrays):
    return function.reference_plan()


def _while_ref(op, *inputs):
    return run_loop(op, inputs, _reference_plan_for)


# --- the If primitive ------------------------------------------------------------------------

def _if_infer(op):
    a = op.attrs
    return [(_merge(t.shape, f.shape), t.dtype)
            for t, f in zip(a["true"].outputs, a["false"].outputs)]


def _merge(a, b):
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b))


def _if_split(op, inputs):
    nt = len(op.attrs["true"].captures)
    return inputs[1:1 + nt], inputs[1 + nt:]


def run_if(op, inputs, plan_for):
    caps_t, caps_f = _if_split(op, inputs)
    branch, caps = (op.attrs["true"], caps_t) if bool(inputs[0]) else (op.attrs["false"], caps_f)
    caps = list(caps)
    outs = plan_for(branch, caps).run(dict(zip(branch.captures, caps)), _no_state())
    return tuple(outs)


def _if_ref(op, *inputs):
    return run_if(op, inputs, _reference_plan_for)


# --- user API -------------------------------------------------------------------------------

def _label(type_, name):
    """``"While 'while' (created at model.py:12)"``: the op a build error is about and
    the user's line that asked for it (the op itself does not exist yet)."""
    return f"{type_} '{name}'" + location_suffix()


def _loop(body_fn, loop_vars, seqs=(), cond_fn=None, n_emits=0, n_sums=0, reverse=False,
          invariants=None, maximum_iterations=None, with_index=False, record=True,
          carry_terms=False, name="while", label=None):
    """The ``While`` op over flat lists. ``body_fn(*vars, *seq_rows[, row]) ->
    new_vars + emits + sums`` (flat); ``with_index``: the body also gets the row it
    reads and writes (an int32 scalar). Returns ``(final_vars, emits, sums, history,
    count)``. ``label`` names the loop in build errors (default: ``_label``).
    ``carry_terms``: a variable whose new value is a sum with a matrix product may be
    carried as its two terms (:func:`flowgraph.loop_passes.split_carried_sums`; the
    backward loop's state gradient): the final value is then their sum, added after
    the loop, and the history returned is the first term's."""
    label = label or _label("While", name)
    loop_vars = [F.convert_to_tensor(v) for v in loop_vars]
    seqs = [F.convert_to_tensor(s) for s in seqs]
    nv = len(loop_vars)
    invariants = list(invariants) if invariants is not None else [None] * nv
    specs = [(inv if inv is not None else v.shape, v.dtype)
             for inv, v in zip(invariants, loop_vars)]
    for s in seqs:
        if s.shape is not None and len(s.shape) == 0:
            raise ShapeError(f"{label}: expected sequences of rank >= 1, found {s.name} (a scalar)")
    specs += [(None if s.shape is None else tuple(s.shape[1:]), s.dtype) for s in seqs]
    if with_index:
        if not seqs:
            raise ValueError(f"{label}: with_index needs sequences")
        specs.append(((), dtypes.int32))
    if n_emits is None:   # body_fn returns (new_vars, emits, sums): count them
        counts = {}

        def flat_body(*params, _fn=body_fn):
            new, emits, sums = _fn(*params)
            counts["emits"], counts["sums"] = len(emits), len(sums)
            return list(new) + list(emits) + list(sums)
        body_fn = flat_body
    with name_scope(name):
        body = Function.trace(body_fn, specs, "body")
        if n_emits is None:
            n_emits, n_sums = counts["emits"], counts["sums"]
        _check_body(body, loop_vars, specs, nv, n_emits, n_sums, label)
        if seqs:
            from . import loop_passes
            body, seqs, specs = loop_passes.hoist(body, specs, nv, seqs, with_index, name)
        split = []
        if carry_terms:
            from . import loop_passes
            body, specs, split = loop_passes.split_carried_sums(body, specs, nv)
            if split:
                with name_scope("carried"):
                    loop_vars = loop_vars + [F.zeros_like(loop_vars[j]) for j in split]
                invariants += [None] * len(split)
                nv += len(split)
        recorded = _record_matmuls(body, nv, n_emits) if record else ()
        n_user_emits, n_emits = n_emits, n_emits + len(recorded)
        cond = None
        if cond_fn is not None:
            cond = Function.trace(lambda *vs: [cond_fn(*vs)], specs[:nv], "cond")
            c = cond.outputs[0]
            if c.dtype != dtypes.bool_ or (c.shape is not None and len(c.shape)):
                raise ShapeError(f"{label}: expected cond to return a bool scalar, found "
                                 f"{c.dtype.name} of shape {S.fmt(c.shape)}")
    # the loop's captures: the body's, then those only the cond reads (the body plan
    # is fed them all; unused feeds are harmless)
    captures = list(body.captures)
    cond_caps = []
    if cond is not None:
        for t in cond.captures:
            if t not in captures:
                captures.append(t)
            cond_caps.append(captures.index(t))
        body.captures = captures
    inputs = loop_vars + seqs + captures
    has_max = maximum_iterations is not None
    if has_max:
        inputs.append(F.convert_to_tensor(maximum_iterations, dtype=dtypes.int32))
    attrs = {"body": body, "cond": cond, "n_vars": nv, "n_seqs": len(seqs),
             "n_caps": len(captures), "n_emits": n_emits, "n_sums": n_sums,
             "reverse": bool(reverse), "invariants": tuple(
                 None if i is None else tuple(i) for i in invariants),
             "has_max": has_max, "cond_caps": tuple(cond_caps), "with_index": with_index,
             "recorded": recorded,
             # static (shape, dtype) of emit rows and sums, for loops that run 0 times
             "out_specs": tuple((t.shape, t.dtype) for t in body.outputs[nv:])}
    op = loop_vars[0].graph.create_op("While", inputs, attrs, name=name)
    _check_one_task(op, [body] + ([cond] if cond is not None else []))
    outs = list(op.outputs)
    nv0 = nv - len(split)
    final = outs[:nv0]
    if split:
        with name_scope(name + "_carried"):
            for k, j in enumerate(split):
                final[j] = F.add(final[j], outs[nv0 + k])
    return (final, outs[nv:nv + n_user_emits], outs[nv + n_emits:nv + n_emits + n_sums],
            outs[nv + n_emits + n_sums:nv + n_emits + n_sums + nv0], outs[-1])


def _record_matmuls(body, nv, n_emits):
    """Make the body also emit the products it computes from the loop variables or
    rows (``[h, x] @ W``), so that the backward loop reads them instead of computing
    them again: the stacks hold what the gradient needs, as TF1's do. Returns the
    recorded tensors (products, windows of products, activations); they are the last
    emits."""
    varying = set(body.params)
    recorded = []
    for op in body.ops:
        if any(t in varying for t in op.inputs):
            varying.update(op.outputs)
            if op.type == "MatMul" and op.outputs[0].shape is not None \
                    and len(op.outputs[0].shape) == 2:
                recorded.append(op)
    # ``[h] @ W + b`` (or ``+ x_t @ W_x``, the hoisted input product): record the sum,
    # which the backward body reads in place of the product and the addition
    readers = {}
    for op in body.ops:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    outputs = set(body.outputs)
    for i, m in enumerate(recorded):
        users = readers.get(m.outputs[0], [])
        if (len(users) == 1 and m.outputs[0] not in outputs and users[0].type == "Add"
                and users[0].outputs[0].shape == m.outputs[0].shape):
            recorded[i] = users[0]
    recorded = [m.outputs[0] for m in recorded]
    # The activations whose gradients read their outputs (sigmoid, tanh: the gates of
    # a cell) are recorded too, as the unrolled graph keeps them: the backward loop
    # then reads them instead of evaluating the cell's transcendental functions again.
    acts = [op for op in body.ops if op.type in _RECORDED_ACTIVATIONS
            and op.outputs[0] in varying and op.outputs[0].shape is not None
            and None not in op.outputs[0].shape]
    if acts:
        recorded = _needed_windows(recorded, set(acts), readers, outputs) + [
            op.outputs[0] for op in acts]
    at = nv + n_emits
    body.outputs = body.outputs[:at] + recorded + body.outputs[at:]
    return tuple(recorded)


def _needed_windows(products, covered, readers, outputs):
    """Of the recorded ``products``, what the backward loop reads once the
    activations ``covered`` are recorded: a product read only through slices by
    those activations is not needed at all (an LSTM's gates); a product read only
    through a ``Split`` is recorded as the pieces the gradient reads (a GRU's
    ``h @ U + b``: only ``hn``, for ``d(r * hn)/dr``; ``hr`` and ``hz`` reach the
    recorded sigmoids through additions only). Recording a piece, not the whole
    product, lets the bias addition join the cell's fused kernel in the forward
    body (:func:`flowgraph.passes.matmuls.split_bias_adds` leaves a fetched sum
    whole) and stores a third of the rows. A value left out that the backward does
    need after all is computed again there: slower, never wrong."""

    def needed(t, depth=0):
        """Does the gradient read ``t``'s value (or recompute from it a value it
        reads)? Conservative: yes unless every path ends in a covered activation
        through slices and additions, whose gradients do not read their inputs."""
        users = readers.get(t, [])
        if t in outputs or not users or depth > 4:
            return True
        for u in users:
            if u in covered:
                continue
            if u.type in _SLICING or (u.type in _LINEAR and _same_shapes(u)):
                if any(needed(o, depth + 1) for o in u.outputs):
                    return True
                continue
            return True
        return False

    kept = []
    for p in products:
        if not needed(p):
            continue
        users = readers.get(p, [])
        if p not in outputs and users and all(u.type == "Split" for u in users):
            kept += [o for u in users for o in u.outputs if needed(o)]
        else:
            kept.append(p)
    return kept


def _same_shapes(op):
    """Do all of ``op``'s inputs have its output's (fully defined) shape: an
    elementwise op that broadcasts nothing?"""
    shape = op.outputs[0].shape
    return (shape is not None and None not in shape
            and all(t.shape == shape for t in op.inputs))


_LINEAR = frozenset({"Add", "Sub", "Neg"})
_RECORDED_ACTIVATIONS = frozenset({"Sigmoid", "Tanh"})
_SLICING = frozenset({"Split", "StridedSlice", "Reshape", "Identity"})


def _check_body(body, loop_vars, specs, nv, n_emits, n_sums, label):
    outs = body.outputs
    if len(outs) != nv + n_emits + n_sums:
        raise ShapeError(f"{label}: expected the body to return {nv} loop variables, found "
                         f"{len(outs) - n_emits - n_sums}")
    for j, (t, (shape, dtype)) in enumerate(zip(outs[:nv], specs[:nv])):
        if t.dtype != dtype:
            raise ShapeError(f"{label}: loop variable {j} ({loop_vars[j].name}) is "
                             f"{dtype.name} but the body returned {t.dtype.name}")
        # only a definite conflict here: dimensions unknown statically are checked
        # when the loop runs
        if shape is not None and t.shape is not None and (
                len(shape) != len(t.shape) or any(
                    a is not None and b is not None and a != b
                    for a, b in zip(shape, t.shape))):
            raise ShapeError(f"{label}: loop variable {j} ({loop_vars[j].name}) has shape "
                             f"{S.fmt(shape)} but the body returned {S.fmt(t.shape)}; give "
                             "shape_invariants to let it change")


def _invariant(spec, label, j):
    """One loop variable's shape invariant as a tuple (``None`` for an unknown dimension):
    from a tuple, or TF1's ``fg.TensorShape([None, 3])`` / ``tensor.get_shape()``."""
    if spec is None or not isinstance(spec, TensorShape):
        return None if spec is None else tuple(spec)
    if spec.dims is None:
        raise ShapeError(f"{label}: expected shape_invariants of a known rank, found "
                         f"{spec} for loop variable {j}")
    return tuple(dimension_value(d) for d in spec.dims)


def _is_invariant_leaf(x):
    return x is None or isinstance(x, TensorShape) or isinstance(x, tuple) and all(
        d is None or isinstance(d, int) for d in x)


def _no_back_prop(values):
    """TF1's ``back_prop=False``: the results are constants for the gradient."""
    flat, rebuild = flatten(values, is_leaf=_is_leaf_tensor)
    return rebuild([F.stop_gradient(v) if dtypes.is_floating(v.dtype) else v for v in flat])


def while_loop(cond, body, loop_vars, maximum_iterations=None, shape_invariants=None,
               name="while", *, parallel_iterations=10, back_prop=True, swap_memory=False):
    """Repeat ``loop_vars = body(*loop_vars)`` while ``cond(*loop_vars)`` (TF1).

    ``loop_vars`` is any nesting of tensors (lists, tuples, namedtuples, dicts); the
    body returns the same structure, dtypes and shapes (``shape_invariants``, the same
    structure of shapes with ``None`` dimensions, lets a variable change shape). At
    most ``maximum_iterations`` iterations run. Differentiable in reverse mode
    (``back_prop=False``, TF1's, stops the gradient at the results).
    ``shape_invariants`` entries may be tuples or TF1's ``fg.TensorShape``.
    ``parallel_iterations`` and ``swap_memory`` (TF1's) are accepted and change nothing:
    iterations run in order, and the loop keeps its history in host memory.
    Unlike TF1's default ``return_same_structure=False``, a one-element list of loop
    variables gives a one-element list back (the API contract: the same structure).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float64, ())
    ...     y, = fg.while_loop(lambda v: v < 100.0, lambda v: [v * v], [x])
    ...     dy, = fg.gradients(y, [x])
    ...     [float(v) for v in fg.Session().run([y, dy], {x: 3.0})]   # x**8, 8 x**7
    [6561.0, 17496.0]
    """
    single = not isinstance(loop_vars, (list, tuple, dict))
    flat, rebuild = flatten([loop_vars] if single else loop_vars, is_leaf=_is_leaf_tensor)
    if not flat:
        raise ValueError(f"{_label('While', name)}: expected at least one loop variable")
    flat = [F.convert_to_tensor(v) for v in flat]
    label = _label("While", name)
    invariants = None
    if shape_invariants is not None:
        invariants, _ = flatten([shape_invariants] if single else shape_invariants,
                                is_leaf=_is_invariant_leaf)
        invariants = [_invariant(s, label, j) for j, s in enumerate(invariants)]

    def unpack(vs):
        structure = rebuild(list(vs))
        return structure[0] if single else structure

    def body_flat(*vs):
        new = body(*([unpack(vs)] if single else _as_args(unpack(vs))))
        new_flat, _ = flatten([new] if single else new, is_leaf=_is_leaf_tensor)
        if len(new_flat) != len(vs):
            raise ShapeError(f"{label}: expected the body to return {len(vs)} loop variables "
                             f"(the structure of loop_vars), found {len(new_flat)}")
        return new_flat

    def cond_flat(*vs):
        return F.convert_to_tensor(cond(*([unpack(vs)] if single else _as_args(unpack(vs)))))

    final, _, _, _, _ = _loop(body_flat, flat, cond_fn=cond_flat, invariants=invariants,
                              maximum_iterations=maximum_iterations, name=name,
                              label=label)
    result = unpack(final)
    return result if back_prop else _no_back_prop(result)


def _as_args(structure):
    return list(structure.values()) if isinstance(structure, dict) else list(structure)


def _is_leaf_tensor(x):
    return isinstance(x, Tensor) or hasattr(x, "_as_tensor") or _is_leaf(x)


def scan(fn, elems, initializer=None, reverse=False, name="scan", *, parallel_iterations=10,
         back_prop=True, swap_memory=False, infer_shape=True):
    """``tf.scan``: ``acc = fn(acc, x)`` for each row ``x`` of ``elems`` (any nesting
    of tensors sliced along axis 0); returns every ``acc``, stacked along axis 0.
    Without ``initializer`` the first row is the first ``acc``. TF1's ``back_prop=False``
    stops the gradient at the results; ``parallel_iterations``, ``swap_memory`` and
    ``infer_shape`` are accepted and change nothing.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     xs = fg.constant([1.0, 2.0, 3.0, 4.0], fg.float64)
    ...     fg.Session().run(fg.scan(lambda a, x: a + x, xs))
    array([ 1.,  3.,  6., 10.])
    """
    elems_flat, elems_rebuild = flatten(elems, is_leaf=_is_leaf_tensor)
    elems_flat = [F.convert_to_tensor(e) for e in elems_flat]
    first = None
    if initializer is None:
        first = [e[-1] if reverse else e[0] for e in elems_flat]
        elems_flat = [e[:-1] if reverse else e[1:] for e in elems_flat]
        initializer = elems_rebuild(first)
    acc_flat, acc_rebuild = flatten(initializer, is_leaf=_is_leaf_tensor)
    acc_flat = [F.convert_to_tensor(a) for a in acc_flat]
    na = len(acc_flat)

    def body(*vs):
        acc = acc_rebuild(list(vs[:na]))
        x = elems_rebuild(list(vs[na:]))
        new, _ = flatten(fn(acc, x), is_leaf=_is_leaf_tensor)
        new = [F.convert_to_tensor(v) for v in new]
        return new + new

    _, emits, _, _, _ = _loop(body, acc_flat, seqs=elems_flat, n_emits=na, reverse=reverse,
                              name=name)
    if first is not None:
        parts = [F.concat([F.expand_dims(f, 0), e] if not reverse else
                          [e, F.expand_dims(f, 0)], 0) for f, e in zip(first, emits)]
        emits = parts
    result = acc_rebuild(emits)
    return result if back_prop else _no_back_prop(result)


def foldl(fn, elems, initializer=None, name="foldl", **loop_options):
    """``tf.foldl``: ``acc = fn(acc, x)`` over the rows of ``elems`` from the first,
    returning the last ``acc`` (without ``initializer`` the first row starts it). The
    last row of :func:`scan`; ``back_prop`` & co. as there.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.foldl(lambda a, x: a * 10.0 + x, fg.constant([1.0, 2.0, 3.0])))
    np.float32(123.0)
    """
    return _last(scan(fn, elems, initializer, reverse=False, name=name, **loop_options), -1)


def foldr(fn, elems, initializer=None, name="foldr", **loop_options):
    """``tf.foldr``: as :func:`foldl` from the last row to the first.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.foldr(lambda a, x: a * 10.0 + x, fg.constant([1.0, 2.0, 3.0])))
    np.float32(321.0)
    """
    return _last(scan(fn, elems, initializer, reverse=True, name=name, **loop_options), 0)


def _last(stacked, row):
    flat, rebuild = flatten(stacked, is_leaf=_is_leaf_tensor)
    return rebuild([t[row] for t in flat])


def map_fn(fn, elems, dtype=None, parallel_iterations=None, back_prop=True,
           swap_memory=False, infer_shape=True, name="map"):
    """``tf.map_fn``: ``fn`` applied to each row of ``elems`` (any nesting of tensors
    sliced along axis 0), the results stacked along axis 0; ``fn`` may return another
    structure (``dtype``, TF1's declaration of it, is checked against what ``fn``
    returns). One loop with no carried state. ``back_prop=False`` stops the gradient;
    ``parallel_iterations``, ``swap_memory`` and ``infer_shape`` change nothing.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     xs = fg.constant([[1.0, 2.0], [3.0, 4.0]])
    ...     fg.Session().run(fg.map_fn(lambda row: fg.reduce_sum(row * row), xs))
    array([ 5., 25.], dtype=float32)
    """
    label = _label("While", name)
    elems_flat, elems_rebuild = flatten(elems, is_leaf=_is_leaf_tensor)
    elems_flat = [F.convert_to_tensor(e) for e in elems_flat]
    if not elems_flat:
        raise ValueError(f"{label}: map_fn expected at least one tensor in elems")
    out = {}

    def body(unused, *rows):
        leaves, out["rebuild"] = flatten(fn(elems_rebuild(list(rows))),
                                         is_leaf=_is_leaf_tensor)
        return [unused], [F.convert_to_tensor(v) for v in leaves], []

    # The While op (and its gradient loop, which carries the float variables' gradients)
    # needs a loop variable: a float32 scalar passed through unchanged.
    _, emits, _, _, _ = _loop(body, [F.constant(0.0, dtypes.float32)], seqs=elems_flat,
                              n_emits=None, name=name, label=label)
    if dtype is not None:
        want, _ = flatten(dtype, is_leaf=lambda d: not isinstance(d, (list, tuple, dict)))
        got = [e.dtype for e in emits]
        if len(want) != len(got) or any(dtypes.as_dtype(w) != g for w, g in zip(want, got)):
            raise DTypeError(f"{label}: expected fn to return map_fn's dtype "
                             f"{[dtypes.as_dtype(w).name for w in want]}, found "
                             f"{[g.name for g in got]}")
    result = out["rebuild"](list(emits))
    return result if back_prop else _no_back_prop(result)


def cond(pred, true_fn, false_fn, name="cond"):
    """``true_fn()`` if ``pred`` (a bool scalar tensor) else ``false_fn()``: only the
    chosen branch runs. Both return the same structure of tensors of the same dtypes.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float64, ())
    ...     y = fg.cond(x > 0.0, lambda: x * 2.0, lambda: -x)
    ...     float(fg.Session().run(y, {x: -3.0}))
    3.0
    """
    label = _label("If", name)
    pred = F.convert_to_tensor(pred)
    if pred.dtype != dtypes.bool_ or (pred.shape is not None and len(pred.shape)):
        raise ShapeError(f"{label}: expected pred to be a bool scalar, found "
                         f"{pred.dtype.name} of shape {S.fmt(pred.shape)}")
    structure = {}

    def traced(fn, key):
        def flat_fn():
            graph = get_default_graph()
            start = len(graph._operations)
            out = fn()
            leaves, rebuild = flatten(out, is_leaf=_is_leaf_tensor)
            structure[key] = rebuild
            # A branch returning a tensor made outside it (``lambda: u``) returns a copy
            # made inside: the branch's plan fed ``u`` and fetching it failed to run
            # (FeedError for the placeholder ``u`` was computed from).
            own = set(graph._operations[start:])
            return [F.identity(t) if isinstance(t, Tensor) and t.op not in own else t
                    for t in leaves]
        return flat_fn

    with name_scope(name):
        t = Function.trace(traced(true_fn, "t"), [], "true")
        f = Function.trace(traced(false_fn, "f"), [], "false")
    if len(t.outputs) != len(f.outputs) or any(
            a.dtype != b.dtype for a, b in zip(t.outputs, f.outputs)):
        raise ShapeError(f"{label}: expected both branches to return the same structure "
                         f"and dtypes, found {len(t.outputs)} tensors "
                         f"{[x.dtype.name for x in t.outputs]} from true_fn and "
                         f"{len(f.outputs)} {[x.dtype.name for x in f.outputs]} from false_fn")
    op = pred.graph.create_op("If", [pred] + t.captures + f.captures,
                              {"true": t, "false": f}, name=name)
    _check_one_task(op, [t, f])
    return structure["t"](list(op.outputs))


def case(pred_fn_pairs, default=None, exclusive=False, strict=False, name="case"):
    """TF1's ``tf.case``: the result of the ``fn`` of the first true ``pred`` in
    ``pred_fn_pairs`` (a list of ``(pred, fn)`` pairs, or a dict ``{pred: fn}``, taken
    in the order of the predicates' names as TF1 does in a graph), else ``default()``.
    Built as TF1 builds it, as nested :func:`cond` (so only the chosen branch runs and
    gradients flow through it), on the branch index a ``CaseIndex`` op computes from
    the predicates; that op raises ``InvalidArgumentError`` at run time where TF1's
    asserts do: with ``exclusive=True`` when more than one predicate is true, and with
    no ``default`` when none is (the last ``fn`` is then the innermost else branch).
    ``strict=False`` unpacks a one-element list or tuple a branch returns, as TF1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float64, ())
    ...     y = fg.case([(x < 0.0, lambda: -x), (x < 1.0, lambda: x * 10.0)],
    ...                 default=lambda: x + 100.0)
    ...     sess = fg.Session()
    ...     [float(sess.run(y, {x: v})) for v in (-2.0, 0.5, 3.0)]
    [2.0, 5.0, 103.0]
    """
    label = f"case '{name}'" + location_suffix()
    if isinstance(pred_fn_pairs, dict):
        pairs = list(pred_fn_pairs.items())
        for p, _ in pairs:
            if not isinstance(p, Tensor):
                raise TypeError(f"{label}: expected bool tensors as predicates, found "
                                f"{type(p).__name__}")
        pairs.sort(key=lambda item: item[0].name)
    elif isinstance(pred_fn_pairs, (list, tuple)):
        pairs = list(pred_fn_pairs)
    else:
        raise TypeError(f"{label}: expected pred_fn_pairs to be a list, tuple or dict, found "
                        f"{type(pred_fn_pairs).__name__}")
    if not pairs:
        if default is None:
            raise ValueError(f"{label}: expected at least one (pred, fn) pair or a default")
        if not callable(default):
            raise TypeError(f"{label}: expected a callable default, found "
                            f"{type(default).__name__}")
    preds, fns = [], []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"{label}: expected pair {i} to be a 2-tuple (pred, fn), found "
                            f"{pair!r}")
        p, fn = pair
        p = p if isinstance(p, Tensor) else None
        if p is None or p.dtype != dtypes.bool_ or (p.shape is not None and len(p.shape)):
            found = (f"{pair[0].dtype.name} of shape {S.fmt(pair[0].shape)}"
                     if isinstance(pair[0], Tensor) else type(pair[0]).__name__)
            raise TypeError(f"{label}: expected pred {i} to be a bool scalar tensor, found "
                            f"{found}")
        if not callable(fn):
            raise TypeError(f"{label}: expected fn {i} (for pred {p.name}) to be callable, "
                            f"found {type(fn).__name__}")
        preds.append(p)
        fns.append(fn)
    if default is not None and not callable(default):
        raise TypeError(f"{label}: expected a callable default, found {type(default).__name__}")

    def loose(fn):
        if strict:
            return fn

        def unpacked():
            out = fn()
            if isinstance(out, (list, tuple)) and len(out) == 1:
                return out[0]
            return out
        return unpacked

    fns = [loose(fn) for fn in fns]
    if not preds:
        return loose(default)()
    with name_scope(name):
        index = F._out("CaseIndex", [F.stack(preds)],
                       {"exclusive": bool(exclusive), "has_default": default is not None},
                       name="case_index")
    # The innermost else: the default, or (TF1 without one) the last fn, reached only
    # when its predicate is the true one (CaseIndex refuses "none true" first).
    branch = loose(default) if default is not None else fns[-1]
    last = len(fns) if default is not None else len(fns) - 1
    if last == 0:       # one pair, no default: a cond all the same, so the check runs
        last, branch = 1, fns[0]
    for i in reversed(range(last)):
        branch = (lambda i, then, other: lambda: cond(
            F.equal(index, i), then, other, name=f"{name}_{i}"))(i, fns[i], branch)
    return branch()


# --- gradients --------------------------------------------------------------------------------

def _while_grad(op, *grads):
    from .autodiff import wanted_inputs
    wanted = wanted_inputs(op)
    a = op.attrs
    nv, ns, nc = _layout(a)
    ne, nsum = a["n_emits"], a["n_sums"]
    body = a["body"]
    vars_in, seqs, caps = (list(op.inputs[:nv]), list(op.inputs[nv:nv + ns]),
                           list(op.inputs[nv + ns:nv + ns + nc]))
    outs = list(op.outputs)
    g_final = grads[:nv]
    g_emits = grads[nv:nv + ne]
    g_sums = grads[nv + ne:nv + ne + nsum]
    g_hist = grads[nv + ne + nsum:2 * nv + ne + nsum]
    hist = outs[nv + ne + nsum:2 * nv + ne + nsum]
    for j, inv in enumerate(a["invariants"]):
        if inv is not None and inv != vars_in[j].shape and dtypes.is_floating(vars_in[j].dtype):
            raise FlowgraphError(f"{describe_op(op)}: gradients through a loop variable "
                                 f"whose shape may change (shape_invariants {S.fmt(inv)}) "
                                 "are not supported; expected fixed-shape loop variables")
    fv = [j for j in range(nv) if dtypes.is_floating(vars_in[j].dtype)]
    # only the gradients asked for: a sequence of fed data (x) gets none computed; nor
    # does one the body never reads: its gradient is zero, and a zero row emitted per
    # step would be stored, then added to the sequence's other gradients as a loop
    # output that no pass can see is zero (passes.push_gathers_into_gradients would not
    # recognize an embedding table's gradient through it)
    read = _read_params(body)
    fs = [j for j in range(ns) if dtypes.is_floating(seqs[j].dtype) and wanted[nv + j]
          and id(body.params[nv + j]) in read]
    fc = [j for j in range(nc) if dtypes.is_floating(caps[j].dtype)
          and wanted[nv + ns + j]]
    live_e = [e for e in range(ne) if g_emits[e] is not None]
    live_s = [s for s in range(nsum) if g_sums[s] is not None]
    live_h = [j for j in fv if g_hist[j] is not None]
    init = [g_final[j] if g_final[j] is not None else F.zeros_like(outs[j]) for j in fv]
    recorded = a.get("recorded", ())
    nrec = len(recorded)
    records = outs[nv + ne - nrec:nv + ne]
    # sequences of the backward loop: history, forward sequences, recorded products,
    # emit and history gradients
    bseqs = (hist + seqs + records + [g_emits[e] for e in live_e]
             + [g_hist[j] for j in live_h])
    nfv = len(fv)

    def bbody(*args):
        gv = args[:nfv]
        rows = args[nfv:]
        x_vars = [F.identity(r) for r in rows[:nv]]
        x_seqs = [F.identity(r) for r in rows[nv:nv + ns]]
        rec_rows = rows[nv + ns:nv + ns + nrec]
        rows = rows[:nv + ns] + rows[nv + ns + nrec:]
        ge = rows[nv + ns:nv + ns + len(live_e)]
        index = [rows[-1]] if a["with_index"] else []
        rows = rows[:len(rows) - len(index)]
        gh = rows[nv + ns + len(live_e):]
        local_caps = [F.identity(c) for c in caps]
        graph = op.graph
        start = len(graph._operations)
        mapping = {}
        y = body.call(x_vars + x_seqs + index, local_caps, mapping_out=mapping)
        ys = [y[j] for j in fv] + [y[nv + e] for e in live_e] + [y[nv + ne + s] for s in live_s]
        gys = list(gv) + list(ge) + [g_sums[s] for s in live_s]
        xs = [x_vars[j] for j in fv] + [x_seqs[j] for j in fs] + [local_caps[j] for j in fc]
        keep = [i for i, t in enumerate(ys) if dtypes.is_floating(t.dtype)]
        from .autodiff import gradients
        g = gradients([ys[i] for i in keep], xs, grad_ys=[gys[i] for i in keep])
        # read the recorded values instead of computing them again: the copies of
        # the ops making them stay only as the anchors of their gradient rules (then
        # unused)
        swap = {mapping[t]: r for t, r in zip(recorded, rec_rows)}
        if swap:
            copies = {t.op for t in swap}
            for later in graph._operations[start:]:
                if later not in copies and any(t in swap for t in later.inputs):
                    later.inputs = tuple(swap.get(t, t) for t in later.inputs)
        g_vars = g[:nfv]
        hist_add = dict(zip(live_h, gh))
        g_vars = [gx + hist_add[j] if j in hist_add else gx for gx, j in zip(g_vars, fv)]
        # Per-iteration weight and bias gradients become emits, summed once after the
        # loop (one GEMM, one column sum); an emit that is already a sequence
        # gradient or a row of the forward history is not emitted twice.
        emit_list, sums = list(g[nfv:nfv + len(fs)]), []

        def emit_index(t):
            for i, u in enumerate(emit_list):
                if u is t:
                    return i
            emit_list.append(t)
            return len(emit_list) - 1

        for j, gc in zip(fc, g[nfv + len(fs):]):
            if not ns:
                # a trip count known only at run time (while_loop): the weight
                # gradients are summed in the backward loop, so that nothing after
                # it has a number of rows known only at run time
                recipes[j] = ("sum", len(sums))
                sums.append(gc)
            elif _stackable(gc):
                left, right = gc.op.inputs
                own = [k for k, v in enumerate(x_vars) if v is left]
                recipes[j] = ("matmul", ("hist", own[0]) if own else ("emit", emit_index(left)),
                              emit_index(right))
            elif _column_sum(gc, local_caps[j]):
                recipes[j] = ("column sum", emit_index(gc.op.inputs[0]))
            else:
                recipes[j] = ("sum", len(sums))
                sums.append(gc)
        return g_vars, emit_list, sums

    # A weight gradient that is a GEMM per iteration, a_k^T b_k (x @ W in the body),
    # is summed as one GEMM after the loop over the stacked a_k and b_k, as the passes
    # stack the per-step weight gradients of an unrolled graph; a bias gradient, a
    # column sum per iteration, is one column sum after it.
    recipes = {}
    with name_scope("while_grad"):
        g_init, emits, g_sums, _, _ = _loop(bbody, init, seqs=bseqs, n_emits=None,
                                            reverse=not a["reverse"],
                                            with_index=a["with_index"], record=False,
                                            carry_terms=True, name="while_grad")
        g_seq = emits[:len(fs)]
        g_caps = {}
        for j, recipe in recipes.items():
            if recipe[0] == "matmul":
                where, k = recipe[1]
                left = hist[k] if where == "hist" else emits[k]
                right = emits[recipe[2]]
                g_caps[j] = F.matmul(F.reshape(left, (-1, left.shape[-1])),
                                     F.reshape(right, (-1, right.shape[-1])), transpose_a=True)
            elif recipe[0] == "column sum":
                g_caps[j] = F.sum_like(emits[recipe[1]], caps[j])
            else:
                g_caps[j] = g_sums[recipe[1]]
    result = [None] * len(op.inputs)
    for j, g in zip(fv, g_init):
        result[j] = g
    for j, g in zip(fs, g_seq):
        result[nv + j] = g
    for j, g in g_caps.items():
        result[nv + ns + j] = g
    return result


def _read_params(body):
    """The ids of the tensors ``body`` (a :class:`Function`) reads: its ops' inputs and
    its outputs (a parameter returned as it is)."""
    return {id(t) for op in body.ops for t in op.inputs} | {id(t) for t in body.outputs}


def _column_sum(grad, cap):
    """``sum_like(x, cap)`` of a ``[rows, n]`` ``x`` and a ``[n]`` captured ``cap``
    (a bias gradient)."""
    op = grad.op
    return (op.type == "SumLike" and op.inputs[1] is cap and cap.shape is not None
            and len(cap.shape) == 1 and op.inputs[0].shape is not None
            and len(op.inputs[0].shape) == 2 and op.inputs[0].shape[1] == cap.shape[0])


def _stackable(grad):
    """``matmul(a, b, transpose_a=True)`` of two matrices with known column counts."""
    op = grad.op
    return (op.type == "MatMul" and op.attrs["transpose_a"] and not op.attrs["transpose_b"]
            and all(t.shape is not None and len(t.shape) == 2 and t.shape[1] is not None
                    for t in op.inputs))


def _if_grad(op, *grads):
    t, f = op.attrs["true"], op.attrs["false"]
    caps_t, caps_f = list(op.inputs[1:1 + len(t.captures)]), list(op.inputs[1 + len(t.captures):])
    live = [i for i, g in enumerate(grads) if g is not None
            and dtypes.is_floating(op.outputs[i].dtype)]
    gs = [grads[i] for i in live]
    if not live:
        return [None] * len(op.inputs)

    def branch_grad(branch, mine, other):
        def fn():
            from .autodiff import gradients
            local = [F.identity(c) for c in mine]
            y = branch.call([], local)
            floats = [i for i, c in enumerate(mine) if dtypes.is_floating(c.dtype)]
            g = gradients([y[i] for i in live], [local[i] for i in floats],
                          grad_ys=[F.identity(x) for x in gs]) if floats else []
            own = dict(zip(floats, g))
            out = [own[i] if i in own else None for i in range(len(mine))]
            zero_other = [F.zeros_like(c) for c in other if dtypes.is_floating(c.dtype)]
            return out, zero_other
        return fn

    ft = [i for i, c in enumerate(caps_t) if dtypes.is_floating(c.dtype)]
    ff = [i for i, c in enumerate(caps_f) if dtypes.is_floating(c.dtype)]
    if not ft and not ff:
        return [None] * len(op.inputs)

    def true_fn():
        own, zf = branch_grad(t, caps_t, caps_f)()
        return [own[i] for i in ft] + zf

    def false_fn():
        own, zt = branch_grad(f, caps_f, caps_t)()
        return zt + [own[i] for i in ff]

    g = cond(op.inputs[0], true_fn, false_fn, name="cond_grad")
    g = g if isinstance(g, list) else list(g)
    result = [None] * len(op.inputs)
    for k, i in enumerate(ft):
        result[1 + i] = g[k]
    for k, i in enumerate(ff):
        result[1 + len(caps_t) + i] = g[len(ft) + k]
    return result


def _register():
    from .ops import defprim
    # "loop" is a pure kind: a body is a function of its inputs (assignments inside are
    # refused when it is traced), so loops can be pruned, merged and placed like any op.
    defprim("While", _while_infer, _while_grad, _while_ref, "loop", "while")
    defprim("If", _if_infer, _if_grad, _if_ref, "loop", "cond")


_register()


from . import loop_step  # noqa: E402,F401  (registers the compiled loop step)
