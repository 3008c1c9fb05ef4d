"""Elementwise ops as NumPy ufunc calls writing into preallocated arrays.

Numba compiles transcendental functions (``tanh``, ``exp``) to scalar libm calls,
measured here at 10-35 ns per element, while NumPy's SIMD loops take about 1 ns: a
fused region that contains them runs faster as a chain of ufunc calls (about 1 µs of
call overhead each) over scratch buffers than as one generated loop. Regions of plain
arithmetic stay generated kernels (:mod:`kernels.cpu.codegen`), which save memory traffic.

``UFUNCS[op](out, *inputs, **attrs)`` writes the op's result into ``out`` (inputs
broadcast to ``out``'s shape).

>>> import numpy as np
>>> out = np.empty(2)
>>> UFUNCS["Sigmoid"](out, np.array([0.0, 1000.0])); out.tolist()
[0.5, 1.0]
"""
from __future__ import annotations

import numpy as np

from .. import bind_call

TRANSCENDENTAL = frozenset({"Tanh", "Sigmoid", "Exp", "Log"})


def _sigmoid(out, x):
    # 1 / (1 + exp(-x)): exp overflows to inf for x < -88 (float32), giving 0 as it
    # should; the plan runs under np.errstate(all="ignore").
    np.negative(x, out=out)
    np.exp(out, out=out)
    np.add(out, 1, out=out)
    np.reciprocal(out, out=out)


def _pow(out, x, exponent):
    if exponent == 2:
        np.square(x, out=out)
    else:
        np.power(x, out.dtype.type(exponent), out=out)


def _where(out, c, x, y):
    np.copyto(out, y)
    np.copyto(out, x, where=c)


def _copy(out, x, **_):
    np.copyto(out, x, casting="unsafe")


def _fill(value):
    def fill(out, x, **_):
        out.fill(value)
    return fill


def _binary(fn):
    return lambda out, x, y: fn(x, y, out=out)


def _unary(fn):
    return lambda out, x: fn(x, out=out)


UFUNCS = {
    "Neg": _unary(np.negative), "Exp": _unary(np.exp), "Log": _unary(np.log),
    "Tanh": _unary(np.tanh), "Sigmoid": _sigmoid, "Sqrt": _unary(np.sqrt),
    "Abs": _unary(np.absolute), "Sign": _unary(np.sign), "Square": _unary(np.square),
    "Relu": lambda out, x: np.maximum(x, np.zeros((), x.dtype), out=out),
    "Identity": _copy, "StopGradient": _copy, "Copy": _copy, "BroadcastTo": _copy,
    "Cast": _copy, "PowScalar": _pow,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply),
    "Div": _binary(np.true_divide), "Pow": _binary(np.power), "Maximum": _binary(np.maximum),
    "Minimum": _binary(np.minimum), "Less": _binary(np.less),
    "LessEqual": _binary(np.less_equal), "Greater": _binary(np.greater),
    "GreaterEqual": _binary(np.greater_equal), "Equal": _binary(np.equal),
    "NotEqual": _binary(np.not_equal), "Where": _where,
    "ZerosLike": _fill(0), "OnesLike": _fill(1),
}


def has_ufunc(op_type):
    """Can :func:`bind` compute ``op_type`` (a fused region's op) with NumPy calls?"""
    return op_type in UFUNCS or op_type == "ReduceSum"


def bind(op_type, attrs, out, inputs):
    """A zero-argument callable computing ``op_type`` into ``out``."""
    if op_type == "ReduceSum":      # a fused region's sum (out has the reduced shape)
        from flowgraph.shapes import normalize_axes
        x, = inputs
        axes = tuple(normalize_axes(attrs["axis"], x.ndim))
        kept = out if out.ndim == x.ndim else np.expand_dims(out, axes)   # a view
        total = np.sum
        return lambda: total(x, axis=axes, out=kept, keepdims=True)
    fn = UFUNCS[op_type]
    args = (out,) + tuple(inputs)
    if op_type == "PowScalar":
        exponent = attrs["exponent"]
        return lambda: fn(*args, exponent)
    return bind_call(fn, args)
