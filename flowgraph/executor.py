"""The reference executor: the graph run op by op with each primitive's NumPy kernel.

This is the specification every compiled plan is tested against
(``SessionConfig(optimize=False)`` runs it). A *plan* is what a session runs for one
(fetches, feeds) signature; every plan has ``run(feeds, state) -> list of values``.

:class:`RunState` carries variable values through one run: reads of a ``Variable`` op
see the value at the start of the run, assignments go to a pending set that the
session commits only if the whole run succeeds. Random ops take the run's number
from it (:meth:`RunState.random_counter`): a run that fails gives its number back.
"""
from __future__ import annotations

import numpy as np

from . import shapes as S
from .errors import (FeedError, FlowgraphError, InvalidArgumentError, NumericsError,
                     ShapeError, describe_op)


class RunState:
    """Variable values during one run: a snapshot plus pending assignments."""

    __slots__ = ("snapshot", "pending", "resident", "_initial", "_reserve", "counter")

    def __init__(self, snapshot, initial, reserve_run=None):
        self.snapshot = snapshot        # Variable -> array at the start of the run
        self.pending = {}               # Variable -> array assigned in this run
        # Variable -> (host value, its device copy): the session keeps the copy in
        # place of the host value, unless the value changed meanwhile.
        self.resident = {}
        self._initial = initial         # Variable -> array, for lazily initialized ones
        # () -> (run number, session salt), called once, at the run's first random draw
        self._reserve = reserve_run
        self.counter = None

    def random_counter(self):
        """``(run number, session salt)`` for this run's random ops; the first call
        reserves the number (a run without random ops takes none)."""
        if self.counter is None:
            self.counter = self._reserve() if self._reserve is not None else (0, 0)
        return self.counter

    def read_raw(self, var):
        """The value as stored: a host array, or a device array for a variable that
        lives on a GPU (the CUDA backend uses this to keep it there)."""
        value = self.snapshot.get(var)
        if value is None:
            value = self._initial(var)
            # The snapshot is the session's own (copy-on-write) mapping: never mutate it.
            self.snapshot = {**self.snapshot, var: value}
        return value

    def read_latest_raw(self, var):
        value = self.pending.get(var)
        return self.read_raw(var) if value is None else value

    def read(self, var):
        return to_host(self.read_raw(var))

    def read_latest(self, var):
        return to_host(self.read_latest_raw(var))

    def write(self, var, value, op, copy=True):
        """Assign ``value`` (pending until the run commits); ``copy=False`` for a new
        array of the variable's dtype that nothing else holds."""
        value = np.asarray(value)
        if value.shape != var.shape:
            raise ShapeError(f"{describe_op(op)}: expected a value of the variable's shape "
                             f"{var.shape}, found {value.shape}")
        value = value.astype(var.dtype, copy=copy)
        value.setflags(write=False)
        self.pending[var] = value
        return value


def to_host(value):
    """A host array for a value that may live on a device (``copy_to_host``)."""
    if not isinstance(value, np.ndarray) and hasattr(value, "copy_to_host"):
        value = value.copy_to_host()
        value.setflags(write=False)
    return value


def run_state_op(op, inputs, state: RunState):
    """Evaluate a state primitive (Variable, ReadVariable, Assign*, SparseRowsSGD,
    InitVariables)."""
    kind = op.type
    if kind == "Variable":
        return (state.read(op.attrs["variable"]),)
    if kind == "ReadVariable":
        return (state.read_latest(op.attrs["variable"]),)
    var = op.attrs.get("variable")
    if kind == "Assign":
        return (state.write(var, inputs[0], op),)
    if kind == "AssignAdd":
        return (state.write(var, state.read_latest(var) + inputs[0], op),)
    if kind == "AssignSub":
        return (state.write(var, state.read_latest(var) - inputs[0], op),)
    if kind == "SparseRowsSGD":
        # from the value at the start of the run, as the dense update var.value() - ...
        return (state.write(var, sparse_rows_sgd(var, state.read(var), *inputs),
                            op, copy=False),)
    if kind == "InitVariables":
        for v in op.attrs["variables"]:
            state.pending[v] = v.initial_value
        return ()
    raise FlowgraphError(f"{describe_op(op)}: not a state op")


def sparse_rows_sgd(var, current, rows, indices, lr):
    """A new array: ``current`` with ``lr`` times the rows of ``rows`` summed per index
    subtracted at ``indices`` (the dense ``current - lr * GatherGrad(rows, indices)``,
    computed on the rows used only)."""
    from .ops import segment_rows
    value = np.array(current, dtype=var.dtype, copy=True)
    used, summed = segment_rows(rows, indices, value.shape[0])
    if used.size:
        value[used] -= np.asarray(lr, var.dtype) * summed
    return value


def needed_ops(fetch_ops, fed):
    """The ops that must run to produce ``fetch_ops``, in creation (topological) order.

    Data inputs that are fed are not followed; control inputs always are.
    """
    seen, stack = set(), list(fetch_ops)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        for t in op.inputs:
            if t not in fed:
                stack.append(t.op)
        stack.extend(op.control_inputs)
    return sorted(seen, key=lambda o: o._id)


def missing_placeholders(ops, fed):
    return [op for op in ops if op.type == "Placeholder" and op.outputs[0] not in fed]


def check_output(op, index, value):
    """Coerce a kernel's output to the static dtype and check it against the static
    shape; a mismatch is a bug or an unknown dimension that did not fit.
    """
    t = op.outputs[index]
    value = np.asarray(value)
    if value.dtype != t.dtype:
        value = value.astype(t.dtype)
    if not S.compatible(t.shape, value.shape):
        raise ShapeError(f"{describe_op(op)}: produced shape {value.shape} at run time, "
                         f"expected {S.fmt(t.shape)}")
    return value


def check_finite(op, values):
    for i, v in enumerate(values):
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            what = "NaN" if np.isnan(v).any() else "Inf"
            raise NumericsError(f"{describe_op(op)}: output {i} contains {what} "
                                f"(shape {v.shape}); expected finite values")


def kernel_error(op, inputs, exc):
    """Wrap an exception raised by a kernel so that it names the op."""
    if isinstance(exc, FlowgraphError):
        return type(exc)(f"{describe_op(op)}: {exc}")
    found = ", ".join(f"{np.shape(v)} {np.asarray(v).dtype}" for v in inputs)
    return InvalidArgumentError(f"{describe_op(op)}: failed at run time on inputs "
                                f"[{found}]: {type(exc).__name__}: {exc}")


def evaluate_op(op, inputs, state: RunState, check_numerics=False, generator=None):
    """One op on the host with its NumPy reference kernel (state ops through ``state``):
    outputs checked against the static shapes and dtypes, errors naming the op. Every
    executor runs host ops through this.
    """
    try:
        kind = op.primitive.kind
        if kind == "state":
            outs = run_state_op(op, inputs, state)
        elif kind == "random":
            # generator: a faster maker of the same Philox words (kernels.cpu.philox)
            outs = op.primitive.ref(op, *inputs, counter=state.random_counter(),
                                    generator=generator)
            if not isinstance(outs, tuple):   # a candidate sampler returns three
                outs = (outs,)
        else:
            outs = op.primitive.ref(op, *inputs)
            if not isinstance(outs, tuple):
                outs = (outs,)
        outs = [check_output(op, i, v) for i, v in enumerate(outs)]
    except FlowgraphError as exc:
        if describe_op(op) in str(exc):
            raise
        raise kernel_error(op, inputs, exc) from None
    except Exception as exc:  # a NumPy error: say which op and on what
        raise kernel_error(op, inputs, exc) from exc
    if check_numerics:
        if kind == "loop":     # a NaN made inside a loop body: name the body's op
            from .control_flow import check_body_numerics
            check_body_numerics(op, inputs, outs)
        check_finite(op, outs)
    return outs


class ReferencePlan:
    """Runs the needed ops one by one with the NumPy reference kernels."""

    def __init__(self, graph, fetch_tensors, target_ops, feed_tensors, check_numerics=False):
        self.graph = graph
        self.fetch_tensors = list(fetch_tensors)
        self.feed_tensors = list(feed_tensors)
        fed = set(feed_tensors)
        roots = [t.op for t in fetch_tensors] + list(target_ops)
        ops = needed_ops(roots, fed)
        missing = missing_placeholders(ops, fed)
        if missing:
            op = missing[0]
            raise FeedError(f"{describe_op(op)}: expected a feed for placeholder "
                            f"'{op.outputs[0].name}' (shape {S.fmt(op.outputs[0].shape)}, "
                            f"{op.outputs[0].dtype.name}), found none; it is needed by "
                            f"{', '.join(repr(t.name) for t in fetch_tensors) or 'the run'}")
        # Ops whose every output is fed do not run.
        self.ops = [op for op in ops if not op.outputs or not all(t in fed for t in op.outputs)]
        self.check_numerics = check_numerics

    def run(self, feeds, state: RunState):
        values = dict(feeds)
        with np.errstate(all="ignore"):
            for op in self.ops:
                outs = evaluate_op(op, [values[t] for t in op.inputs], state,
                                   self.check_numerics)
                for t, v in zip(op.outputs, outs):
                    if t not in feeds:
                        values[t] = v
        return [values[t] for t in self.fetch_tensors]

    def run_traced(self, feeds, state: RunState, metadata):
        """``run``, recording each op's start and end (``metadata.record``)."""
        import time

        from .devices import DEFAULT_DEVICE
        from .explain import StepInfo
        clock, values = time.perf_counter_ns, dict(feeds)
        with np.errstate(all="ignore"):
            for op in self.ops:
                start = clock()
                outs = evaluate_op(op, [values[t] for t in op.inputs], state,
                                   self.check_numerics)
                metadata.record(StepInfo("reference", op.device or DEFAULT_DEVICE,
                                         [op.name]), start, clock())
                for t, v in zip(op.outputs, outs):
                    if t not in feeds:
                        values[t] = v
        return [values[t] for t in self.fetch_tensors]
