"""TF1's ``tf.nn.in_top_k``: is each row's target among its ``k`` largest predictions?

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     scores = fg.constant([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
...     hits = fg.nn.in_top_k(scores, fg.constant([2, 0]), k=2)
...     fg.Session().run(hits).tolist()
[True, True]
"""
from __future__ import annotations

from .. import api as F
from .. import dtypes
from ..array_ops import logical_and, range as range_
from ..errors import DTypeError, ShapeError


def in_top_k(predictions, targets, k, name=None):
    """``[batch]`` bools: whether ``predictions[i, targets[i]]`` is among the ``k``
    largest of row ``i`` of ``predictions [batch, classes]``, as TF1 decides it: fewer
    than ``k`` classes score strictly higher (so ties at the boundary are all in), and
    a target out of range or with a non-finite score is not in."""
    p = F.convert_to_tensor(predictions)
    t = F.convert_to_tensor(targets)
    if p.dtype.kind != "f":
        raise DTypeError(f"in_top_k: expected float predictions, found {p.name} of dtype "
                         f"{p.dtype.name}")
    if not dtypes.is_integer(t.dtype):
        raise DTypeError(f"in_top_k: expected integer targets, found {t.name} of dtype "
                         f"{t.dtype.name}")
    if p.shape is None or len(p.shape) != 2 or p.shape[1] is None:
        raise ShapeError(f"in_top_k: expected predictions [batch, classes] with known "
                         f"classes, found {p.name} of shape {p.shape}")
    classes = p.shape[1]
    columns = F.expand_dims(range_(classes, dtype=t.dtype), 0)            # [1, classes]
    is_target = F.equal(columns, F.expand_dims(t, 1))                      # [batch, classes]
    target_score = F.reduce_sum(F.where(is_target, p, F.zeros_like(p)), 1, keepdims=True)
    higher = F.reduce_sum(F.cast(F.greater(p, target_score), dtypes.int32), 1)
    valid = logical_and(F.reduce_sum(F.cast(is_target, dtypes.int32), 1) > 0,
                        F.equal(target_score - target_score, F.zeros_like(target_score))[:, 0])
    return logical_and(valid, F.less(higher, int(k)), name=name)


__all__ = ["in_top_k"]
