"""TF1's segment sums: ``unsorted_segment_sum`` and ``segment_sum``.

Both are the scatter-add of an embedding's gradient (the ``GatherGrad`` primitive:
its Numba CPU kernel in :mod:`kernels.cpu.scatter`, its CUDA kernel in
:mod:`kernels.cuda`), so their gradient is TF1's ``gather(grad, segment_ids)``
(``math_grad._UnsortedSegmentSumGrad``), itself differentiable to any order.

Out-of-range ids raise ``InvalidArgumentError`` naming the op and the line that made
it; TF1's CPU kernel silently drops negative ids instead, flowgraph refuses them.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     data = fg.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
...     u = fg.unsorted_segment_sum(data, [2, 0, 2], num_segments=4)
...     s = fg.segment_sum(data, [0, 0, 3])
...     out = fg.Session().run([u, s])
...     out[0].tolist(), out[1].tolist()
([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0], [0.0, 0.0]], [[4.0, 6.0], [0.0, 0.0], [0.0, 0.0], [5.0, 6.0]])
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from . import array_ops as A
from . import dtypes
from .errors import DTypeError, InvalidArgumentError, ShapeError
from .graph import location_suffix, name_scope
from .ops import static_value


def _inputs(fn, data, segment_ids):
    """``data`` and ``segment_ids`` as tensors, with their dtypes and ranks checked."""
    data = F.convert_to_tensor(data)
    ids = F.convert_to_tensor(segment_ids)
    if not dtypes.is_integer(ids.dtype):
        raise DTypeError(f"{fn}{location_suffix()}: expected int32 or int64 segment_ids, found "
                         f"{ids.name} of dtype {ids.dtype.name}")
    if data.dtype == dtypes.bool_:
        raise DTypeError(f"{fn}{location_suffix()}: expected numeric data, found {data.name} of "
                         f"dtype bool")
    if data.shape is None or ids.shape is None:
        return data, ids                # the scatter checks the shapes at run time
    k = len(ids.shape)
    lead = tuple(data.shape[:k])
    if len(data.shape) < k or any(a is not None and b is not None and a != b
                                  for a, b in zip(lead, ids.shape)):
        raise ShapeError(f"{fn}{location_suffix()}: expected data's shape to start with "
                         f"segment_ids' shape {tuple(ids.shape)}, found {tuple(data.shape)}")
    return data, ids


def _table(data, k, rows, dtype):
    """A tensor of zeros shaped ``[rows] + data.shape[k:]``: the scatter's output shape
    (static where ``rows`` and the row's dimensions are; else filled at run time)."""
    zero = np.zeros((), dtype)
    if data.shape is None:              # unknown rank: the row's dims at run time
        first = F.cast(F.reshape(F.convert_to_tensor(rows), [1]), dtypes.int32)
        return A.fill(F.concat([first, A.shape(data)[k:]], 0), zero)
    row = list(data.shape[k:])
    if isinstance(rows, numbers.Integral) and None not in row:
        return A.fill([int(rows)] + row, zero)
    dims = A.shape(data)
    return A.fill([rows] + [d if d is not None else dims[k + i] for i, d in enumerate(row)],
                  zero)


def unsorted_segment_sum(data, segment_ids, num_segments, name=None):
    """TF1's ``tf.unsorted_segment_sum``: ``out[i] = sum of data[j...]`` over the ``j``
    with ``segment_ids[j] == i``; ``out`` has ``num_segments`` rows (zeros where no id
    points) and ``data.shape[k:]`` after them, ``k`` the rank of ``segment_ids`` (whose
    shape starts ``data``'s). Ids in any order, repeated or not; an id outside
    ``[0, num_segments)`` raises ``InvalidArgumentError`` at run time (TF1's CPU kernel
    drops negative ones). ``num_segments``: an int or an integer scalar tensor.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.unsorted_segment_sum([1.0, 2.0, 3.0, 4.0], [1, 0, 1, 1], 3)
    ...     fg.Session().run(y).tolist()
    [2.0, 8.0, 0.0]
    """
    return _unsorted_segment_sum("unsorted_segment_sum", data, segment_ids, num_segments,
                                 name)


def _unsorted_segment_sum(fn, data, segment_ids, num_segments, name):
    """:func:`unsorted_segment_sum`, its build errors naming ``fn``."""
    data, ids = _inputs(fn, data, segment_ids)
    if ids.shape is None:
        raise ShapeError(f"{fn}{location_suffix()}: expected segment_ids of known rank")
    n = num_segments
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        n = F.convert_to_tensor(n)
        if not dtypes.is_integer(n.dtype) or (n.shape is not None and n.shape != ()):
            raise DTypeError(f"{fn}{location_suffix()}: expected an integer scalar num_segments, "
                             f"found {n.dtype.name} of shape {n.shape}")
        known = static_value(n)
        n = int(known) if known is not None else n
    if isinstance(n, numbers.Integral) and n < 0:
        raise ShapeError(f"{fn}{location_suffix()}: expected num_segments >= 0, found {n}")
    with name_scope(name or fn):
        like = _table(data, len(ids.shape), n, data.dtype)
    return F.gather_grad(data, ids, like, name=name or fn)


def segment_sum(data, segment_ids, name=None):
    """TF1's ``tf.segment_sum``: ``out[i] = sum of data[j]`` over the ``j`` with
    ``segment_ids[j] == i``, for 1-d ``segment_ids`` sorted in increasing order (as
    TF1 requires); ``out`` has ``max(segment_ids) + 1`` rows, zeros where no id
    points. That count is known when building only for constant ids; otherwise the
    output's first dimension is ``None`` and set at run time, where unsorted or
    negative ids raise ``InvalidArgumentError`` (as TF1's CPU kernel does).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.segment_sum([[1.0], [2.0], [3.0]], [0, 0, 2])
    ...     y.shape, fg.Session().run(y).tolist()
    ((3, 1), [[3.0], [0.0], [3.0]])
    """
    fn = "segment_sum"
    data, ids = _inputs(fn, data, segment_ids)
    if ids.shape is not None and len(ids.shape) != 1:
        raise ShapeError(f"{fn}{location_suffix()}: expected 1-d segment_ids, found shape "
                         f"{tuple(ids.shape)} (unsorted_segment_sum takes ids of any rank)")
    with name_scope(name or fn):
        known = static_value(ids)
        if known is not None:
            from .ops import _segment_count_ref
            try:
                rows = int(_segment_count_ref(None, np.asarray(known)))
            except InvalidArgumentError as exc:      # constant ids, wrong when built
                raise InvalidArgumentError(f"{fn}{location_suffix()}: {exc}") from None
        else:
            rows = F._out("SegmentCount", [ids], name="segment_count")
        like = _table(data, 1, rows, data.dtype)
    return F.gather_grad(data, ids, like, name=name or fn)


# --- TF1's scatter ops on variables -----------------------------------------------------

def _scatter_args(fn, ref, indices, updates):
    from .variables import Variable
    if not isinstance(ref, Variable):
        raise TypeError(f"{fn}{location_suffix()}: expected an fg.Variable as ref, found "
                        f"{type(ref).__name__}")
    if ref.shape is None or not ref.shape or ref.shape[0] is None:
        raise ShapeError(f"{fn}{location_suffix()}: expected a variable of rank 1 or more with a "
                         f"known first dimension, found shape {ref.shape}")
    updates = F.convert_to_tensor(updates, dtype=ref.dtype)
    ids = F.convert_to_tensor(indices)
    return ref, ids, updates


def scatter_add(ref, indices, updates, use_locking=False, name=None):
    """TF1's ``tf.scatter_add``: adds the rows of ``updates`` (shaped ``indices.shape +
    ref.shape[1:]``) to ``ref``'s rows at ``indices`` (a repeated index adds each);
    returns the new value. It is ``assign_add(ref, unsorted_segment_sum(updates,
    indices, rows))``: it reads the latest value, so two in one run compose as
    ``assign_add``s do; the add is over the whole table (dense), not its rows only.
    An index outside ``[0, rows)`` raises ``InvalidArgumentError``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     v = fg.Variable([1.0, 1.0, 1.0, 1.0])
    ...     with fg.Session() as sess:
    ...         sess.run(fg.global_variables_initializer())
    ...         sess.run(fg.scatter_add(v, [3, 0, 3], [1.0, 2.0, 3.0])).tolist()
    [3.0, 1.0, 1.0, 5.0]
    """
    fn = "scatter_add"
    ref, ids, updates = _scatter_args(fn, ref, indices, updates)
    with name_scope(name or fn):
        rows = _unsorted_segment_sum(fn, updates, ids, ref.shape[0], None)
    return ref.assign_add(rows, name=name or f"{ref.op.name}/{fn}").outputs[0]


def scatter_update(ref, indices, updates, use_locking=True, name=None):
    """TF1's ``tf.scatter_update``: sets ``ref``'s rows at ``indices`` to the rows of
    ``updates`` (shaped ``indices.shape + ref.shape[1:]``), the other rows unchanged;
    returns the new value. An ``assign`` of ``where(row updated, update, ref)``: an
    overwrite computed from the value at the start of the run, as ``assign`` is (two
    independent ones of a variable in one run are refused; see
    :mod:`flowgraph.write_conflicts`). TF1 leaves undefined which update of a repeated
    index wins; flowgraph raises ``InvalidArgumentError`` for repeated indices, as it
    does for an index outside ``[0, rows)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     v = fg.Variable([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    ...     with fg.Session() as sess:
    ...         sess.run(fg.global_variables_initializer())
    ...         sess.run(fg.scatter_update(v, [2, 0], [[7.0, 8.0], [9.0, 9.0]])).tolist()
    [[9.0, 9.0], [2.0, 2.0], [7.0, 8.0]]
    """
    fn = "scatter_update"
    ref, ids, updates = _scatter_args(fn, ref, indices, updates)
    n = ref.shape[0]
    with name_scope(name or fn):
        if not dtypes.is_integer(ids.dtype):
            raise DTypeError(f"{fn}{location_suffix()}: expected int32 or int64 indices, found "
                             f"{ids.dtype.name}")
        distinct = F._out("UniqueIds", [ids], name="unique_ids")
        rows = _unsorted_segment_sum(fn, updates, distinct, n, None)
        hits = _unsorted_segment_sum(fn, F.ones_like(distinct, dtype=ref.dtype), distinct,
                                     n, None)
        mask = F.reshape(F.greater(hits, 0), [n] + [1] * (len(ref.shape) - 1))
        new = F.where(mask, rows, ref.value())
    return ref.assign(new, name=name or f"{ref.op.name}/{fn}").outputs[0]
