"""TF1's zero-safe quotients and logs and its variance reductions, as compositions:
``tf.math.xlogy``, ``tf.math.xdivy``, ``tf.div_no_nan`` (``tf.math.divide_no_nan``),
``tf.math.reduce_variance`` and ``tf.math.reduce_std``. The zero cases select with
``where`` over a denominator replaced by 1 there, so neither the value nor the gradient
(to any order) sees a ``0 * log(0)`` or ``0 / 0``; the gradients equal TF1's (0 at the
selected zeros).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([0.0, 2.0, 3.0], fg.float64)
...     y = fg.constant([0.0, 4.0, 0.0], fg.float64)
...     out = fg.Session().run([fg.math.xlogy(x, y), fg.div_no_nan(x, y)])
...     [v.round(4).tolist() for v in out]
[[0.0, 2.7726, -inf], [0.0, 0.5, 0.0]]
"""
from __future__ import annotations

from . import api as F
from .api import tf1_reduction_args
from .errors import DTypeError
from .graph import location_suffix


def _floats(fn, x, y):
    x, y = F._to_tensors(x, y, name_hint=fn)
    if x.dtype.kind != "f" or y.dtype != x.dtype:
        raise DTypeError(f"{fn}{location_suffix('called')}: expected float inputs of one "
                         f"dtype, found {x.dtype.name} and {y.dtype.name}")
    return x, y


def _where_zero(cond, value, name):
    out = F.where(cond, F.zeros_like(value), value)
    return F.identity(out, name=name) if name else out


def xlogy(x, y, name=None):
    """TF1's ``tf.math.xlogy``: ``0`` where ``x == 0``, else ``x * log(y)``
    (broadcasting; float).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.math.xlogy([0.0, 1.0], [0.0, 1.0])).tolist()
    [0.0, 0.0]
    """
    x, y = _floats("xlogy", x, y)
    zero = F.equal(x, F.zeros_like(x))
    safe_y = F.where(zero, F.ones_like(y) + F.zeros_like(x), y)   # x's zeros: a 1
    return _where_zero(zero, x * F.log(safe_y), name)


def xdivy(x, y, name=None):
    """TF1's ``tf.math.xdivy``: ``0`` where ``x == 0``, else ``x / y``."""
    x, y = _floats("xdivy", x, y)
    zero = F.equal(x, F.zeros_like(x))
    safe_y = F.where(zero, F.ones_like(y) + F.zeros_like(x), y)   # x's zeros: a 1
    return _where_zero(zero, x / safe_y, name)


def div_no_nan(x, y, name=None):
    """TF1's ``tf.div_no_nan`` (``tf.math.divide_no_nan``): ``0`` where ``y == 0``, else
    ``x / y``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.div_no_nan([1.0, 3.0], [0.0, 2.0])).tolist()
    [0.0, 1.5]
    """
    x, y = _floats("div_no_nan", x, y)
    zero = F.equal(y, F.zeros_like(y))
    return _where_zero(zero, x / F.where(zero, F.ones_like(y), y), name)


divide_no_nan = div_no_nan


def reduce_variance(input_tensor, axis=None, keepdims=False, name=None):
    """TF1's ``tf.math.reduce_variance``: ``mean(|x - mean(x)|**2)`` over ``axis``
    (the population variance; float).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([[1.0, 2.0], [3.0, 6.0]])
    ...     var, std = fg.Session().run([fg.math.reduce_variance(x), fg.math.reduce_std(x, 1)])
    ...     float(var), std.tolist()
    (3.5, [0.5, 1.5])
    """
    axis, keepdims = tf1_reduction_args("reduce_variance", axis, keepdims, None, None)
    x = F.convert_to_tensor(input_tensor)
    if x.dtype.kind != "f":
        raise DTypeError(f"reduce_variance{location_suffix('called')}: expected a float "
                         f"tensor, found {x.name} of dtype {x.dtype.name}")
    means = F.reduce_mean(x, axis, keepdims=True)
    return F.reduce_mean(F.square(x - means), axis, keepdims=keepdims, name=name)


def reduce_std(input_tensor, axis=None, keepdims=False, name=None):
    """TF1's ``tf.math.reduce_std``: ``sqrt(reduce_variance(x))`` over ``axis``."""
    return F.sqrt(reduce_variance(input_tensor, axis, keepdims), name=name)


__all__ = ["xlogy", "xdivy", "div_no_nan", "divide_no_nan", "reduce_variance", "reduce_std"]
