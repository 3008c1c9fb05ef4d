"""Passes that shrink a program: pruning, constant folding, algebraic
simplification, common-subexpression elimination."""
from __future__ import annotations

import math
import numpy as np

from ..ops import get_primitive
from .ir import FOLD_LIMIT, Node, _const, _const_value, _dtype_text, _is_pure, _rewrite


# --- passes ----------------------------------------------------------------------------

def prune(prog):
    """Keep only nodes the fetches and targets need (data and control inputs)."""
    keep, stack = set(), [v[0] for v in prog.fetches] + list(prog.targets)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        stack.extend([v[0] for v in n.inputs])
        stack.extend(n.controls)
    prog.nodes = [n for n in prog.nodes if n in keep]
    return prog


def fold_constants(prog):
    """Evaluate pure ops of constant inputs at compile time (small results only); also
    ops that depend only on shapes (declared ``shape_only``: ``Size``, ``Shape``,
    ``ZerosLike``, ``OnesLike``), which are constants once feed shapes are fixed.
    """
    def visit(n):
        if not _is_pure(n):
            return None
        if any(math.prod(s) > FOLD_LIMIT for s in n.shapes):
            return None
        if n.primitive.shape_only:
            # Only the shapes matter: zero-stride stand-ins cost no memory.
            args = [np.broadcast_to(np.zeros((), v[0].dtypes[v[1]]), v[0].shapes[v[1]])
                    for v in n.inputs]
        else:
            args = [_const_value(v) for v in n.inputs]
            if not n.inputs or any(a is None for a in args):
                return None
        try:
            with np.errstate(all="ignore"):
                out = get_primitive(n.type).ref(n, *args)
        except Exception:
            return None   # leave the error to run time, where it names the op
        outs = out if isinstance(out, tuple) else (out,)
        return [(_const(_compact(np.asarray(o).astype(d, copy=False)), n), 0)
                for o, d in zip(outs, n.dtypes)]
    return _rewrite(prog, visit)


def _compact(value):
    """A constant whose elements are all equal (``ones_like``, a filled gradient seed)
    as a read-only broadcast of one element: kernels then load one value, not an array.
    """
    if value.size > 1 and value.dtype.kind in "fb":
        flat = np.ascontiguousarray(value).reshape(-1)
        bits = flat.view(np.uint8).reshape(flat.size, -1)
        if (bits == bits[0]).all():          # bitwise: NaN and -0.0 compare exactly
            return np.broadcast_to(flat[:1].reshape(()), value.shape)
    return value


def _all_equal(value, x):
    return value is not None and value.size > 0 and bool(np.all(value == x))


def simplify(prog):
    """Algebraic identities: x*1, x+0, x-0, -(-x), identity ops, transpose of
    transpose, reshape chains, and the autodiff helpers (``ReshapeLike``,
    ``SumLike``, ``BroadcastLike``, ``ExpandDims``, ``Squeeze``) turned into plain
    reshapes, reductions and broadcasts now that shapes are known.
    """
    def same(n, v):
        return v[0].shapes[v[1]] == n.shapes[0] and v[0].dtypes[v[1]] == n.dtypes[0]

    def visit(n):
        t = n.type
        if n.controls:
            return None
        if n.primitive.alias and same(n, n.inputs[0]):
            return n.inputs[0]
        if t in ("Mul", "Add", "Sub") and n.dtypes[0].kind == "f":
            a, b = n.inputs
            unit = 1 if t == "Mul" else 0
            if _all_equal(_const_value(b), unit) and same(n, a):
                return a
            if t != "Sub" and _all_equal(_const_value(a), unit) and same(n, b):
                return b
        if t == "Neg" and n.inputs[0][0].type == "Neg":
            return n.inputs[0][0].inputs[0]
        if t == "Transpose":
            src = n.inputs[0]
            perm = list(n.attrs["perm"])
            if src[0].type == "Transpose":
                inner = list(src[0].attrs["perm"])
                perm = [inner[p] for p in perm]
                src = src[0].inputs[0]
            if perm == sorted(perm):
                return src
            if src is not n.inputs[0]:
                return _replace(n, "Transpose", [src], {"perm": tuple(perm)})
        if t in ("Reshape", "ReshapeLike", "ReshapeTo", "ExpandDims", "Squeeze"):
            src = n.inputs[0]
            while src[0].type == "Reshape":
                src = src[0].inputs[0]
            if src[0].shapes[src[1]] == n.shapes[0]:
                return src
            if t != "Reshape" or src is not n.inputs[0]:
                return _replace(n, "Reshape", [src], {"shape": n.shapes[0]})
        if t == "SumLike":
            x = n.inputs[0]
            xs, target = x[0].shapes[x[1]], n.shapes[0]
            if xs == target:
                return x
            lead = len(xs) - len(target)
            axes = tuple(range(lead)) + tuple(
                lead + i for i, d in enumerate(target) if d == 1 and xs[lead + i] != 1)
            kept = tuple(d for i, d in enumerate(xs) if i not in axes)
            total = _replace(n, "ReduceSum", [x], {"axis": axes, "keepdims": False}, [kept])
            if kept == target:
                return total
            return _replace(n, "Reshape", [total], {"shape": target})
        if t == "BroadcastLike":
            x = n.inputs[0]
            if same(n, x):
                return x
            return _replace(n, "BroadcastTo", [x], {"shape": n.shapes[0]})
        return None

    return _rewrite(prog, visit)


def _replace(n, type_, inputs, attrs, shapes=None):
    node = Node(type_, inputs, attrs, n.origin, shapes or n.shapes, n.dtypes[:1],
                order=n.order)
    return (node, 0)


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))


def cse(prog):
    """Common subexpression elimination: pure nodes with equal type, inputs, attrs
    (and constants with equal values) become one.
    """
    seen = {}
    device = prog.device

    def visit(n):
        if n.type != "Const" and not _is_pure(n):
            return None
        key = (n.type, tuple((id(v[0]), v[1]) for v in n.inputs), _freeze(n.attrs),
               tuple(_dtype_text(d, str) for d in n.dtypes), tuple(n.shapes),
               device(n))
        first = seen.get(key)
        if first is None:
            seen[key] = n
            return None
        return [(first, i) for i in range(len(n.shapes))]

    return _rewrite(prog, visit)
