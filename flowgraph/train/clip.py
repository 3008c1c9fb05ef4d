"""Gradient clipping by the global norm (Pascanu et al., 2013).

An embedding's gradient (a ``GatherGrad``: rows added into a table of zeros) with
fewer rows gathered than the table has is kept sparse, as TF1 keeps its
``IndexedSlices``: its squared norm comes from the rows used
(``GatherGradSq``, duplicates summed first) and its clipped value is the ``GatherGrad``
of the scaled rows, which an optimizer can apply to those rows only
(:class:`~flowgraph.train.GradientDescentOptimizer`).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     (a, b), norm = fg.clip_by_global_norm([fg.constant([3.0]), fg.constant([4.0])], 1.0)
...     fg.Session().run([a, b, norm])
[array([0.6], dtype=float32), array([0.8], dtype=float32), np.float32(5.0)]
"""
from __future__ import annotations

import numpy as np

from .. import api as F


def global_norm(tensors, name=None):
    """``sqrt(sum of squares of every element of every tensor)``; ``None`` entries skip."""
    present = [F.convert_to_tensor(t) for t in tensors if t is not None]
    if not present:
        raise ValueError("global_norm: expected at least one tensor, found none")
    squares = [F.gather_grad_sq(*t.op.inputs) if _rows_of(t) else F.reduce_sum(F.square(t))
               for t in present]
    dtype = squares[0].dtype
    squares = [s if s.dtype == dtype else F.cast(s, dtype) for s in squares]
    return F.sqrt(F.add_n(squares) if len(squares) > 1 else squares[0], name=name)


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """Scale ``t_list`` by ``clip_norm / max(global_norm, clip_norm)``.

    Returns ``(clipped, global_norm)``; tensors are unchanged when their global norm is
    at most ``clip_norm``. ``None`` entries stay ``None``. ``use_norm`` gives a global
    norm computed already.
    """
    t_list = list(t_list)
    norm = use_norm if use_norm is not None else global_norm(t_list)
    clip = F.convert_to_tensor(clip_norm, dtype=norm.dtype) if not hasattr(
        clip_norm, "dtype") else clip_norm
    scale = clip / F.maximum(norm, clip)
    clipped = []
    for t in t_list:
        if t is None:
            clipped.append(None)
            continue
        t = F.convert_to_tensor(t)
        s = scale if t.dtype == scale.dtype else F.cast(scale, t.dtype)
        if _rows_of(t):    # still a GatherGrad: scale its rows, not the whole table
            rows, indices, like = t.op.inputs
            clipped.append(F.gather_grad(F.multiply(rows, s), indices, like))
        else:
            clipped.append(F.multiply(t, s))
    return clipped, norm


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """``t * clip_norm / max(norm, clip_norm)`` with ``norm`` the L2 norm of ``t`` over
    ``axes`` (all by default): ``t`` unchanged where its norm is at most ``clip_norm``
    (TF1's ``tf.clip_by_norm``; a zero norm gets no NaN gradient).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.clip_by_norm(fg.constant([[3.0, 4.0], [0.3, 0.4]]), 1.0,
    ...                                      axes=[1]))
    array([[0.6, 0.8],
           [0.3, 0.4]], dtype=float32)
    """
    t = F.convert_to_tensor(t)
    sum_sq = F.reduce_sum(F.square(t), axes, keepdims=True)
    positive = F.greater(sum_sq, F.zeros_like(sum_sq))
    # sqrt only of positive sums: sqrt's derivative at 0 is infinite
    norm = F.where(positive, F.sqrt(F.where(positive, sum_sq, F.ones_like(sum_sq))), sum_sq)
    clip = F.cast(F.convert_to_tensor(clip_norm), t.dtype)
    return F.divide(t * clip, F.maximum(norm, clip), name=name)


def _rows_of(t):
    """Is ``t`` an embedding's gradient (a ``GatherGrad``) with fewer rows gathered
    than the table has (where its rows are cheaper to work on than the table)?"""
    if t.op.type != "GatherGrad":
        return False
    indices, like = t.op.inputs[1], t.op.inputs[2]
    if indices.shape is None or like.shape is None or None in indices.shape or \
            not like.shape or like.shape[0] is None:
        return False
    return int(np.prod(indices.shape)) < like.shape[0]


__all__ = ["clip_by_global_norm", "clip_by_norm", "global_norm"]
