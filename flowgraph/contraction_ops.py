"""TF1's ``tf.tensordot``, as a composition: ``transpose`` (free axes first in ``a``,
last in ``b``), ``reshape`` to matrices, one ``matmul``, ``reshape`` to the free
dimensions. Gradients to any order, fusion and placement come from those ops.

The ranks and the contracted dimensions must be known when the graph is built (TF1
also accepts them dynamic; here that raises); the free dimensions may be ``None``, their
run-time sizes then come from ``fg.shape``.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     a = fg.constant(np.arange(6.0).reshape(1, 2, 3))
...     b = fg.constant(np.arange(12.0).reshape(3, 4))
...     c = fg.tensordot(a, b, 1)                      # [1, 2, 3] . [3, 4] -> [1, 2, 4]
...     d = fg.tensordot(a, fg.constant(np.ones((2, 3))), [[1, 2], [0, 1]])
...     c.shape, fg.Session().run(d)
((1, 2, 4), array([15.]))
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from .array_ops import shape as _shape
from .errors import DTypeError, ShapeError
from .graph import Tensor, location_suffix


def _fail(cls, message):
    return cls("tensordot" + location_suffix("called") + f": {message}")


def _axes(axes, ra, rb):
    """TF1's ``axes`` (an int N, or a pair of axis lists or ints) as two lists of
    non-negative axes."""
    if isinstance(axes, Tensor):
        raise _fail(ValueError, f"expected axes as Python ints, found the tensor "
                    f"{axes.name}")
    if isinstance(axes, numbers.Integral):
        n = int(axes)
        if n < 0 or n > min(ra, rb):
            raise _fail(ValueError, f"expected an int axes in [0, {min(ra, rb)}] (the "
                        f"smaller rank), found {n}")
        return list(range(ra - n, ra)), list(range(n))
    try:
        pa, pb = axes
        pa = [int(pa)] if isinstance(pa, numbers.Integral) else [int(i) for i in pa]
        pb = [int(pb)] if isinstance(pb, numbers.Integral) else [int(i) for i in pb]
    except (TypeError, ValueError):
        raise _fail(ValueError, f"expected axes as an int or a pair of axis lists, found "
                    f"{axes!r}") from None
    if len(pa) != len(pb):
        raise _fail(ValueError, f"expected as many axes of a as of b, found {pa} and {pb}")
    out = []
    for p, r, which in ((pa, ra, "a"), (pb, rb, "b")):
        if any(not -r <= i < r for i in p):
            raise _fail(ValueError, f"axes {p} out of range for {which} of rank {r}")
        q = [i % r for i in p]
        if len(set(q)) != len(q):
            raise _fail(ValueError, f"repeated axes {p} of {which}")
        out.append(q)
    return out


def tensordot(a, b, axes, name=None):
    """TF1's ``tf.tensordot``: the sum over ``a``'s axes ``axes[0]`` and ``b``'s
    ``axes[1]`` of their product; an int ``N`` is ``a``'s last ``N`` axes with ``b``'s
    first ``N``. The result has ``a``'s free axes, then ``b``'s, as ``np.tensordot``.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.placeholder(fg.float32, (None, 5, 3))
    >>> fg.tensordot(x, fg.constant(np.ones((3, 2), np.float32)), [[2], [0]]).shape
    (None, 5, 2)
    """
    a, b = F.convert_to_tensor(a), F.convert_to_tensor(b)
    if a.dtype != b.dtype:
        raise _fail(DTypeError, f"expected a and b of one dtype, found {a.name} of "
                    f"{a.dtype.name} and {b.name} of {b.dtype.name}")
    if a.shape is None or b.shape is None:
        raise _fail(ShapeError, f"expected the ranks of a and b known when the graph is "
                    f"built, found shapes {a.shape} and {b.shape}")
    ra, rb = len(a.shape), len(b.shape)
    ca, cb = _axes(axes, ra, rb)
    dims = []
    for i, j in zip(ca, cb):
        da, db = a.shape[i], b.shape[j]
        if da is None or db is None:
            raise _fail(ShapeError, f"expected the contracted dimensions known when the "
                        f"graph is built, found a's axis {i} of size {da} ({a.shape}) and "
                        f"b's axis {j} of size {db} ({b.shape})")
        if da != db:
            raise _fail(ShapeError, f"a's axis {i} (size {da}) and b's axis {j} (size "
                        f"{db}) are contracted but differ; shapes {a.shape} and {b.shape}")
        dims.append(da)
    k = int(np.prod(dims, dtype=np.int64))
    fa = [i for i in range(ra) if i not in ca]
    fb = [j for j in range(rb) if j not in cb]
    a2 = _as_matrix(a, fa + ca, [a.shape[i] for i in fa], k, rows_free=True)
    b2 = _as_matrix(b, cb + fb, [b.shape[j] for j in fb], k, rows_free=False)
    out = F.matmul(a2, b2)
    free = [(a, i) for i in fa] + [(b, j) for j in fb]
    if all(t.shape[i] is not None for t, i in free):
        shape = [t.shape[i] for t, i in free]
    else:              # free sizes unknown until run time: read them with fg.shape
        shape = [t.shape[i] if t.shape[i] is not None else _shape(t)[i]
                 for t, i in free]
    return F.reshape(out, shape, name=name)


def _as_matrix(x, perm, free_dims, k, rows_free):
    """``x`` transposed to ``perm`` and reshaped to ``[free, k]`` (``rows_free``) or
    ``[k, free]``; an unknown free size becomes ``-1`` (``k`` is known)."""
    if perm != list(range(len(perm))):
        x = F.transpose(x, perm)
    m = -1 if None in free_dims else int(np.prod(free_dims, dtype=np.int64))
    if m == -1 and k == 0:
        raise _fail(ShapeError, f"cannot contract zero-sized axes of {x.name} with free "
                    f"dimensions unknown when the graph is built ({x.shape})")
    return F.reshape(x, [m, k] if rows_free else [k, m])


__all__ = ["tensordot"]
