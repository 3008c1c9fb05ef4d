"""Elementwise ops as NumPy ufunc calls writing into preallocated arrays.

Numba compiles transcendental functions (``tanh``, ``exp``) to scalar libm calls,
measured here at 10-35 ns per element, while NumPy's SIMD loops take about 1 ns: a
fused region that contains them runs faster as a chain of ufunc calls (about 1 µs of
call overhead each) over scratch buffers than as one generated loop. Regions of plain
arithmetic stay generated kernels (:mod:`kernels.cpu.codegen`), which save memory traffic.

Each primitive declares how (:attr:`flowgraph.primitives.Primitive.ufunc`): a NumPy
ufunc, called ``ufunc(*inputs, out)``, or the name of one of the :data:`COMPOUNDS`
below, for what is not one ufunc call. :func:`bind` makes the call; an op that
declares neither has no ufunc form (:func:`has_ufunc` is false) and the caller runs its
reference kernel instead.

>>> import numpy as np
>>> out = np.empty(2)
>>> bind("Sigmoid", {}, out, [np.array([0.0, 1000.0])])(); out.tolist()
[0.5, 1.0]
"""
from __future__ import annotations

import numpy as np


def _compound(calls=1):
    """Register a compound: ``binder(attrs, out, inputs) -> zero-argument callable``;
    ``calls`` is how many NumPy calls it makes (the CPU backend's cost model)."""
    def deco(binder):
        binder.calls = calls
        COMPOUNDS[binder.__name__.strip("_")] = binder
        return binder
    return deco


COMPOUNDS: dict = {}


@_compound(calls=4)
def _sigmoid(attrs, out, inputs):
    # 1 / (1 + exp(-x)): exp overflows to inf for x < -88 (float32), giving 0 as it
    # should; the plan runs under np.errstate(all="ignore").
    x, = inputs
    negative, exp, add, reciprocal = np.negative, np.exp, np.add, np.reciprocal

    def sigmoid():
        negative(x, out=out)
        exp(out, out=out)
        add(out, 1, out=out)
        reciprocal(out, out=out)
    return sigmoid


@_compound()
def _relu(attrs, out, inputs):
    x, = inputs
    return bind_ufunc(np.maximum, (x, np.zeros((), x.dtype)), out)


@_compound()
def _pow_scalar(attrs, out, inputs):
    x, = inputs
    exponent = attrs["exponent"]
    if exponent == 2:
        return bind_ufunc(np.square, (x,), out)
    return bind_ufunc(np.power, (x, out.dtype.type(exponent)), out)


@_compound()
def _where(attrs, out, inputs):
    c, x, y = inputs
    copyto = np.copyto

    def where():
        copyto(out, y)
        copyto(out, x, where=c)
    return where


@_compound()
def _copy(attrs, out, inputs):
    x, = inputs
    copyto = np.copyto
    return lambda: copyto(out, x, casting="unsafe")


@_compound()
def _zeros(attrs, out, inputs):
    return lambda: out.fill(0)


@_compound()
def _ones(attrs, out, inputs):
    return lambda: out.fill(1)


@_compound()
def _sum(attrs, out, inputs):
    # a fused region's sum (out has the reduced shape)
    from flowgraph.shapes import normalize_axes
    x, = inputs
    axes = tuple(normalize_axes(attrs["axis"], x.ndim))
    kept = out if out.ndim == x.ndim else np.expand_dims(out, axes)   # a view
    total = np.sum
    return lambda: total(x, axis=axes, out=kept, keepdims=True)


def bind_ufunc(ufunc, inputs, out):
    """A zero-argument callable for ``ufunc(*inputs, out=out)``. ``out`` by keyword:
    NumPy 2.4 deprecates a positional third argument to ``np.maximum``/``np.minimum``.

    >>> out = np.zeros(2)
    >>> bind_ufunc(np.maximum, (np.array([1.0, -1.0]), np.zeros(())), out)()
    array([1., 0.])
    """
    if len(inputs) == 1:
        x, = inputs
        return lambda: ufunc(x, out=out)
    if len(inputs) == 2:
        a, b = inputs
        return lambda: ufunc(a, b, out=out)
    return lambda: ufunc(*inputs, out=out)


def declared(op_type):
    """``op_type``'s declared ufunc: a NumPy ufunc, a compound binder, or ``None``."""
    from flowgraph.primitives import find_primitive
    prim = find_primitive(op_type)
    how = None if prim is None else prim.ufunc
    return COMPOUNDS[how] if isinstance(how, str) else how


def has_ufunc(op_type):
    """Can :func:`bind` compute ``op_type`` (a fused region's op) with NumPy calls?"""
    return declared(op_type) is not None


def calls(op_type):
    """How many NumPy calls :func:`bind`'s callable makes for ``op_type``."""
    return getattr(declared(op_type), "calls", 1)


def bind(op_type, attrs, out, inputs):
    """A zero-argument callable computing ``op_type`` into ``out``."""
    how = declared(op_type)
    if how is None:
        raise KeyError(f"{op_type} declares no ufunc")
    if isinstance(how, np.ufunc):
        return bind_ufunc(how, tuple(inputs), out)
    return how(attrs, out, list(inputs))
