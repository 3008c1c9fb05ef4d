"""TF1's ``tf.nn.top_k`` and ``tf.boolean_mask``.

``top_k`` is the ``TopK`` primitive (a stable sort along the last axis in its NumPy
reference kernel, a host fallback on a GPU); its gradient scatters ``g`` back to the
input's positions with ``GatherGrad``, so it differentiates to any order.
``boolean_mask`` gathers the rows of the masked dimensions (collapsed into one) at the
true positions the ``MaskPositions`` primitive finds: its first (masked) dimension is
known only at run time, unless the mask is a constant; its gradient is the gather's.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     values, indices = fg.nn.top_k([[1.0, 3.0, 2.0], [5.0, 5.0, 4.0]], k=2)
...     kept = fg.boolean_mask([[1, 2], [3, 4], [5, 6]], [True, False, True])
...     v, i, m = fg.Session().run([values, indices, kept])
...     v.tolist(), i.tolist(), m.tolist()
([[3.0, 2.0], [5.0, 5.0]], [[1, 2], [0, 1]], [[1, 2], [5, 6]])
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from . import array_ops as A
from . import dtypes
from . import shapes as S
from .errors import DTypeError, ShapeError
from .graph import Tensor, location_suffix, name_scope
from .ops import mask_positions, static_value


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 - TF1's argument names
    """TF1's ``tf.nn.top_k``: ``(values, indices)``, the ``k`` largest entries along
    the last axis and their positions (int32), largest first; equal values come in
    increasing position (TF1's documented tie rule). ``k`` is a Python int in
    ``[0, last dimension]`` (TF1 also takes a scalar tensor ``k``: not supported here).
    ``sorted=False`` leaves the order unspecified in TF1; flowgraph returns it sorted.
    The gradient flows to ``values`` only (``g`` back at ``indices``, zeros elsewhere).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     values, indices = fg.nn.top_k([4, 1, 4, 7], k=3)
    ...     values.shape, fg.Session().run([values, indices])
    ((3,), [array([7, 4, 4], dtype=int32), array([3, 0, 2], dtype=int32)])
    """
    fn = "top_k"
    if isinstance(k, Tensor):
        raise TypeError(f"{fn}{location_suffix()}: expected a Python int k, found the tensor "
                        f"{k.name} (a tensor k is not supported)")
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"{fn}{location_suffix()}: expected a Python int k, found {k!r}")
    k = int(k)
    x = F.convert_to_tensor(input)
    if k < 0:
        raise ShapeError(f"{fn}{location_suffix()}: expected k >= 0, found k = {k}")
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"{fn}{location_suffix()}: expected a numeric input, found {x.name} of "
                         f"dtype bool")
    if x.shape is not None and not x.shape:
        raise ShapeError(f"{fn}{location_suffix()}: expected an input of rank 1 or more, found "
                         f"the scalar {x.name}")
    if x.shape is not None and x.shape[-1] is not None and k > x.shape[-1]:
        raise ShapeError(f"{fn}{location_suffix()}: expected k <= {x.shape[-1]} (the last "
                         f"dimension of {x.name}, of shape {S.fmt(x.shape)}), found "
                         f"k = {k}")
    op = F._op("TopK", [x], {"k": k, "sorted": bool(sorted)}, name=name or fn)
    return op.outputs[0], op.outputs[1]


def _dim(tensor, i, dims):
    """Dimension ``i`` of ``tensor``: an int where known, else a scalar tensor."""
    d = tensor.shape[i]
    return int(d) if d is not None else dims[i]


def boolean_mask(tensor, mask, name="boolean_mask", axis=None):
    """TF1's ``tf.boolean_mask``: the entries of ``tensor`` where ``mask`` is true. The
    ``k``-d bool ``mask`` covers ``tensor``'s dimensions ``axis`` to ``axis + k - 1``
    (``axis`` 0 by default), which become one dimension holding the true positions
    in row-major order: the result has rank ``rank(tensor) - k + 1``, and that
    dimension is known only at run time (when building, for a constant mask).
    A mask whose shape is not those dimensions raises ``ShapeError`` when building
    where the shapes are known, else ``InvalidArgumentError`` at run time. Its gradient
    is the gather's: ``g`` back at the kept positions, zeros elsewhere.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     m = fg.placeholder(fg.bool_, [2])
    ...     y = fg.boolean_mask([[1.0, 2.0], [3.0, 4.0]], m, axis=1)
    ...     y.shape, fg.Session().run(y, {m: [False, True]}).tolist()
    ((2, None), [[2.0], [4.0]])
    """
    fn = "boolean_mask"
    tensor = F.convert_to_tensor(tensor)
    mask = F.convert_to_tensor(mask)
    if mask.dtype != dtypes.bool_:
        raise DTypeError(f"{fn}{location_suffix()}: expected a bool mask, found {mask.name} of "
                         f"dtype {mask.dtype.name}")
    if mask.shape is None:
        raise ShapeError(f"{fn}{location_suffix()}: expected a mask of known rank (TF1 requires "
                         f"it too)")
    if tensor.shape is None:
        raise ShapeError(f"{fn}{location_suffix()}: expected a tensor of known rank")
    k, rank = len(mask.shape), len(tensor.shape)
    if k == 0:
        raise ShapeError(f"{fn}{location_suffix()}: expected a mask of rank 1 or more, found a "
                         f"scalar mask")
    axis = 0 if axis is None else axis
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{fn}{location_suffix()}: expected a Python int axis, found {axis!r} (a "
                        f"tensor axis is not supported)")
    if not -rank <= axis < rank or axis % rank + k > rank:
        raise ShapeError(f"{fn}{location_suffix()}: expected axis + rank(mask) <= rank(tensor), "
                         f"found axis {axis}, a mask of rank {k} and {tensor.name} of "
                         f"shape {S.fmt(tensor.shape)}")
    axis = int(axis) % rank
    covered = tuple(tensor.shape[axis:axis + k])
    if any(a is not None and b is not None and a != b for a, b in zip(covered, mask.shape)):
        raise ShapeError(f"{fn}{location_suffix()}: expected a mask of shape {S.fmt(covered)} "
                         f"({tensor.name}'s dimensions {axis} to {axis + k - 1}, of "
                         f"shape {S.fmt(tensor.shape)}), found {S.fmt(mask.shape)}")
    with name_scope(name or fn):
        dims = A.shape(tensor)
        known = static_value(mask)
        if known is not None and None not in covered:   # (its shape checked above)
            positions = F.constant(mask_positions(np.asarray(known), covered, axis))
        else:
            positions = F._out("MaskPositions", [mask, dims[axis:axis + k]], {"axis": axis},
                               name="positions")
        if k == 1:                    # one masked dimension: nothing to collapse
            flat = tensor
        else:
            masked = (A.reduce_prod(dims[axis:axis + k]) if None in covered
                      else int(np.prod(covered, dtype=np.int64)))
            flat = F.reshape(tensor, [_dim(tensor, i, dims) for i in range(axis)] + [masked]
                             + [_dim(tensor, i, dims) for i in range(axis + k, rank)])
    return F.gather(flat, positions, axis=axis, name=name or fn)
