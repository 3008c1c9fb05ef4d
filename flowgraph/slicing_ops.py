"""TF1's ``tf.slice``, ``tf.pad`` and ``tf.matrix_transpose``, as slices,
concatenations, reversals and fills (their gradients and kernels come from those).

``pad`` pads one axis at a time; a ``"REFLECT"`` pad of width ``a`` mirrors the ``a``
rows after the edge (so ``a`` must be below the axis' size), ``"SYMMETRIC"`` the ``a``
rows from the edge on (``a`` at most the size), as in TF1.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([[1, 2, 3], [4, 5, 6]])
...     with fg.Session() as sess:
...         print(sess.run(fg.pad(x, [[1, 0], [2, 1]])))
...         print(sess.run(fg.pad(x, [[0, 0], [2, 2]], "REFLECT")))
...         print(sess.run(fg.slice(x, [0, 1], [-1, 2])))
[[0 0 0 0 0 0]
 [0 0 1 2 3 0]
 [0 0 4 5 6 0]]
[[3 2 1 2 3 2 1]
 [6 5 4 5 6 5 4]]
[[2 3]
 [5 6]]
"""
from __future__ import annotations


from . import api as F
from . import dtypes
from .array_ops import fill, logical_and, reverse, shape as shape_of
from .errors import ShapeError
from .graph import Tensor, name_scope


def _static_ints(fn_name, what, values):
    if isinstance(values, Tensor):
        raise ShapeError(f"{fn_name}: expected {what} as Python ints (known when the graph "
                         f"is built), found the tensor {values.name}")
    try:
        return [int(v) for v in values]
    except TypeError:
        raise ShapeError(f"{fn_name}: expected {what} as a list of ints, found "
                         f"{values!r}") from None


def _known_rank(fn_name, x):
    if x.shape is None:
        raise ShapeError(f"{fn_name}: expected {x.name} of known rank, found an unknown "
                         f"rank")
    return len(x.shape)


def slice(input_, begin, size, name=None):  # noqa: A001 - TF1's name
    """``input_[begin[i] : begin[i] + size[i]]`` along every axis; a size of -1 takes
    the rest of the axis. ``begin`` and ``size`` are ints (tensor bounds are not
    supported)."""
    x = F.convert_to_tensor(input_)
    rank = _known_rank("slice", x)
    begin = _static_ints("slice", "begin", begin)
    size = _static_ints("slice", "size", size)
    if len(begin) != rank or len(size) != rank:
        raise ShapeError(f"slice of {x.name}: expected begin and size of length {rank} "
                         f"(its rank), found {len(begin)} and {len(size)}")
    spec = []
    for axis, (b, n) in enumerate(zip(begin, size)):
        dim = x.shape[axis]
        if b < 0 or n < -1 or (dim is not None and b + max(n, 0) > dim):
            raise ShapeError(f"slice of {x.name}: expected 0 <= begin and begin + size "
                             f"<= {dim} along axis {axis}, found begin {b}, size {n}")
        spec.append(("slice", b, None if n == -1 else b + n, None))
    return F.strided_slice(x, spec, name=name)


def matrix_transpose(a, name="matrix_transpose", conjugate=False):
    """``a`` with its last two axes swapped (a batch of matrices transposed)."""
    x = F.convert_to_tensor(a)
    rank = _known_rank("matrix_transpose", x)
    if rank < 2:
        raise ShapeError(f"matrix_transpose of {x.name}: expected rank 2 or more, found "
                         f"shape {x.shape}")
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return F.transpose(x, perm, name=name)


_MODES = ("CONSTANT", "REFLECT", "SYMMETRIC")


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    """``tensor`` padded by ``paddings[i] = [before, after]`` along each axis i:
    with ``constant_values`` (``"CONSTANT"``), or mirrored (``"REFLECT"``,
    ``"SYMMETRIC"``). ``paddings`` are ints."""
    x = F.convert_to_tensor(tensor)
    mode = str(mode).upper()
    if mode not in _MODES:
        raise ValueError(f"pad: expected mode in {_MODES}, found {mode!r}")
    rank = _known_rank("pad", x)
    if isinstance(paddings, Tensor):
        _static_ints("pad", "paddings", paddings)
    pairs = [_static_ints("pad", "paddings", p) for p in paddings]
    if len(pairs) != rank or any(len(p) != 2 or min(p) < 0 for p in pairs):
        raise ShapeError(f"pad of {x.name}: expected paddings of shape [{rank}, 2] with "
                         f"entries >= 0, found {pairs}")
    out = x
    for axis, (before, after) in enumerate(pairs):
        if before or after:
            out = _pad_axis(out, axis, before, after, mode, constant_values)
    return F.identity(out, name=name) if name else out


def _pad_axis(x, axis, before, after, mode, value):
    rank, dim = len(x.shape), x.shape[axis]

    def cut(start, stop):
        spec = [("slice", None, None, None)] * axis + [("slice", start, stop, None)]
        return F.strided_slice(x, spec)

    if mode == "CONSTANT":
        def block(width):
            dims = [width if i == axis else x.shape[i] if x.shape[i] is not None
                    else shape_of(x)[i] for i in range(rank)]
            fill_value = F.cast(F.convert_to_tensor(value), x.dtype)
            return fill(F.stack([F.cast(d, dtypes.int32) if isinstance(d, Tensor)
                                 else d for d in dims]), fill_value)
        parts = [block(before)] if before else []
        parts.append(x)
        if after:
            parts.append(block(after))
        out = F.concat(parts, axis)
        # a block of a run-time size leaves the static shape unknown: what is known
        static = tuple(None if d is None else d + before + after if i == axis else d
                       for i, d in enumerate(x.shape))
        out.set_shape(static)
        return out
    skip = 1 if mode == "REFLECT" else 0        # REFLECT leaves out the edge row
    if dim is not None and max(before, after) + skip > dim:
        raise ShapeError(f"pad ({mode}): expected paddings below {dim + 1 - skip} along "
                         f"axis {axis} (its size {dim}), found {before} and {after}")
    parts = []
    if before:
        parts.append(reverse(cut(skip, skip + before), axis))
    parts.append(x)
    if after:
        parts.append(reverse(cut(-after - skip, -skip if skip else None), axis))
    return F.concat(parts, axis)


def gather_nd(params, indices, name=None):
    """TF1's ``tf.gather_nd``: ``out[i...] = params[indices[i..., 0], ...,
    indices[i..., K-1]]`` (then the rest of ``params``' axes), with ``K`` the last
    dimension of ``indices`` (known when the graph is built).

    A composition: the first ``K`` axes of ``params`` are flattened into one and the
    index tuples into flat row numbers, which ``gather`` picks (its gradient, a sparse
    row scatter, comes with it). An index out of range in any of its ``K`` entries
    makes the row number out of range, so the ``Gather`` raises
    ``InvalidArgumentError`` (reporting -1) instead of picking another row.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     outputs = fg.constant(np.arange(24.0).reshape(2, 3, 4))    # [batch, time, 4]
    ...     lengths = fg.constant([3, 1])
    ...     batch = fg.range(fg.shape(outputs)[0])
    ...     last = fg.gather_nd(outputs, fg.stack([batch, lengths - 1], axis=1))
    ...     fg.Session().run(last)                       # each row's last valid step
    array([[ 8.,  9., 10., 11.],
           [12., 13., 14., 15.]])
    """
    x = F.convert_to_tensor(params)
    idx = F.convert_to_tensor(indices)
    if not dtypes.is_integer(idx.dtype):
        raise ShapeError(f"gather_nd: expected integer indices, found {idx.name} of dtype "
                         f"{idx.dtype.name}")
    if idx.shape is None or not idx.shape or idx.shape[-1] is None:
        raise ShapeError(f"gather_nd: expected indices [..., K] with K known, found "
                         f"{idx.name} of shape {idx.shape}")
    k = idx.shape[-1]
    rank = _known_rank("gather_nd", x)
    if not 1 <= k <= rank:
        raise ShapeError(f"gather_nd: expected the indices' last dimension K in [1, "
                         f"{rank}] (the rank of {x.name}), found {k}")
    with name_scope(name or "gather_nd"):
        idx = F.cast(idx, dtypes.int64)
        dims = [F.cast(x.shape[i] if x.shape[i] is not None else shape_of(x)[i],
                       dtypes.int64) for i in range(k)]
        parts = F.unstack(idx, k, axis=-1)
        flat, stride, in_range = None, None, None
        for i in reversed(range(k)):
            term = parts[i] if stride is None else parts[i] * stride
            flat = term if flat is None else flat + term
            stride = dims[i] if stride is None else stride * dims[i]
            ok = logical_and(parts[i] >= 0, parts[i] < dims[i])
            in_range = ok if in_range is None else logical_and(in_range, ok)
        flat = F.where(in_range, flat, F.ones_like(flat) * -1)
        rest = [-1] + [x.shape[i] if x.shape[i] is not None else shape_of(x)[i]
                       for i in range(k, rank)]
        return F.gather(F.reshape(x, rest), flat)


__all__ = ["gather_nd", "matrix_transpose", "pad", "slice"]
