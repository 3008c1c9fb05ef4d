"""TF1's small ``tf.math`` helpers, as compositions (gradients to any order from their
parts): ``polyval``, ``scalar_mul``, ``zero_fraction`` and ``reduce_euclidean_norm``.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([0.0, 1.0, 2.0])
...     p = fg.math.polyval([1.0, -2.0, 3.0], x)          # x**2 - 2x + 3
...     out = fg.Session().run([p, fg.math.zero_fraction(x)])
...     out[0].tolist(), round(float(out[1]), 4)
([3.0, 2.0, 3.0], 0.3333)
"""
from __future__ import annotations

from . import api as F
from . import dtypes
from .api import tf1_reduction_args
from .errors import DTypeError, ShapeError
from .graph import location_suffix


def polyval(coeffs, x, name=None):
    """TF1's ``tf.math.polyval``: ``coeffs[0] * x**(n-1) + ... + coeffs[n-1]`` by
    Horner's rule; ``coeffs`` a Python list of scalars or scalar tensors (an empty list
    gives zeros like ``x``).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.math.polyval([2.0, 0.0, 1.0], 3.0)).tolist()
    19.0
    """
    if not isinstance(coeffs, (list, tuple)):
        raise ValueError(f"polyval{location_suffix('called')}: expected coeffs as a list, "
                         f"found {type(coeffs).__name__}")
    x = F.convert_to_tensor(x)
    if not coeffs:
        out = F.zeros_like(x)
    else:
        out = F.zeros_like(x) + coeffs[0]
        for c in coeffs[1:]:
            out = out * x + c
    return F.identity(out, name=name) if name else out


def scalar_mul(scalar, x, name=None):
    """TF1's ``tf.math.scalar_mul``: ``scalar * x`` for a scalar ``scalar`` (a tensor of
    another shape is a ``ShapeError``, as TF1's ``ValueError``)."""
    s = F.convert_to_tensor(scalar) if isinstance(scalar, F.Tensor) else scalar
    if isinstance(s, F.Tensor) and s.shape not in (None, ()):
        raise ShapeError(f"scalar_mul{location_suffix('called')}: expected a scalar, found "
                         f"{s.name} of shape {s.shape}")
    return F.multiply(s, x, name=name)


def zero_fraction(value, name=None):
    """TF1's ``tf.math.zero_fraction``: the fraction of ``value``'s elements equal to 0,
    a float32 scalar.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     float(fg.Session().run(fg.math.zero_fraction([[0, 1], [0, 0]])))
    0.75
    """
    x = F.convert_to_tensor(value)
    zero = F.equal(x, F.zeros_like(x))
    return F.reduce_mean(F.cast(zero, dtypes.float32), name=name)


def reduce_euclidean_norm(input_tensor, axis=None, keepdims=False, name=None):
    """TF1's ``tf.math.reduce_euclidean_norm``: ``sqrt(sum(x**2))`` over ``axis`` (float;
    its gradient at an all-zero slice is NaN, as ``sqrt``'s at 0).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([[3.0, 4.0], [6.0, 8.0]])
    ...     fg.Session().run(fg.math.reduce_euclidean_norm(x, 1)).tolist()
    [5.0, 10.0]
    """
    axis, keepdims = tf1_reduction_args("reduce_euclidean_norm", axis, keepdims, None, None)
    x = F.convert_to_tensor(input_tensor)
    if x.dtype.kind != "f":
        raise DTypeError(f"reduce_euclidean_norm{location_suffix('called')}: expected a "
                         f"float tensor, found {x.name} of dtype {x.dtype.name}")
    return F.sqrt(F.reduce_sum(F.square(x), axis, keepdims=keepdims), name=name)


__all__ = ["polyval", "scalar_mul", "zero_fraction", "reduce_euclidean_norm"]
