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
from .array_ops import fill, reverse, shape as shape_of
from .errors import ShapeError
from .graph import Tensor


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


__all__ = ["matrix_transpose", "pad", "slice"]
