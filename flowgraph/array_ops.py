"""TF1's array and reduction ops beyond the building blocks: arg reductions, shapes as
tensors, ranges and fills, tiling, reversal, sequence masks, powers, and the reductions
and logical ops over booleans.

Most are compositions of primitives (tinygrad's and JAX's habit: fewer primitives,
gradients for free): ``reduce_min`` is ``-reduce_max(-x)``, ``reverse`` a strided slice
with step -1, ``tile`` a broadcast and a reshape, ``reverse_sequence`` a gather. The
primitives added for them (``ArgMax``, ``ArgMin``, ``ReduceProd``, ``Pow``, ``Shape``,
``Range``, ``Fill``) are declared in :mod:`flowgraph.ops`.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
...     fg.Session().run([fg.argmax(x, axis=1), fg.reverse(x, [1])[0], fg.shape(x)])
[array([1, 0]), array([2., 5., 1.], dtype=float32), array([2, 3], dtype=int32)]
"""
from __future__ import annotations

import builtins
import numbers

import numpy as np

from . import api as F
from . import dtypes
from . import shapes as S
from .api import _axes_attr, _out, convert_to_tensor, tf1_reduction_args
from .errors import DTypeError, ShapeError
from .graph import Tensor, name_scope


def _is_symbolic(v):
    return isinstance(v, Tensor) or hasattr(v, "_as_tensor")


# --- arg reductions ------------------------------------------------------------------

def _arg(type_, x, axis, output_type, name):
    x = convert_to_tensor(x)
    # TF1: axis=None means axis 0 (not the flattened array, as in NumPy).
    axis = 0 if axis is None else int(axis)
    return _out(type_, [x], {"axis": axis, "output_type": dtypes.as_dtype(output_type)}, name)


def argmax(x, axis=None, output_type=dtypes.int64, name=None, dimension=None):
    """Index of the largest element along ``axis`` (TF1: ``None`` means axis 0; the
    first one among ties). Not differentiable.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.argmax([[1, 9], [8, 2]]))
    array([1, 0])
    """
    return _arg("ArgMax", x, dimension if axis is None else axis, output_type, name)


def argmin(x, axis=None, output_type=dtypes.int64, name=None, dimension=None):
    """Index of the smallest element along ``axis`` (TF1: ``None`` means axis 0).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     int(fg.Session().run(fg.argmin([3.0, -1.0, 2.0], output_type=fg.int32)))
    1
    """
    return _arg("ArgMin", x, dimension if axis is None else axis, output_type, name)


# --- shapes as tensors ----------------------------------------------------------------

def shape(x, out_type=dtypes.int32, name=None):
    """The run-time shape of ``x`` as a 1-d integer tensor (dynamic: a ``None``
    dimension is its fed size). The compiler folds it to a constant once feed shapes
    are fixed.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 3))
    ...     fg.Session().run(fg.shape(x), {x: np.zeros((5, 3))})
    array([5, 3], dtype=int32)
    """
    return _out("Shape", [convert_to_tensor(x)], {"out_type": dtypes.as_dtype(out_type)},
                name)


def size(x, out_type=dtypes.int32, name=None):
    """The number of elements of ``x`` (a 0-d integer tensor, dynamic like ``shape``).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     int(fg.Session().run(fg.size(fg.zeros((2, 3)))))
    6
    """
    x = convert_to_tensor(x)
    return _out("Size", [x], {"axis": None, "dtype": dtypes.as_dtype(out_type)}, name)


def rank(x, name=None):
    """The number of dimensions of ``x`` (an int32 0-d tensor).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     int(fg.Session().run(fg.rank(fg.zeros((2, 3)))))
    2
    """
    x = convert_to_tensor(x)
    if x.shape is not None:
        return F.constant(len(x.shape), dtypes.int32, name=name or "Rank")
    return size(shape(x), name=name)


# --- ranges and fills -------------------------------------------------------------------

def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001 - TF1's name
    """``[start, start + delta, ...]`` up to ``limit`` (excluded); ``range(n)`` is
    ``range(0, n)``. Python numbers give a constant (int32, or float32 if any is a
    float, as TF1); tensors give a ``Range`` op whose length is known at run time.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     n = fg.placeholder(fg.int32, ())
    ...     fg.Session().run([fg.range(1, 7, 2), fg.range(n)], {n: 3})
    [array([1, 3, 5], dtype=int32), array([0, 1, 2], dtype=int32)]
    """
    if limit is None:
        start, limit = 0, start
    args = (start, limit, delta)
    if not builtins.any(_is_symbolic(a) for a in args):
        if dtype is None:
            floats = builtins.any(np.asarray(a).dtype.kind == "f" for a in args)
            dtype = dtypes.float32 if floats else dtypes.int32
        dtype = dtypes.as_dtype(dtype)
        if delta == 0:
            raise ValueError(f"range: expected a non-zero delta, found {delta}")
        return F.constant(np.arange(start, limit, delta).astype(dtype), name=name)
    values = F._to_tensors(*args, name_hint="Range")
    if dtype is not None:
        values = [F.cast(v, dtype) if v.dtype != dtypes.as_dtype(dtype) else v
                  for v in values]
    return _out("Range", values, name=name)


def fill(dims, value, name=None):
    """A tensor of shape ``dims`` (a list of ints, or a 1-d integer tensor such as
    ``fg.shape(x)``) filled with the scalar ``value``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 2))
    ...     fg.Session().run(fg.fill(fg.shape(x), 7.0), {x: np.zeros((1, 2))})
    array([[7., 7.]], dtype=float32)
    """
    if isinstance(dims, (list, tuple)) and builtins.any(_is_symbolic(d) for d in dims):
        dims = F.stack([F.cast(d, dtypes.int32) if _is_symbolic(d) else int(d) for d in dims])
    elif not _is_symbolic(dims):
        dims = F.constant(np.asarray(dims, np.int32).reshape(-1), dtypes.int32)
    return _out("Fill", [convert_to_tensor(dims), convert_to_tensor(value)], name=name)


# --- elementwise ----------------------------------------------------------------------

def pow(x, y, name=None):  # noqa: A001 - TF1's name
    """``x ** y`` elementwise with broadcasting; ``y`` may be a tensor (a Python number
    uses the cheaper ``x ** number``). Integers to negative powers are an error.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.pow(fg.constant([2.0, 4.0]), fg.constant([3.0, 0.5])))
    array([8., 2.], dtype=float32)
    """
    if _is_symbolic(x) and isinstance(y, numbers.Real) and not isinstance(y, bool) \
            and not _is_symbolic(y):
        return F.pow_scalar(x, y, name=name)
    return F._binary("Pow", x, y, name)


def _require_bool(fn_name, *tensors):
    for t in tensors:
        if t.dtype != dtypes.bool_:
            raise DTypeError(f"{fn_name}: expected bool tensors, found {t.name} of dtype "
                             f"{t.dtype.name}")


def _bools(fn_name, *values):
    out = [convert_to_tensor(v, dtype=dtypes.bool_) if not _is_symbolic(v)
           else convert_to_tensor(v) for v in values]
    _require_bool(fn_name, *out)
    return out


def logical_and(x, y, name=None):
    """Elementwise ``x and y`` of bool tensors (broadcasting)."""
    a, b = _bools("logical_and", x, y)
    return F.where(a, b, F.zeros_like(b), name=name)


def logical_or(x, y, name=None):
    """Elementwise ``x or y`` of bool tensors (broadcasting).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.logical_or([True, False], [False, False]))
    array([ True, False])
    """
    a, b = _bools("logical_or", x, y)
    return F.where(a, F.ones_like(b), b, name=name)


def logical_not(x, name=None):
    """Elementwise ``not x`` of a bool tensor."""
    (a,) = _bools("logical_not", x)
    return F.equal(a, False, name=name)


def logical_xor(x, y, name=None):
    """Elementwise ``x != y`` of bool tensors."""
    a, b = _bools("logical_xor", x, y)
    return F.not_equal(a, b, name=name)


# --- reductions -------------------------------------------------------------------------

def reduce_min(x, axis=None, keepdims=False, name=None, reduction_indices=None,
               keep_dims=None):
    """Minimum over ``axis`` (``-reduce_max(-x)``; ties share the gradient).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.reduce_min([[3, 1], [2, 5]], axis=1))
    array([1, 2], dtype=int32)
    """
    axis, keepdims = tf1_reduction_args("reduce_min", axis, keepdims, reduction_indices,
                                        keep_dims)
    x = convert_to_tensor(x)
    return F.negative(F.reduce_max(F.negative(x), axis, keepdims), name=name)


def reduce_prod(x, axis=None, keepdims=False, name=None, reduction_indices=None,
                keep_dims=None):
    """Product over ``axis`` (all axes when None); differentiable also at zeros.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.reduce_prod([[1.0, 2.0], [3.0, 4.0]], axis=0))
    array([3., 8.], dtype=float32)
    """
    axis, keepdims = tf1_reduction_args("reduce_prod", axis, keepdims, reduction_indices,
                                        keep_dims)
    x = convert_to_tensor(x)
    if x.dtype == dtypes.bool_:
        x = F.cast(x, dtypes.DEFAULT_INT)
    return _out("ReduceProd", [x], {"axis": _axes_attr(x, axis), "keepdims": keepdims}, name)


def _count_true(fn_name, x, axis, keepdims):
    (x,) = _bools(fn_name, x)
    return F.reduce_sum(F.cast(x, dtypes.int32), axis, keepdims)


def reduce_any(x, axis=None, keepdims=False, name=None, reduction_indices=None,
               keep_dims=None):
    """Logical or over ``axis`` of a bool tensor (``False`` for an empty axis).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.reduce_any([[True, False], [False, False]], axis=1))
    array([ True, False])
    """
    axis, keepdims = tf1_reduction_args("reduce_any", axis, keepdims, reduction_indices,
                                        keep_dims)
    return F.greater(_count_true("reduce_any", x, axis, keepdims), 0, name=name)


def reduce_all(x, axis=None, keepdims=False, name=None, reduction_indices=None,
               keep_dims=None):
    """Logical and over ``axis`` of a bool tensor (``True`` for an empty axis)."""
    axis, keepdims = tf1_reduction_args("reduce_all", axis, keepdims, reduction_indices,
                                        keep_dims)
    return F.equal(_count_true("reduce_all", logical_not(x), axis, keepdims), 0, name=name)


# --- reordering -------------------------------------------------------------------------

def reverse(x, axis, name=None):
    """``x`` with the order of elements reversed along each of ``axis`` (an int or a
    list, TF1's ``tf.reverse``): a strided slice with step -1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.reverse([[1, 2, 3], [4, 5, 6]], axis=[0, 1]))
    array([[6, 5, 4],
           [3, 2, 1]], dtype=int32)
    """
    x = convert_to_tensor(x)
    axes = [int(axis)] if isinstance(axis, numbers.Integral) else [int(a) for a in axis]
    if not axes:
        return F.identity(x, name=name)
    if x.shape is None:
        if len(axes) == 1 and axes[0] < 0:
            spec = [("ellipsis",), ("slice", None, None, -1)] + \
                [("slice", None, None, None)] * (-axes[0] - 1)
            return F.strided_slice(x, spec, name=name)
        raise ShapeError(f"reverse of {x.name}: expected a known rank (or one negative "
                         f"axis), found an unknown rank")
    axes = S.normalize_axes(tuple(axes), len(x.shape))
    spec = [("slice", None, None, -1 if i in axes else None)
            for i in builtins.range(max(axes) + 1)]
    return F.strided_slice(x, spec, name=name)


def _indices(n):
    """``range(n)`` (int32) for a static size or a run-time 0-d tensor."""
    return range(n) if isinstance(n, int) else range(0, n)


def reverse_sequence(input, seq_lengths, seq_axis=None,  # noqa: A002 - TF1's names
                     batch_axis=None, name=None, seq_dim=None, batch_dim=None):
    """Reverse the first ``seq_lengths[b]`` elements of each slice ``b`` (along
    ``batch_axis``) along ``seq_axis``; the rest stay in place (TF1's
    ``tf.reverse_sequence``, e.g. for a backward RNN over padded sequences). A gather.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([[1, 2, 3, 4], [5, 6, 7, 8]])
    ...     fg.Session().run(fg.reverse_sequence(x, [3, 1], seq_axis=1, batch_axis=0))
    array([[3, 2, 1, 4],
           [5, 6, 7, 8]], dtype=int32)
    """
    x = convert_to_tensor(input)
    seq_axis = seq_dim if seq_axis is None else seq_axis
    batch_axis = batch_dim if batch_axis is None else batch_axis
    batch_axis = 0 if batch_axis is None else batch_axis
    if seq_axis is None:
        raise ValueError("reverse_sequence: expected seq_axis=")
    if x.shape is None:
        raise ShapeError(f"reverse_sequence of {x.name}: expected a known rank")
    r = len(x.shape)
    seq_axis, batch_axis = S.normalize_axis(seq_axis, r), S.normalize_axis(batch_axis, r)
    if seq_axis == batch_axis:
        raise ValueError(f"reverse_sequence: expected different seq_axis and batch_axis, "
                         f"found {seq_axis} for both")
    rest = [i for i in builtins.range(r) if i not in (batch_axis, seq_axis)]
    if any(x.shape[i] is None for i in rest):
        raise ShapeError(f"reverse_sequence of {x.name}: expected known sizes except along "
                         f"the batch and sequence axes, found {S.fmt(x.shape)}")
    perm = [batch_axis, seq_axis] + rest
    xt = F.transpose(x, perm) if perm != list(builtins.range(r)) else x
    lengths = convert_to_tensor(seq_lengths)
    if not dtypes.is_integer(lengths.dtype):
        raise DTypeError(f"reverse_sequence of {x.name}: expected integer seq_lengths, found "
                         f"{lengths.name} of dtype {lengths.dtype.name}")
    if lengths.shape is not None and (len(lengths.shape) != 1 or None not in (
            lengths.shape[0], x.shape[batch_axis]) and lengths.shape[0] != x.shape[batch_axis]):
        raise ShapeError(f"reverse_sequence of {x.name}: expected seq_lengths of shape "
                         f"{S.fmt((x.shape[batch_axis],))} (the size of batch_axis "
                         f"{batch_axis} of {S.fmt(x.shape)}), found {lengths.name} of shape "
                         f"{S.fmt(lengths.shape)}")
    lengths = F.cast(lengths, dtypes.int32)
    dims = shape(xt)
    n_batch = xt.shape[0] if xt.shape[0] is not None else dims[0]
    n_time = xt.shape[1] if xt.shape[1] is not None else dims[1]
    # TF1 rejects a length outside [0, the size of seq_axis] at run time; without this
    # check a longer length would read rows of the next batch entry (the gather runs on
    # the flattened [batch * time] rows). A gather from range(time + 1) is the check on
    # every path (reference, compiled, CUDA): it returns the lengths themselves or
    # raises InvalidArgumentError naming this op. The reshape to [batch] rejects a
    # run-time number of lengths that differs from the batch size (which would
    # otherwise broadcast).
    with name_scope("reverse_sequence"):
        lengths = F.gather(_indices(n_time + 1), F.reshape(lengths, [n_batch]),
                           name="seq_lengths_in_range")
    t = F.expand_dims(_indices(n_time), 0)          # [1, T]
    b = F.expand_dims(_indices(n_batch), 1)         # [B, 1]
    ln = F.expand_dims(lengths, 1)                                      # [B, 1]
    within = F.where(t < ln, ln - 1 - t, t + F.zeros_like(ln))          # [B, T]
    rows = F.reshape(within + b * n_time, [-1])
    flat = F.reshape(xt, [-1] + [x.shape[i] for i in rest])
    out = F.reshape_like(F.gather(flat, rows), xt)
    if perm != list(builtins.range(r)):
        out = F.transpose(out, list(np.argsort(perm)))
    return F.identity(out, name=name) if name else out


def sequence_mask(lengths, maxlen=None, dtype=dtypes.bool_, name=None):
    """``mask[..., j] = j < lengths[...]`` of shape ``lengths.shape + [maxlen]``
    (``maxlen`` defaults to ``max(lengths)``, known only at run time; the compiler
    then runs the graph on the reference path).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.sequence_mask([1, 3], 4, dtype=fg.int32))
    array([[1, 0, 0, 0],
           [1, 1, 1, 0]], dtype=int32)
    """
    lengths = convert_to_tensor(lengths)
    if not dtypes.is_integer(lengths.dtype):
        raise DTypeError(f"sequence_mask: expected integer lengths, found "
                         f"{lengths.dtype.name}")
    if maxlen is None:
        maxlen = F.reduce_max(lengths)
    if _is_symbolic(maxlen):
        steps = range(0, F.cast(convert_to_tensor(maxlen), lengths.dtype))
    else:
        steps = F.constant(np.arange(int(maxlen), dtype=lengths.dtype))
    mask = F.less(steps, F.expand_dims(lengths, -1))
    dtype = dtypes.as_dtype(dtype)
    if dtype != dtypes.bool_:
        return F.cast(mask, dtype, name=name)
    return F.identity(mask, name=name) if name else mask


def placeholder_with_default(input, shape, name=None):  # noqa: A002 - TF1's names
    """TF1's ``tf.placeholder_with_default``: ``input``'s value unless the result is fed.

    ``shape`` may be less specific than ``input``'s (``[None, 3]`` for a ``(2, 3)``
    default), so a feed of another size is accepted; it must be compatible with it
    (``ShapeError`` otherwise). The dtype is ``input``'s.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     keep = fg.placeholder_with_default(1.0, shape=[])
    ...     x = fg.placeholder_with_default(np.ones((2, 3), np.float32), [None, 3])
    ...     y = fg.reduce_sum(x, 1) * keep
    ...     with fg.Session() as sess:
    ...         print(x.shape, sess.run(y), sess.run(y, {x: np.ones((1, 3)), keep: 0.5}))
    (None, 3) [3. 3.] [1.5]
    """
    from .graph import location_suffix
    from .tensor_shape import TensorShape
    input = convert_to_tensor(input)
    shape = S.as_shape(shape)
    if not TensorShape(shape).is_compatible_with(TensorShape(input.shape)):
        raise ShapeError("placeholder_with_default" + location_suffix("called")
                         + f": expected the default {input.name} to have a shape "
                         f"compatible with shape={S.fmt(shape)}, found {S.fmt(input.shape)}")
    op = input.graph.create_op("Identity", [input], None, name or "PlaceholderWithDefault",
                               output_specs=[(shape, input.dtype)])
    return op.outputs[0]


def tile(x, multiples, name=None):
    """``x`` repeated ``multiples[i]`` times along each axis ``i`` (static multiples):
    a broadcast against zeros and a reshape, so the gradient sums the copies.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.tile([[1, 2]], [2, 2]))
    array([[1, 2, 1, 2],
           [1, 2, 1, 2]], dtype=int32)
    """
    x = convert_to_tensor(x)
    if _is_symbolic(multiples):
        from .ops import static_value
        known = static_value(convert_to_tensor(multiples))
        if known is None:
            raise ShapeError(f"tile of {x.name}: expected multiples known when the graph is "
                             "built (a list of ints or a constant)")
        multiples = known
    mult = [int(m) for m in np.asarray(multiples).reshape(-1)]
    if x.shape is None or len(mult) != len(x.shape):
        raise ShapeError(f"tile of {x.name}: expected one multiple per dimension of "
                         f"{S.fmt(x.shape)}, found {mult}")
    if builtins.any(m < 0 for m in mult):
        raise ShapeError(f"tile of {x.name}: expected multiples >= 0, found {mult}")
    if builtins.all(m == 1 for m in mult):
        return F.identity(x, name=name)
    if sum(d is None for d in x.shape) > 1:
        raise ShapeError(f"tile of {x.name}: expected at most one unknown dimension, found "
                         f"{S.fmt(x.shape)}")
    is_bool = x.dtype == dtypes.bool_
    src = F.cast(x, dtypes.int32) if is_bool else x
    spread = F.reshape(src, [d for dim in x.shape for d in (1, -1 if dim is None else dim)])
    copies = np.zeros([d for m in mult for d in (m, 1)], src.dtype)
    out = F.reshape(spread + copies, [-1 if d is None else m * d
                                      for m, d in zip(mult, x.shape)])
    if is_bool:
        return F.cast(out, dtypes.bool_, name=name)
    return F.identity(out, name=name) if name else out


__all__ = ["argmax", "argmin", "shape", "size", "rank", "range", "fill", "pow",
           "logical_and", "logical_or", "logical_not", "logical_xor", "reduce_min",
           "reduce_prod", "reduce_any", "reduce_all", "reverse", "reverse_sequence",
           "sequence_mask", "tile"]
