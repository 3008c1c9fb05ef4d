"""Reverse-mode automatic differentiation as a graph-to-graph transformation.

:func:`gradients` walks only the ops on a path from ``xs`` to ``ys``, in reverse
creation order, calling each primitive's gradient rule (see :mod:`flowgraph.ops`).
Contributions that meet at a tensor are summed; broadcasting is undone in one place
(:func:`_unbroadcast`). The result is ordinary graph ops, so it can be run, placed,
optimized and differentiated again.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(1.0, fg.float64)
...     d1, = fg.gradients(fg.tanh(x), [x])
...     d2, = fg.gradients(d1, [x])
...     with fg.Session() as sess:
...         print(round(float(sess.run(d1)), 12), round(float(sess.run(d2)), 12))
0.419974341614 -0.639700008449
"""
from __future__ import annotations

from . import api as F
from . import dtypes
from . import shapes as S
from .graph import Tensor, _no_control_dependencies, _scopes, device, name_scope


def _as_tensor_list(values, what):
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        items = list(values)
    else:
        items = [values]
    out = []
    for v in items:
        if hasattr(v, "_as_tensor"):
            v = v._as_tensor()
        if not isinstance(v, Tensor):
            raise TypeError(f"gradients: expected tensors or variables in {what}, found "
                            f"{type(v).__name__}")
        out.append(v)
    return out


def _forward_reachable(graph, xs):
    """Tensors that depend (through data inputs) on any of ``xs``."""
    reach = set(xs)
    start = min(x.op._id for x in xs)
    for op in graph._operations[start:]:
        if any(t in reach for t in op.inputs):
            reach.update(op.outputs)
    return reach


def _backward_ops(ys):
    """Ops that ``ys`` depend on through data inputs."""
    seen, stack = set(), [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
    return seen


def _unbroadcast(grad, x):
    """Sum ``grad`` down to ``x``'s shape where the forward op broadcast ``x``."""
    if grad.shape == x.shape and S.is_fully_defined(x.shape):
        return grad
    return F.sum_like(grad, x)


# Which inputs of the op being differentiated need a gradient (set just before its
# rule is called): a rule whose work per input is large (a loop's) can skip the rest.
_wanted: list = []


def wanted_inputs(op):
    """For the op whose gradient rule is running: one bool per input, ``True`` where a
    gradient is needed (all ``True`` outside a :func:`gradients` call)."""
    return list(_wanted) if len(_wanted) == len(op.inputs) else [True] * len(op.inputs)


def _sum(contribs):
    return contribs[0] if len(contribs) == 1 else F.add_n(contribs)


def gradients(ys, xs, grad_ys=None, name="gradients", colocate_gradients_with_ops=False,
              gate_gradients=False, aggregation_method=None, stop_gradients=None):
    """Symbolic gradients of ``sum(ys)`` with respect to each of ``xs``.

    ``ys`` is a tensor or a list (their gradients add). A non-scalar ``y`` without a
    ``grad_ys`` entry is differentiated as ``reduce_sum(y)``. An ``x`` that ``ys`` do
    not depend on gets zeros of its shape (``None`` for integer ``xs``). Gradient ops go
    on the device of the forward op they differentiate.

    TF1's ``stop_gradients`` (a tensor or a list) holds those tensors constant: no
    gradient flows through them to what they are computed from (one of them that is
    also in ``xs`` still gets its own gradient). ``colocate_gradients_with_ops``,
    ``gate_gradients`` and ``aggregation_method`` are accepted and change nothing
    (gradient ops already go on their forward op's device; values do not depend on
    op order or on how the terms of a sum are grouped beyond rounding).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (3,))
    ...     dx, = fg.gradients(fg.reduce_sum(x * x), [x])
    ...     fg.Session().run(dx, {x: [1, 2, 3]})
    array([2., 4., 6.], dtype=float32)
    """
    ys = _as_tensor_list(ys, "ys")
    xs = _as_tensor_list(xs, "xs")
    if grad_ys is not None:
        grad_ys = grad_ys if isinstance(grad_ys, (list, tuple)) else [grad_ys]
        if len(grad_ys) != len(ys):
            raise ValueError(f"gradients: expected {len(ys)} grad_ys (one per ys), found "
                             f"{len(grad_ys)}")
    else:
        grad_ys = [None] * len(ys)
    if not xs:
        return []
    graph = ys[0].graph
    for t in ys + xs:
        if t.graph is not graph:
            raise ValueError(f"gradients: {t.name} belongs to another graph than {ys[0].name}")

    stop = set(_as_tensor_list(stop_gradients, "stop_gradients")) \
        if stop_gradients is not None else set()
    reachable = _forward_reachable(graph, xs)
    between = [op for op in _backward_ops(ys) if any(t in reachable for t in op.outputs)]
    between.sort(key=lambda op: op._id, reverse=True)

    grads: dict[Tensor, list[Tensor]] = {}
    with _no_control_dependencies(), name_scope(name):
        for y, gy in zip(ys, grad_ys):
            if y not in reachable or not dtypes.is_floating(y.dtype):
                continue
            with device(y.op.device or _scopes().device):
                seed = F.ones_like(y) if gy is None else F.convert_to_tensor(gy, dtype=y.dtype)
            grads.setdefault(y, []).append(seed)

        for op in between:
            out_grads = [_sum(grads[t]) if t in grads and t not in stop else None
                         for t in op.outputs]
            rule = op.primitive.grad
            if rule is None or all(g is None for g in out_grads):
                continue
            with device(op.device or _scopes().device), name_scope(f"{op.name}_grad"):
                _wanted[:] = [inp in reachable and dtypes.is_floating(inp.dtype)
                              for inp in op.inputs]
                if len(op.outputs) == 1:
                    in_grads = rule(op, out_grads[0])
                else:
                    in_grads = rule(op, *out_grads)
                for inp, g in zip(op.inputs, in_grads):
                    if g is None or inp not in reachable or not dtypes.is_floating(inp.dtype):
                        continue
                    grads.setdefault(inp, []).append(_unbroadcast(g, inp))

        results = []
        for x in xs:
            if x in grads:
                results.append(_sum(grads[x]))
            elif dtypes.is_floating(x.dtype):
                with device(x.op.device or _scopes().device):
                    results.append(F.zeros_like(x))
            else:
                results.append(None)
    return results
