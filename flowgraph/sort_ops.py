"""TF1's ``tf.sort`` and ``tf.argsort`` (TF 1.13+), as in TF1: ``fg.nn.top_k`` over the
whole axis (moved last by a ``transpose`` when it is not), on the negated values for
``ASCENDING``. Equal values keep their order (top_k's tie rule: increasing position),
so the sort is stable either way. The gradient of ``sort`` is top_k's (scattered back
to where each value came from), to any order. As in TF1, an ascending sort of integers
negates them, so the most negative integer of the dtype does not sort correctly.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([[3.0, 1.0, 2.0], [0.5, 0.5, -1.0]])
...     fg.Session().run([fg.sort(x), fg.argsort(x, direction="DESCENDING")])
[array([[ 1. ,  2. ,  3. ],
       [-1. ,  0.5,  0.5]], dtype=float32), array([[0, 2, 1],
       [0, 1, 2]], dtype=int32)]
"""
from __future__ import annotations

import numbers

from . import api as F
from .errors import ShapeError
from .graph import location_suffix
from .selection_ops import top_k

_DIRECTIONS = ("ASCENDING", "DESCENDING")


def _sorted(fn, values, axis, direction):
    """top_k's ``(values, indices)`` along ``axis``, in ``direction``."""
    where = f"{fn}{location_suffix('called')}"
    if direction not in _DIRECTIONS:
        raise ValueError(f"{where}: expected direction 'ASCENDING' or 'DESCENDING', found "
                         f"{direction!r}")
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{where}: expected a Python int axis, found {axis!r}")
    x = F.convert_to_tensor(values)
    if x.shape is None or not x.shape:
        raise ShapeError(f"{where}: expected an input of known rank 1 or more, found "
                         f"{x.name} of shape {x.shape}")
    rank = len(x.shape)
    if not -rank <= axis < rank:
        raise ShapeError(f"{where}: axis {axis} out of range for {x.name} of rank {rank}")
    axis %= rank
    n = x.shape[axis]
    if n is None:
        raise ShapeError(f"{where}: expected the size of axis {axis} of {x.name} known when "
                         f"the graph is built, found shape {x.shape}")
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]        # a swap: its own inverse
    if axis != rank - 1:
        x = F.transpose(x, perm)
    ascending = direction == "ASCENDING"
    out, idx = top_k(-x if ascending else x, k=n)
    if ascending:
        out = -out
    if axis != rank - 1:
        out, idx = F.transpose(out, perm), F.transpose(idx, perm)
    return out, idx


def sort(values, axis=-1, direction="ASCENDING", name=None):
    """TF1's ``tf.sort``: ``values`` sorted along ``axis`` (a Python int whose size is
    known when the graph is built), ``"ASCENDING"`` or ``"DESCENDING"``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.sort(fg.constant([[2, 9], [7, 1]]), axis=0))
    array([[2, 1],
           [7, 9]], dtype=int32)
    """
    out, _ = _sorted("sort", values, axis, direction)
    return F.identity(out, name=name) if name else out


def argsort(values, axis=-1, direction="ASCENDING", stable=False, name=None):
    """TF1's ``tf.argsort``: the int32 positions that sort ``values`` along ``axis``;
    equal values keep their order (always stable, as TF1's, whatever ``stable`` says).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.argsort(fg.constant([3.0, 1.0, 3.0, 0.0])))
    array([3, 1, 0, 2], dtype=int32)
    """
    _, idx = _sorted("argsort", values, axis, direction)
    return F.identity(idx, name=name) if name else idx


__all__ = ["sort", "argsort"]
