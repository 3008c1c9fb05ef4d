"""A pass that drops the matmul work an all-zero constant makes pointless: the first
step of an unrolled RNN whose initial state is zeros (TF1's ``zero_state``, the
benchmarks' ``h0``).

Known zeros are ``Const`` nodes whose every element is 0 (after constant folding, so
``zeros_like`` of a known shape counts too). Rewrites, each exact for finite operands:

- ``zeros @ w`` or ``a @ zeros`` becomes a zero constant of the product's shape: the
  GRU's first ``h0 @ U``;
- ``concat([.., zeros, ..], axis=1) @ w`` becomes the product of the remaining
  (contiguous) parts with the matching rows of ``w``: the LSTM/RNN's first
  ``[h0, x0] @ K`` is ``x0 @ K[H:]``, a third of the work at the benchmarks' large size.

Not IEEE-exact where the other operand holds an inf or NaN (``0 * inf`` is NaN, the
rewritten product drops it), as TF's grappler folds such products too; any non-finite
weight still reaches the result through the steps after the first.

Products with a transposed left operand are left as they are: they are the per-step
terms of a weight gradient (``h0.T @ dgh0``, ``concat([h0, x0]).T @ dz0``), blocks of
the stacked GEMM of :func:`~.matmuls.stack_matmul_sums`. Dropping the first step's term
would save a T-th of that GEMM but give it stacked rows that are no longer the ones the
bias gradient sums (:func:`~.matmuls.stack_reduce_sums` reads all T steps), so the two
would need two concatenations instead of one shared one (measured: a GRU medium step's
pooled buffers grew from 1.06 to 1.29 times its largest live set).
"""
from __future__ import annotations

import numpy as np

from .. import shapes as S
from .ir import Node, _const, _const_value, _rewrite
from .simplify import prune


def _is_zero(v):
    value = _const_value(v)
    return (value is not None and value.size > 0 and value.dtype.kind in "fiub"
            and not np.any(value))


def _zeros(n):
    """A read-only zero constant of ``n``'s output (one element, broadcast)."""
    value = np.broadcast_to(np.zeros((), n.dtypes[0]), n.shapes[0])
    return (_const(value, n), 0)


def drop_zero_products(prog):
    """Matmuls by known zeros, and the zero blocks of a concatenated left operand,
    removed (see the module docstring)."""
    def visit(n):
        if (n.type != "MatMul" or n.controls or len(n.shapes[0]) != 2
                or n.dtypes[0].kind != "f"):
            return None
        if n.attrs["transpose_a"]:
            return None     # (a weight gradient's term: see the module docstring)
        a, b = n.inputs
        if _is_zero(a) or _is_zero(b):
            return _zeros(n)
        if a[0].type != "Concat" or a[0].controls:
            return None
        return _drop_zero_blocks(prog, n)

    return prune(_rewrite(prog, visit))


def _drop_zero_blocks(prog, n):
    """``concat(parts, 1) @ b`` over the contiguous run of parts that are not zeros, by
    the rows of ``b`` they meet; ``None`` where no part is zero or the others are not
    one contiguous run."""
    cat = n.inputs[0][0]
    if S.normalize_axis(cat.attrs["axis"], 2) != 1 or prog.device(cat) != prog.device(n):
        return None
    parts = cat.inputs
    zero = [_is_zero(p) for p in parts]
    kept = [k for k, z in enumerate(zero) if not z]
    if not any(zero) or not kept or kept != list(range(kept[0], kept[-1] + 1)):
        return None      # (all zeros was handled by the caller)
    widths = [p[0].shapes[p[1]][1] for p in parts]
    start = sum(widths[:kept[0]])
    stop = start + sum(widths[k] for k in kept)
    if len(kept) == 1:
        left = parts[kept[0]]
    else:
        rows = cat.shapes[0][0]
        left = (Node("Concat", [parts[k] for k in kept], dict(cat.attrs), cat.origin,
                     [(rows, stop - start)], cat.dtypes, order=cat.order), 0)
    b = n.inputs[1]
    b_shape = b[0].shapes[b[1]]
    if n.attrs["transpose_b"]:     # b is N x K: the columns meet the concatenation
        spec = (("slice", None, None, None), ("slice", start, stop, None))
        sliced = (b_shape[0], stop - start)
    else:
        spec, sliced = (("slice", start, stop, None),), (stop - start, b_shape[1])
    rows_of_b = Node("StridedSlice", [b], {"spec": spec}, n.origin, [sliced],
                     [b[0].dtypes[b[1]]], order=n.order)
    return (Node("MatMul", [left, (rows_of_b, 0)], dict(n.attrs), n.origin, n.shapes,
                 n.dtypes, order=n.order), 0)
