"""TF1's ``tf.norm`` (``tf.linalg.norm``), as a composition of ``abs``, ``square``,
``reduce_sum``, ``reduce_max``, ``sqrt`` and ``pow`` with TF1's formulas, so gradients
(to any order) come from those ops. As in TF1, the euclidean norm's gradient at an all-
zero vector is NaN (``sqrt``'s at 0), and ``ord=inf``'s goes to every tied maximum.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([[3.0, -4.0], [1.0, 2.0]], fg.float64)
...     norms = [fg.norm(x), fg.norm(x, axis=1), fg.norm(x, ord=1, axis=[0, 1]),
...              fg.norm(x, ord=np.inf, axis=-1)]
...     [np.round(v, 4).tolist() for v in fg.Session().run(norms)]
[5.4772, [5.0, 2.2361], 6.0, [4.0, 2.0]]
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from .api import tf1_reduction_args
from .errors import DTypeError, ShapeError
from .graph import location_suffix


def _fail(cls, message):
    return cls("norm" + location_suffix("called") + f": {message}")


def _axes(axis, rank):
    """``None``, one axis or a pair of axes (``is_matrix``), non-negative."""
    if axis is None:
        return None, False
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        axes = [int(axis)]
    else:
        try:
            axes = [int(a) for a in axis]
        except (TypeError, ValueError):
            raise _fail(ValueError, f"expected axis None, an int or a pair of ints, found "
                        f"{axis!r}") from None
        if len(axes) != 2:
            raise _fail(ValueError, f"expected axis None, an int or a pair of ints, found "
                        f"{axis!r}")
    if rank is None:
        raise _fail(ShapeError, "expected the input's rank known when the graph is built")
    if any(not -rank <= a < rank for a in axes):
        raise _fail(ValueError, f"axis {axis!r} out of range for rank {rank}")
    axes = [a % rank for a in axes]
    if len(axes) == 2 and axes[0] == axes[1]:
        raise _fail(ValueError, f"expected two different axes, found {axis!r}")
    return axes, len(axes) == 2


def _is_inf(ord):
    return isinstance(ord, numbers.Real) and not isinstance(ord, bool) and ord == np.inf


def norm(tensor, ord="euclidean", axis=None, keepdims=None, name=None, keep_dims=None):
    """TF1's ``tf.norm``: with ``axis=None`` the norm of all of ``tensor`` as one
    vector; with an int ``axis``, vector norms along it; with a pair, matrix norms over
    those two axes. ``ord``: ``"euclidean"`` (the default: the 2-norm of vectors, the
    Frobenius norm of matrices), ``"fro"`` (matrices only), ``1``, ``2`` (vectors only:
    a matrix 2-norm needs an SVD flowgraph lacks), ``np.inf``, or any real ``p > 0``
    (vectors: ``sum(|x|**p) ** (1/p)``). Matrix ``1`` is the largest column sum of
    ``|x|``, ``np.inf`` the largest row sum. Float inputs; ``keepdims`` (TF1's
    ``keep_dims``) keeps the reduced axes with size 1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 3))
    ...     fg.norm(x, axis=1, keepdims=True).shape, fg.norm(x, ord=3).shape
    ((None, 1), ())
    """
    _, keepdims = tf1_reduction_args("norm", None, keepdims, None, keep_dims)
    keepdims = bool(keepdims)
    x = F.convert_to_tensor(tensor)
    if x.dtype.kind != "f":
        raise _fail(DTypeError, f"expected a float tensor, found {x.name} of dtype "
                    f"{x.dtype.name}")
    axes, is_matrix = _axes(axis, None if x.shape is None else len(x.shape))
    if is_matrix:
        if not (ord in ("euclidean", "fro") or ord == 1 or _is_inf(ord)) or \
                isinstance(ord, bool):
            raise _fail(ValueError, f"expected a matrix norm ord of 'euclidean', 'fro', 1 or "
                        f"np.inf (2 would need an SVD), found {ord!r}")
    elif isinstance(ord, str):
        if ord != "euclidean":
            raise _fail(ValueError, f"expected a vector norm ord of 'euclidean', 1, 2, "
                        f"np.inf or a real > 0 ('fro' is for matrices: pass a pair of axes),"
                        f" found {ord!r}")
    elif not isinstance(ord, numbers.Real) or isinstance(ord, bool) or not ord > 0:
        raise _fail(ValueError, f"expected a vector norm ord of 'euclidean', 1, 2, np.inf or "
                    f"a real > 0, found {ord!r}")
    if axes is None:          # the whole tensor as one vector, kept dims as TF1's
        axes = None if x.shape is None else list(range(len(x.shape)))
    if ord in ("euclidean", "fro") or (not is_matrix and ord == 2):
        out = F.sqrt(F.reduce_sum(F.square(x), axes, keepdims=True))
    elif ord == 1:
        out = F.reduce_sum(F.abs(x), axes[:1] if is_matrix else axes, keepdims=True)
        if is_matrix:
            out = F.reduce_max(out, axes[1], keepdims=True)
    elif _is_inf(ord):
        out = F.abs(x)
        if is_matrix:
            out = F.reduce_sum(out, axes[1], keepdims=True)
        out = F.reduce_max(out, axes[:1] if is_matrix else axes, keepdims=True)
    else:
        p = float(ord)
        out = F.reduce_sum(F.abs(x) ** p, axes, keepdims=True) ** (1.0 / p)
    if not keepdims:
        out = F.reduce_sum(out, axes)      # drops the kept size-1 axes (a sum of one)
    return F.identity(out, name=name) if name else out


__all__ = ["norm"]
