"""TF1's remaining Python operators on tensors and the small ops behind them.

TF1 code writes ``step // 10``, ``i % 2``, ``mask_a & mask_b``, ``~mask``,
``2.0 ** x`` and ``x ** y`` with tensor operands; :mod:`flowgraph.api` installs only
``+ - * / @``, unary ``-``, ``abs``, indexing and the comparisons. This module adds
(as compositions of primitives, so the reference path, the compiled CPU kernels and
CUDA get them with no new kernel):

- ``fg.floordiv(x, y)`` (``//``): ``floor(x / y)``, rounding toward minus infinity as
  TF1 (and NumPy) do; integers stay integers. The integer case divides in float64,
  exact for every int32 and for int64 values below 2**53 in magnitude; an integer
  division by zero raises ``InvalidArgumentError``, as ``x / y`` does. No gradient
  (``floor`` has none, as in TF1).
- ``fg.floormod(x, y)`` = ``fg.mod`` (``%``): ``x - floordiv(x, y) * y``, the sign of
  ``y`` (TF1's ``tf.floormod``). Its gradient is TF1's: ``1`` for ``x`` and
  ``-floor(x / y)`` for ``y``.
- ``&``, ``|``, ``^``, ``~`` on bool tensors: ``logical_and/or/xor/not`` (TF1 maps them
  to the bitwise ops for integers; here an integer operand raises ``DTypeError``).
- ``x ** y`` and ``n ** x`` with a tensor exponent or base: ``fg.pow``.
- ``fg.to_float``, ``fg.to_double``, ``fg.to_int32``, ``fg.to_int64``: TF1's deprecated
  but ubiquitous ``cast`` shorthands (``tf.reduce_mean(tf.to_float(correct))``).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([-7, 7])
...     fg.Session().run([x // 2, x % 3, (x > 0) & (x < 5)])
[array([-4,  3], dtype=int32), array([2, 1], dtype=int32), array([False, False])]
"""
from __future__ import annotations

import numbers

from . import api as F
from . import array_ops
from . import dtypes
from .errors import DTypeError
from .graph import Tensor, _user_location
from .variables import Variable


def floordiv(x, y, name=None):
    """``floor(x / y)`` elementwise with broadcasting; integers stay integers (TF1's
    ``tf.floordiv``, the ``//`` operator). See the module docstring for the limits."""
    a, b = F._to_tensors(x, y, name_hint="floordiv")
    if dtypes.is_floating(a.dtype):
        return F.floor(F.divide(a, b), name=name)
    # Div of integers is float64 (and raises on a zero divisor); floor it and come back.
    return F.cast(F.floor(F.divide(a, b)), a.dtype, name=name)


def floormod(x, y, name=None):
    """``x - floordiv(x, y) * y``: the remainder with the sign of ``y`` (TF1's
    ``tf.floormod`` / ``tf.mod``, the ``%`` operator)."""
    a, b = F._to_tensors(x, y, name_hint="floormod")
    return F.subtract(a, F.multiply(floordiv(a, b), b), name=name)


mod = floormod


def to_float(x, name=None):
    """``cast(x, float32)`` (TF1's ``tf.to_float``)."""
    return F.cast(x, dtypes.float32, name=name)


def to_double(x, name=None):
    """``cast(x, float64)`` (TF1's ``tf.to_double``)."""
    return F.cast(x, dtypes.float64, name=name)


def to_int32(x, name=None):
    """``cast(x, int32)`` (TF1's ``tf.to_int32``)."""
    return F.cast(x, dtypes.int32, name=name)


def to_int64(x, name=None):
    """``cast(x, int64)`` (TF1's ``tf.to_int64``)."""
    return F.cast(x, dtypes.int64, name=name)


def _pow(self, exponent):
    # A Python number keeps the cheaper PowScalar (api.pow_scalar); a tensor or an
    # array goes to the elementwise Pow.
    if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
        return F.pow_scalar(self, exponent)
    return array_ops.pow(self, exponent)


def _bool_operator(symbol, fn):
    """The operator ``symbol`` as ``fn`` (a logical op) on bool operands; any other
    dtype raises ``DTypeError`` naming the operator, the operands and the user's line
    (TF1 would run a bitwise op on integers, which flowgraph does not have)."""
    def operator(*operands):
        tensors = [F.convert_to_tensor(v) if isinstance(v, Tensor) or hasattr(v, "_as_tensor")
                   else F.convert_to_tensor(v, dtype=dtypes.bool_) for v in operands]
        bad = [t for t in tensors if t.dtype != dtypes.bool_]
        if bad:
            where = _user_location()
            raise DTypeError(
                f"operator {symbol}{f' (at {where})' if where else ''}: expected bool "
                f"tensors (it is {fn.__name__}; bitwise ops on integers are not "
                f"supported), found "
                + ", ".join(f"{t.name} of dtype {t.dtype.name}" for t in bad))
        return fn(*tensors)
    return operator


def _rev(fn):
    return lambda self, other: fn(other, self)


OPERATORS = {
    "__floordiv__": floordiv, "__rfloordiv__": _rev(floordiv),
    "__mod__": floormod, "__rmod__": _rev(floormod),
    "__and__": _bool_operator("&", array_ops.logical_and),
    "__rand__": _rev(_bool_operator("&", array_ops.logical_and)),
    "__or__": _bool_operator("|", array_ops.logical_or),
    "__ror__": _rev(_bool_operator("|", array_ops.logical_or)),
    "__xor__": _bool_operator("^", array_ops.logical_xor),
    "__rxor__": _rev(_bool_operator("^", array_ops.logical_xor)),
    "__invert__": _bool_operator("~", array_ops.logical_not),
    "__pow__": _pow, "__rpow__": _rev(array_ops.pow),
}

for _cls in (Tensor, Variable):
    F.install_operators(_cls, OPERATORS)
