"""TF1's smaller math ops, as compositions of primitives (their gradients, to any
order, and their fused CPU and CUDA kernels come from the primitives they use):
``squared_difference``, ``reduce_logsumexp``, ``rsqrt``, ``reciprocal``,
``log_sigmoid``, ``truediv``, ``count_nonzero``, ``is_nan``, ``is_inf``,
``is_finite``, ``eye``.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([[0.0, np.log(3.0)], [1000.0, 1000.0]], fg.float64)
...     lse = fg.reduce_logsumexp(x, axis=1)        # no overflow at 1000
...     bad = fg.is_finite(fg.constant([1.0, np.inf, np.nan]))
...     out, finite = fg.Session().run([lse, bad])
...     out.round(4).tolist(), finite.tolist()
([1.3863, 1000.6931], [True, False, False])
"""
from __future__ import annotations

import numpy as np

from . import api as F
from . import dtypes
from .api import tf1_reduction_args
from .errors import DTypeError


def _float(fn_name, x):
    x = F.convert_to_tensor(x)
    if x.dtype.kind != "f":
        raise DTypeError(f"{fn_name}: expected a float tensor, found {x.name} of dtype "
                         f"{x.dtype.name}")
    return x


def squared_difference(x, y, name=None):
    """``(x - y)**2``, broadcasting."""
    return F.square(F.subtract(x, y), name=name)


def reduce_logsumexp(input_tensor, axis=None, keepdims=False, name=None,
                     reduction_indices=None, keep_dims=None):
    """``log(sum(exp(x)))`` over ``axis``, computed without overflow: the maximum
    (where finite; it gets no gradient) is taken out first, as TF1 does."""
    axis, keepdims = tf1_reduction_args("reduce_logsumexp", axis, keepdims,
                                        reduction_indices, keep_dims)
    x = _float("reduce_logsumexp", input_tensor)
    top = F.reduce_max(x, axis, keepdims=True)
    top = F.stop_gradient(F.where(is_finite(top), top, F.zeros_like(top)))
    out = F.log(F.reduce_sum(F.exp(x - top), axis, keepdims=True)) + top
    if not keepdims:
        out = F.reduce_sum(out, axis)          # drops the kept size-1 axes
    return F.identity(out, name=name) if name else out


def rsqrt(x, name=None):
    """``1 / sqrt(x)``."""
    x = _float("rsqrt", x)
    return F.divide(F.ones_like(x), F.sqrt(x), name=name)


def reciprocal(x, name=None):
    """``1 / x``."""
    x = _float("reciprocal", x)
    return F.divide(F.ones_like(x), x, name=name)


def log_sigmoid(x, name=None):
    """``log(sigmoid(x)) = -softplus(-x)``, without overflow for large ``|x|``."""
    from .nn.activations import softplus
    return F.negative(softplus(F.negative(_float("log_sigmoid", x))), name=name)


def truediv(x, y, name=None):
    """``x / y`` as real division: integer inputs are cast to float64 first (TF1:
    ``int32``/``int64`` divide as float64)."""
    x, y = F.convert_to_tensor(x), F.convert_to_tensor(y)
    if dtypes.is_integer(x.dtype) or dtypes.is_integer(y.dtype):
        x, y = F.cast(x, dtypes.float64), F.cast(y, dtypes.float64)
    return F.divide(x, y, name=name)


def count_nonzero(input_tensor, axis=None, keepdims=False, dtype=dtypes.int64, name=None,
                  reduction_indices=None, keep_dims=None):
    """The number of elements that are not zero (not ``False``) over ``axis``."""
    axis, keepdims = tf1_reduction_args("count_nonzero", axis, keepdims,
                                        reduction_indices, keep_dims)
    x = F.convert_to_tensor(input_tensor)
    nonzero = F.not_equal(x, False if x.dtype == dtypes.bool_ else 0)
    return F.reduce_sum(F.cast(nonzero, dtype), axis, keepdims=keepdims, name=name)


def is_nan(x, name=None):
    """Where ``x`` is NaN (NaN is the one value not equal to itself)."""
    x = _float("is_nan", x)
    return F.not_equal(x, x, name=name)


def is_finite(x, name=None):
    """Where ``x`` is neither infinite nor NaN (``x - x`` is 0 exactly there)."""
    x = _float("is_finite", x)
    return F.equal(F.subtract(x, x), F.zeros_like(x), name=name)


def is_inf(x, name=None):
    """Where ``x`` is ``+inf`` or ``-inf``."""
    x = _float("is_inf", x)
    return F.equal(F.abs(x), F.constant(np.inf, x.dtype), name=name)


def eye(num_rows, num_columns=None, batch_shape=None, dtype=dtypes.float32, name=None):
    """The identity matrix ``[num_rows, num_columns]`` (a constant), repeated over
    ``batch_shape`` if given."""
    m = np.eye(int(num_rows), int(num_rows if num_columns is None else num_columns),
               dtype=dtypes.as_dtype(dtype))
    if batch_shape is not None:
        m = np.broadcast_to(m, tuple(int(d) for d in batch_shape) + m.shape).copy()
    return F.constant(m, name=name)


__all__ = ["count_nonzero", "eye", "is_finite", "is_inf", "is_nan", "log_sigmoid",
           "reciprocal", "reduce_logsumexp", "rsqrt", "squared_difference", "truediv"]
