"""Static shapes with unknown parts.

A shape is a tuple of ``int`` or ``None`` (an unknown dimension), or ``None`` itself
when even the rank is unknown.

>>> broadcast_shapes((3, 1), (None, 4))
(3, 4)
"""
from __future__ import annotations

from . import tensor_shape as _tensor_shape
from .errors import ShapeError


def as_shape(shape):
    """Normalize a user shape (``None``, an int, or a sequence of ints/None)."""
    if shape is None:
        return None
    if isinstance(shape, _tensor_shape.TensorShape):   # TF1's tf.TensorShape
        return shape._as_tuple()
    if isinstance(shape, _tensor_shape.Dimension):
        shape = shape.value
    if isinstance(shape, int):
        shape = (shape,)
    out = []
    for d in shape:
        if isinstance(d, _tensor_shape.Dimension):
            d = d.value
        if d is None or (isinstance(d, int) and d == -1):
            out.append(None)
        elif isinstance(d, int) and d >= 0:
            out.append(int(d))
        else:
            try:
                d_int = int(d)
            except (TypeError, ValueError):
                raise ShapeError(f"expected dimensions to be ints or None, found {d!r}") from None
            if d_int < 0:
                raise ShapeError(f"expected non-negative dimensions, found {d!r}")
            out.append(d_int)
    return tuple(out)


def is_fully_defined(shape) -> bool:
    return shape is not None and all(d is not None for d in shape)


def num_elements(shape):
    """Number of elements, or ``None`` if unknown."""
    if not is_fully_defined(shape):
        return None
    n = 1
    for d in shape:
        n *= d
    return n


def fmt(shape) -> str:
    """``(None, 3)`` -> ``"(?, 3)"``; unknown rank -> ``"<unknown>"``."""
    if shape is None:
        return "<unknown>"
    inner = ", ".join("?" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def broadcast_shapes(*shapes):
    """NumPy broadcasting of static shapes; raises ``ValueError`` when incompatible."""
    if any(s is None for s in shapes):
        return None
    first = shapes[0]
    if all(s == first for s in shapes) and None not in first:
        return tuple(first)     # the common case, checked at every op's creation
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError("incompatible dimensions " + " and ".join(map(str, sorted(known))))
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def compatible(static, actual) -> bool:
    """True if a concrete shape ``actual`` fits the static shape ``static``."""
    if static is None:
        return True
    if len(static) != len(actual):
        return False
    return all(s is None or s == a for s, a in zip(static, actual))


def merge(a, b):
    """The most specific shape compatible with both, assuming both hold."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(x if x is not None else y for x, y in zip(a, b))


def normalize_axis(axis, rank, what="axis"):
    """Wrap a negative axis; raises ``ValueError`` if out of range."""
    if not -rank <= axis < rank:
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(axis, rank):
    """``None`` -> all axes; an int or sequence -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(rank))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = sorted({normalize_axis(int(a), rank) for a in axes})
    if len(out) != len(axes):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(out)
