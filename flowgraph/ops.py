"""Every primitive, declared once: its shape/dtype rule, its gradient rule, its
NumPy reference kernel and the facts the compiler and the backends read about it
(scalar template, ufunc, view, cost...: the fields of
:class:`~flowgraph.primitives.Primitive`), side by side. No pass, plan or backend keeps
a list of op types; an op that declares no fast kernel runs its reference kernel.

The reference kernels are the specification that every compiled and device kernel is
tested against. Gradient rules are written with the same differentiable graph
functions users call (:mod:`flowgraph.api`), so a gradient graph can be differentiated
again to any order. Gradient rules return one entry per input: a tensor, or ``None``
for "no gradient flows here". Gradients of broadcasting ops are returned in the
output's shape; :mod:`flowgraph.autodiff` undoes the broadcast in one place.

>>> get_primitive("Tanh").kind, get_primitive("Tanh").template
('elementwise', 'math.tanh({0})')
"""
from __future__ import annotations

import math
import sys
import weakref

import numpy as np

from . import api as F
from . import array_ops as A
from . import dtypes
from . import shapes as S
from .errors import DTypeError, FlowgraphError, InvalidArgumentError, ShapeError, describe_op

# The registry (flowgraph.primitives); _PRIMITIVES is the same dict.
from .primitives import (  # noqa: F401  (also this module's public names)
    _PRIMITIVES, Primitive, all_primitives, defprim, find_primitive, get_primitive)


# --- shape/dtype rule helpers ----------------------------------------------------------

def _in(op, i=0):
    return op.inputs[i]


def _require_float(op, *tensors):
    for t in tensors:
        if not dtypes.is_floating(t.dtype):
            raise DTypeError(f"expected a float32 or float64 input, found {t.dtype.name} ({t.name})")


def _require_same_dtype(op):
    first = op.inputs[0].dtype
    for t in op.inputs[1:]:
        if t.dtype != first:
            names = ", ".join(f"{x.name}: {x.dtype.name}" for x in op.inputs)
            raise DTypeError(f"expected inputs of one dtype, found {names}")
    return first


def _broadcast_inputs(op):
    try:
        return S.broadcast_shapes(*(t.shape for t in op.inputs))
    except ValueError:
        found = " and ".join(S.fmt(t.shape) for t in op.inputs)
        raise ShapeError(f"expected shapes that broadcast together, found {found}") from None


def unary_infer(float_only=False, out_dtype=None, allow_bool=False):
    def infer(op):
        x = _in(op)
        if float_only:
            _require_float(op, x)
        if x.dtype == dtypes.bool_ and out_dtype is None and not allow_bool:
            raise DTypeError(f"expected a numeric input, found bool ({x.name})")
        return [(x.shape, out_dtype or x.dtype)]
    return infer


def binary_infer(out_dtype=None, allow_bool=False):
    def infer(op):
        dtype = _require_same_dtype(op)
        if dtype == dtypes.bool_ and not allow_bool:
            raise DTypeError(f"expected numeric inputs, found bool ({op.inputs[0].name})")
        result = out_dtype(dtype) if callable(out_dtype) else (out_dtype or dtype)
        return [(_broadcast_inputs(op), result)]
    return infer


def _elementwise_flops(op, in_shapes, out_shapes):
    return int(np.prod(out_shapes[0])) if out_shapes else 0


def _ew(name, infer, grad, ref, default_name=None, **facts):
    """Declare an elementwise primitive (``facts``: see :class:`Primitive`)."""
    defprim(name, infer, grad, ref, "elementwise", default_name, _elementwise_flops, **facts)


_ERF64 = np.vectorize(math.erf, otypes=[np.float64])
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)       # d erf(x) / dx = this * exp(-x**2)


def _erf_ref(x):
    """``erf`` of each element: Python's ``math.erf`` in float64, cast to ``x``'s dtype."""
    x = np.asarray(x)
    return np.asarray(_ERF64(x.astype(np.float64)), dtype=x.dtype)


_ERFC64 = np.vectorize(math.erfc, otypes=[np.float64])


def _erfc_ref(x):
    """``erfc`` of each element: Python's ``math.erfc`` in float64, cast to ``x``'s dtype
    (no cancellation for large ``x``, where ``1 - erf(x)`` would round to 0)."""
    x = np.asarray(x)
    return np.asarray(_ERFC64(x.astype(np.float64)), dtype=x.dtype)


def _unary(name, grad, ref, default_name=None, float_only=False, allow_bool=False, **facts):
    """Declare an elementwise unary primitive: its shape rule follows ``float_only``."""
    _ew(name, unary_infer(float_only, allow_bool=allow_bool), grad, ref, default_name,
        float_only=float_only, **facts)


# --- sources and state -----------------------------------------------------------------

def _no_ref(kind):
    def ref(op, *args):
        raise FlowgraphError(f"{describe_op(op)}: {kind} is evaluated by the session")
    return ref


defprim("Const", lambda op: [(op.attrs["value"].shape, op.attrs["value"].dtype)], None,
        lambda op: op.attrs["value"], "source")
defprim("Placeholder", lambda op: [(op.attrs["shape"], op.attrs["dtype"])], None,
        _no_ref("a placeholder"), "source")
# Variable: the value at the start of the run. ReadVariable: the value after the
# assignments it depends on (v.read_value() inside fg.control_dependencies).
defprim("Variable", lambda op: [(op.attrs["shape"], op.attrs["dtype"])], None,
        _no_ref("a variable"), "state")
defprim("ReadVariable", lambda op: [(op.attrs["shape"], op.attrs["dtype"])], None,
        _no_ref("a variable read"), "state")


def _assign_infer(op):
    var = op.attrs["variable"]
    value = _in(op)
    if value.dtype != var.dtype:
        raise DTypeError(f"expected a value of the variable's dtype {var.dtype.name}, "
                         f"found {value.dtype.name}")
    if value.shape is not None and not S.compatible(var.shape, tuple(
            d if d is not None else (var.shape[i] if var.shape else None)
            for i, d in enumerate(value.shape))):
        raise ShapeError(f"expected a value of the variable's shape {S.fmt(var.shape)}, "
                         f"found {S.fmt(value.shape)}")
    return [(var.shape, var.dtype)]


for _name in ("Assign", "AssignAdd", "AssignSub"):
    defprim(_name, _assign_infer, None, _no_ref("an assignment"), "state", writes_state=True)


def _sparse_rows_sgd_infer(op):
    var = op.attrs["variable"]
    rows, indices, lr = op.inputs
    if rows.dtype != var.dtype or lr.dtype != var.dtype:
        raise DTypeError(f"expected rows and learning rate of the variable's dtype "
                         f"{var.dtype.name}, found {rows.dtype.name} and {lr.dtype.name}")
    if not dtypes.is_integer(indices.dtype):
        raise DTypeError(f"expected integer indices, found {indices.dtype.name}")
    if rows.shape is not None and indices.shape is not None and var.shape is not None:
        want = tuple(indices.shape) + tuple(var.shape[1:])
        if not S.compatible(want, rows.shape):
            raise ShapeError(f"expected rows of shape {S.fmt(want)} (indices + a row of "
                             f"the variable), found {S.fmt(rows.shape)}")
    return [(var.shape, var.dtype)]


# SparseRowsSGD(rows, indices, lr): var -= lr * GatherGrad(rows, indices, var), only
# the rows used touched (duplicates summed first): GradientDescent's embedding update.
defprim("SparseRowsSGD", _sparse_rows_sgd_infer, None, _no_ref("an assignment"), "state",
        writes_state=True)
defprim("NoOp", lambda op: [], None, lambda op, *a: (), "control")
# InitVariables: reset `attrs["variables"]` to their initial values.
defprim("InitVariables", lambda op: [], None, _no_ref("an initializer"), "state",
        writes_state=True, every_rank=True)


# --- elementwise unary -----------------------------------------------------------------

def _sigmoid(x):
    with np.errstate(over="ignore"):
        return np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)


# Per element in a generated CPU loop (float64, float32): libm calls, 12-33 ns; the
# float32 exp, tanh and sigmoid of kernels.cpu.vmath vectorize: 0.8, 1.3 and 0.9 ns
# per element (a 128x128 loop, AMD EPYC core, AVX-512, degree-7 exp). The 2.5-4 ns
# declared before sent the 128x128 LSTM cell of benchmarks/programs.py's rows to an
# 18-call ufunc chain: 4.4 ms per step against 3.2 ms as a loop (step_profile.py
# --program rows, same core, 2026-12-02). Declared with some margin; the float32
# arithmetic vmath computes in since is faster still (an LSTM cell's loop 2.4x, AVX2).
# ``ufunc_ns``: NumPy's own loops for these beyond a plain ufunc's 0.2-0.6 ns, where it
# has no AVX-512 SIMD version (NumPy 2.4, one AVX2 core of the 2-vCPU AMD EPYC, 64K
# elements, CPU time): float32 tanh 3.0-4.6 ns, exp 1.5-2.6, log 2.2-2.7, log1p 19.7;
# float64 tanh 20-21, exp 9-10.6, log 9.3-11, log1p 20. With the 0.6 ns assumed before
# for every call, an RNN's float32 cell (tanh(z + b) and 1 - tanh**2) was a 4-call
# ufunc chain at 7 ns per element; as a loop the step ran 13-19% faster (medium).
_unary("Neg", lambda op, g: [-g], lambda op, x: np.negative(x), "neg",
       template="(-{0})", ufunc=np.negative, exact=True, cheap=True)
_unary("Exp", lambda op, g: [g * op.outputs[0]], lambda op, x: np.exp(x), float_only=True,
       template="math.exp({0})", template_f32="vmath.exp({0})", ufunc=np.exp,
       cost_ns=(12.0, 1.0), ufunc_ns=(9.7, 1.0))
_unary("Log", lambda op, g: [g / _in(op)], lambda op, x: np.log(x), float_only=True,
       template="math.log({0})", ufunc=np.log, cost_ns=(12.0, 12.0), ufunc_ns=(10.0, 1.6))
_unary("Log1p", lambda op, g: [g / (1.0 + _in(op))], lambda op, x: np.log1p(x),
       "log1p", float_only=True, template="math.log1p({0})", ufunc=np.log1p,
       cost_ns=(12.0, 12.0), ufunc_ns=(19.0, 19.0))
_unary("Tanh", lambda op, g: [g * (1.0 - F.square(op.outputs[0]))],
       lambda op, x: np.tanh(x), float_only=True, template="math.tanh({0})",
       template_f32="vmath.tanh({0})", ufunc=np.tanh, cost_ns=(33.0, 1.6),
       ufunc_ns=(20.0, 2.4))
# Sin and Cos (TF1's tf.sin, tf.cos): libm in generated CPU loops for both float types
# (no vmath version). Measured 2026-12-03, one Zen 4 core of the 2-vCPU AMD EPYC, 16K
# elements in [-3, 3], medians of 30 calls (a @njit loop of math.sin, against np.sin
# with out=; the same loop of math.exp took 4.3 and 2.3 ns, below Exp's declared
# figures, measured in generated loops): loop float64 sin 9.7, cos 8.5 ns; float32
# 4.3 ns each. NumPy's own loops:
# float64 8.7 ns (no SIMD version), float32 0.55 ns (AVX-512), a plain add 0.12-0.18.
# So a float32 sin or cos is cheaper as a ufunc call, and the cost model may say so.
# (backends.cpu_steps.uses_ufuncs adds ufunc_ns only where NumPy lacks AVX-512, so on
# this machine it takes float64 np.sin for a plain 0.6 ns ufunc: it may pick a chain
# for a large float64 sin region where the loop and the chain cost about the same.)
# Gradients are graph ops (cos, -sin), so they differentiate again.
_unary("Sin", lambda op, g: [g * F.cos(_in(op))], lambda op, x: np.sin(x), "sin",
       float_only=True, template="math.sin({0})", ufunc=np.sin, cost_ns=(10.0, 4.5),
       ufunc_ns=(8.5, 0.4))
_unary("Cos", lambda op, g: [-(g * F.sin(_in(op)))], lambda op, x: np.cos(x), "cos",
       float_only=True, template="math.cos({0})", ufunc=np.cos, cost_ns=(9.0, 4.5),
       ufunc_ns=(8.5, 0.4))
# Erf (TF1's tf.erf). NumPy has no erf ufunc (and SciPy is not a dependency), so the
# reference is Python's math.erf (libm's erf) on each element in float64, rounded to the
# input's dtype: that is the specification. No ufunc: a fused region
# holding it is always a generated loop (libm erf on the CPU, CUDA's erf/erff on a GPU),
# and before that loop compiles the region runs this reference kernel. Gradient
# 2/sqrt(pi) * exp(-x**2) * g, graph ops, so it differentiates again. cost_ns measured
# 2026-12-03, one Zen 4 core of the 2-vCPU AMD EPYC, 16K elements in [-3, 3], medians
# of 30, two runs (a Numba loop of math.erf): float64 11.0-15.6 ns, float32 10.6-10.9
# ns (within 1 ulp of the reference), a plain add 0.1-0.2 ns. (The cost model reads
# cost_ns only for regions whose every op has a ufunc, so today it is informational.)
_unary("Erf", lambda op, g: [g * (_TWO_OVER_SQRT_PI * F.exp(-F.square(_in(op))))],
       lambda op, x: _erf_ref(x), "erf", float_only=True, template="math.erf({0})",
       cost_ns=(12.0, 10.5))
# TF1's tf.tan, atan, asin, acos, sinh, cosh, asinh, atanh, acosh, expm1 (tf.math.*)
# and tf.atan2: float only, libm in generated CPU loops and CUDA's math on a GPU (no
# vmath version), NumPy's ufunc as reference and in ufunc chains. Gradients are TF1's
# (math_grad.py), written with graph ops so they differentiate again. Outside an
# inverse function's domain the value is NaN, as NumPy's and TF1's. cost_ns: a @njit
# loop of the math function, ufunc_ns: the NumPy ufunc with out=, 16K elements over
# each function's domain, medians of 30, one Zen 4 core of the 2-vCPU AMD EPYC,
# 2026-12-03 (sin in the same run: loop 9.8/2.4 ns, ufunc 9.8/0.55). This NumPy has
# AVX-512 versions of all of these (float64 too, unlike sin), so ufunc_ns are those
# figures, a lower bound for a machine without AVX-512.
def _inv_sqrt_one_minus_square(x):
    return 1.0 / F.sqrt(1.0 - F.square(x))


_unary("Tan", lambda op, g: [g * (1.0 + F.square(op.outputs[0]))],
       lambda op, x: np.tan(x), "tan", float_only=True, template="math.tan({0})",
       ufunc=np.tan, cost_ns=(9.5, 9.0), ufunc_ns=(3.8, 0.4))
_unary("Atan", lambda op, g: [g / (1.0 + F.square(_in(op)))],
       lambda op, x: np.arctan(x), "atan", float_only=True, template="math.atan({0})",
       ufunc=np.arctan, cost_ns=(10.5, 5.5), ufunc_ns=(1.5, 0.4))
_unary("Asin", lambda op, g: [g * _inv_sqrt_one_minus_square(_in(op))],
       lambda op, x: np.arcsin(x), "asin", float_only=True, template="math.asin({0})",
       ufunc=np.arcsin, cost_ns=(4.0, 4.0), ufunc_ns=(1.3, 0.4))
_unary("Acos", lambda op, g: [-(g * _inv_sqrt_one_minus_square(_in(op)))],
       lambda op, x: np.arccos(x), "acos", float_only=True, template="math.acos({0})",
       ufunc=np.arccos, cost_ns=(4.5, 6.7), ufunc_ns=(1.6, 0.6))
_unary("Sinh", lambda op, g: [g * F.cosh(_in(op))], lambda op, x: np.sinh(x), "sinh",
       float_only=True, template="math.sinh({0})", ufunc=np.sinh, cost_ns=(19.2, 20.6),
       ufunc_ns=(1.6, 0.5))
_unary("Cosh", lambda op, g: [g * F.sinh(_in(op))], lambda op, x: np.cosh(x), "cosh",
       float_only=True, template="math.cosh({0})", ufunc=np.cosh, cost_ns=(6.0, 5.6),
       ufunc_ns=(0.9, 0.5))
# TF1: asinh' = 1 / cosh(y), acosh' = 1 / sinh(y) (y the output), atanh' = 1 / (1 - x**2)
_unary("Asinh", lambda op, g: [g / F.cosh(op.outputs[0])], lambda op, x: np.arcsinh(x),
       "asinh", float_only=True, template="math.asinh({0})", ufunc=np.arcsinh,
       cost_ns=(14.7, 15.5), ufunc_ns=(2.1, 1.0))
_unary("Acosh", lambda op, g: [g / F.sinh(op.outputs[0])], lambda op, x: np.arccosh(x),
       "acosh", float_only=True, template="math.acosh({0})", ufunc=np.arccosh,
       cost_ns=(7.0, 6.5), ufunc_ns=(5.9, 0.7))
_unary("Atanh", lambda op, g: [g / (1.0 - F.square(_in(op)))], lambda op, x: np.arctanh(x),
       "atanh", float_only=True, template="math.atanh({0})", ufunc=np.arctanh,
       cost_ns=(14.5, 10.5), ufunc_ns=(1.9, 0.7))
_unary("Expm1", lambda op, g: [g * F.exp(_in(op))], lambda op, x: np.expm1(x), "expm1",
       float_only=True, template="math.expm1({0})", ufunc=np.expm1, cost_ns=(6.3, 8.0),
       ufunc_ns=(1.2, 0.4))
# Erfc (TF1's tf.math.erfc): Erf's conventions (libm's erfc, reference math.erfc in
# float64, no ufunc). cost_ns measured as Erf's, same run (erf 10.6/10.3 ns): a Numba
# loop of math.erfc 10.4 ns in float64 and float32. Gradient -2/sqrt(pi) exp(-x**2).
_unary("Erfc", lambda op, g: [-(g * (_TWO_OVER_SQRT_PI * F.exp(-F.square(_in(op)))))],
       lambda op, x: _erfc_ref(x), "erfc", float_only=True, template="math.erfc({0})",
       cost_ns=(10.5, 10.5))
# exp(-logaddexp(0, -x)) without overflow, as the reference computes it.
_unary("Sigmoid", lambda op, g: [g * op.outputs[0] * (1.0 - op.outputs[0])],
       lambda op, x: _sigmoid(x), float_only=True,
       template="(1.0 / (1.0 + math.exp(-{0})) if {0} >= 0 else "
                "math.exp({0}) / (1.0 + math.exp({0})))",
       template_f32="vmath.sigmoid({0})", ufunc="sigmoid", cost_ns=(12.0, 1.2),
       ufunc_ns=(9.7, 1.0))
# +0 for negatives and -inf (np.maximum(x, 0) does not give -0.0), NaN passes through
_unary("Relu", lambda op, g: [F.where(_in(op) > 0, g, F.zeros_like(g))],
       lambda op, x: np.maximum(x, np.zeros((), x.dtype)),
       template="({0} if {0} > 0 else ({0} if {0} != {0} else 0))", ufunc="relu")
_unary("Sqrt", lambda op, g: [g / (2.0 * op.outputs[0])], lambda op, x: np.sqrt(x),
       float_only=True, template="math.sqrt({0})", ufunc=np.sqrt)
_unary("Abs", lambda op, g: [g * F.sign(_in(op))], lambda op, x: np.abs(x),
       template="abs({0})", ufunc=np.absolute, exact=True)
# NaN and -0.0 pass through, as np.sign (valid on numba.cuda and its simulator too).
_unary("Sign", lambda op, g: [None], lambda op, x: np.sign(x),
       template="(1 if {0} > 0 else (-1 if {0} < 0 else {0} * 0))", ufunc=np.sign)
# Floor, Ceil and Round (half to even, as np.rint and TF1's tf.round): no gradient, as
# TF1. Not math.floor, which Numba types as an int64 (floor(inf) would be -2**63), nor
# math.fmod (not in Numba's CPU math): below 2**52 in magnitude, int(x) truncates
# exactly (beyond, every float is an integer and passes through, as do inf and NaN),
# and copysign keeps the sign of x on the result (np.ceil(-0.3) is -0.0).
_BIG = "4503599627370496.0"       # 2**52


def _integral(expr):
    return (f"({{0}} if not (abs({{0}}) < {_BIG}) else "
            f"math.copysign({expr}, {{0}}))")


_TRUNC = "(int({0}) * 1.0)"
_FLOOR = f"({_TRUNC} - (1.0 if {{0}} < {_TRUNC} else 0.0))"
_unary("Floor", lambda op, g: [None], lambda op, x: np.floor(x), float_only=True,
       template=_integral(_FLOOR), ufunc=np.floor)
_unary("Ceil", lambda op, g: [None], lambda op, x: np.ceil(x), float_only=True,
       template=_integral(f"({_TRUNC} + (1.0 if {{0}} > {_TRUNC} else 0.0))"),
       ufunc=np.ceil)
# round: the floor, plus one above the half, or at the half when the floor is odd
_unary("Round", lambda op, g: [None], lambda op, x: np.rint(x), float_only=True,
       template=_integral(f"({_FLOOR} + (1.0 if ({{0}} - {_FLOOR} > 0.5 or ({{0}} - "
                          f"{_FLOOR} == 0.5 and (int({_FLOOR}) & 1) != 0)) else 0.0))"),
       ufunc=np.rint)
_unary("Square", lambda op, g: [g * (2.0 * _in(op))], lambda op, x: np.square(x),
       template="({0} * {0})", ufunc=np.square, exact=True, cheap=True)
_unary("Identity", lambda op, g: [g], lambda op, x: x, allow_bool=True,
       template="{0}", ufunc="copy", exact=True, alias=True)
_unary("StopGradient", lambda op, g: [None], lambda op, x: x, allow_bool=True,
       template="{0}", ufunc="copy", exact=True, alias=True)


def _pow_grad(op, g):
    p = op.attrs["exponent"]
    if p == 0:
        return [None]
    if p == 1:
        return [g]
    return [g * (p * F.pow_scalar(_in(op), p - 1))]


def _pow_ref(op, x):
    p = op.attrs["exponent"]
    if p == 2:
        return np.square(x)
    with np.errstate(all="ignore"):
        return np.power(x, x.dtype.type(p))


_ew("PowScalar", unary_infer(), _pow_grad, _pow_ref, "pow", template="({0} ** {exponent})",
    ufunc="pow_scalar")


def _cast_infer(op):
    return [(_in(op).shape, op.attrs["dtype"])]


def _cast_grad(op, g):
    src = _in(op).dtype
    if dtypes.is_floating(src) and dtypes.is_floating(op.attrs["dtype"]):
        return [F.cast(g, src)]
    return [None]


# (template: the store into the typed output converts)
_ew("Cast", _cast_infer, _cast_grad, lambda op, x: x.astype(op.attrs["dtype"]),
    template="{0}", ufunc="copy", exact=True)


def _fill_infer(op):
    return [(_in(op).shape, op.attrs.get("dtype", _in(op).dtype))]


defprim("ZerosLike", _fill_infer, None,
        lambda op, x: np.zeros(x.shape, op.attrs.get("dtype", x.dtype)), "elementwise",
        template="0", ufunc="zeros", shape_only=True)
defprim("OnesLike", _fill_infer, None,
        lambda op, x: np.ones(x.shape, op.attrs.get("dtype", x.dtype)), "elementwise",
        template="1", ufunc="ones", shape_only=True)


# --- elementwise binary ----------------------------------------------------------------

def _div_dtype(dtype):
    return dtype if dtypes.is_floating(dtype) else dtypes.float64


def _div_ref(op, x, y):
    if dtypes.is_integer(x.dtype) and np.any(y == 0):
        raise InvalidArgumentError("integer division by zero")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


def _div_grad(op, g):
    x, y = op.inputs
    if not dtypes.is_floating(x.dtype):
        return [None, None]
    return [g / y, -(g * op.outputs[0]) / y]


_ew("Add", binary_infer(), lambda op, g: [g, g], lambda op, x, y: np.add(x, y),
    template="({0} + {1})", ufunc=np.add, exact=True, cheap=True, commutative=True)
_ew("Sub", binary_infer(), lambda op, g: [g, -g], lambda op, x, y: np.subtract(x, y),
    template="({0} - {1})", ufunc=np.subtract, exact=True, cheap=True)
_ew("Mul", binary_infer(), lambda op, g: [g * op.inputs[1], g * op.inputs[0]],
    lambda op, x, y: np.multiply(x, y),
    template="({0} * {1})", ufunc=np.multiply, exact=True, cheap=True, commutative=True)
_ew("Div", binary_infer(_div_dtype), _div_grad, _div_ref,
    template="({0} / {1})", ufunc=np.true_divide, exact=True, int_div=True)


def _atan2_infer(op):
    dtype = _require_same_dtype(op)
    _require_float(op, *op.inputs)
    return [(_broadcast_inputs(op), dtype)]


def _atan2_grad(op, g):
    """TF1's: d/dy = x / (x**2 + y**2), d/dx = -y / (x**2 + y**2)."""
    y, x = op.inputs
    scaled = g / (F.square(x) + F.square(y))
    return [x * scaled, -(y * scaled)]


# Atan2(y, x) (TF1's tf.atan2, y first): the angle of (x, y), float only
_ew("Atan2", _atan2_infer, _atan2_grad, lambda op, y, x: np.arctan2(y, x), "atan2",
    template="math.atan2({0}, {1})", ufunc=np.arctan2, float_only=True,
    cost_ns=(13.6, 10.3), ufunc_ns=(2.2, 0.6))


def _minmax_grad(take_x_when):
    def grad(op, g):
        x, y = op.inputs
        zeros = F.zeros_like(g)
        mask = take_x_when(x, y)
        return [F.where(mask, g, zeros), F.where(mask, zeros, g)]
    return grad


# NaN-propagating like np.maximum / np.minimum (Python's max would drop a NaN). Not
# commutative: the operands' order decides the sign of a zero result.
_ew("Maximum", binary_infer(), _minmax_grad(lambda x, y: x >= y),
    lambda op, x, y: np.maximum(x, y),
    template="({0} if ({0} >= {1} or {0} != {0}) else {1})", ufunc=np.maximum, exact=True)
_ew("Minimum", binary_infer(), _minmax_grad(lambda x, y: x <= y),
    lambda op, x, y: np.minimum(x, y),
    template="({0} if ({0} <= {1} or {0} != {0}) else {1})", ufunc=np.minimum, exact=True)

for _name, _fn, _symbol in (("Less", np.less, "<"), ("LessEqual", np.less_equal, "<="),
                            ("Greater", np.greater, ">"),
                            ("GreaterEqual", np.greater_equal, ">="),
                            ("Equal", np.equal, "=="), ("NotEqual", np.not_equal, "!=")):
    _ew(_name, binary_infer(dtypes.bool_, allow_bool=_name in ("Equal", "NotEqual")), None,
        (lambda fn: lambda op, x, y: fn(x, y))(_fn),
        template=f"({{0}} {_symbol} {{1}})", ufunc=_fn)


def _where_infer(op):
    cond, x, y = op.inputs
    if cond.dtype != dtypes.bool_:
        raise DTypeError(f"expected a bool condition, found {cond.dtype.name} ({cond.name})")
    if x.dtype != y.dtype:
        raise DTypeError(f"expected both branches of one dtype, found {x.dtype.name} and "
                         f"{y.dtype.name}")
    return [(_broadcast_inputs(op), x.dtype)]


def _where_grad(op, g):
    cond = op.inputs[0]
    zeros = F.zeros_like(g)
    return [None, F.where(cond, g, zeros), F.where(cond, zeros, g)]


_ew("Where", _where_infer, _where_grad, lambda op, c, x, y: np.where(c, x, y),
    template="({1} if {0} else {2})", ufunc="where")


# --- broadcasting helpers used by autodiff ---------------------------------------------

def _like_infer(op):
    x, like = op.inputs
    return [(like.shape, x.dtype)]


def _sum_like_ref(op, x, like):
    """Sum ``x`` down to ``like``'s shape: undo NumPy broadcasting."""
    target = like.shape
    lead = x.ndim - len(target)
    if lead < 0:
        raise ShapeError(f"cannot reduce shape {x.shape} to {target}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(target) if d == 1 and x.shape[lead + i] != 1)
    out = np.sum(x, axis=axes, keepdims=True) if axes else x
    return out.reshape(target)


defprim("BroadcastLike", _like_infer,
        lambda op, g: [F.sum_like(g, _in(op)), None],
        lambda op, x, like: np.broadcast_to(x, like.shape).copy(), "shape")
defprim("SumLike", _like_infer,
        lambda op, g: [F.broadcast_like(g, _in(op)), None], _sum_like_ref, "reduction")


# --- matmul ----------------------------------------------------------------------------

def _mt(shape, transposed):
    return shape[:-2] + (shape[-1], shape[-2]) if transposed else shape


def _matmul_infer(op):
    a, b = op.inputs
    dtype = _require_same_dtype(op)
    if dtype == dtypes.bool_:
        raise DTypeError("expected numeric inputs, found bool")
    if a.shape is None or b.shape is None:
        return [(None, dtype)]
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ShapeError(f"expected inputs of rank 2 or more, found shapes "
                         f"{S.fmt(a.shape)} and {S.fmt(b.shape)}")
    sa = _mt(a.shape, op.attrs["transpose_a"])
    sb = _mt(b.shape, op.attrs["transpose_b"])
    if sa[-1] is not None and sb[-2] is not None and sa[-1] != sb[-2]:
        raise ShapeError(
            f"expected the inner dimensions to agree, found {S.fmt(a.shape)} @ "
            f"{S.fmt(b.shape)} (transpose_a={op.attrs['transpose_a']}, "
            f"transpose_b={op.attrs['transpose_b']}): {sa[-1]} != {sb[-2]}")
    try:
        batch = S.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError as exc:
        raise ShapeError(f"expected batch dimensions that broadcast, found "
                         f"{S.fmt(a.shape)} and {S.fmt(b.shape)}: {exc}") from None
    return [(batch + (sa[-2], sb[-1]), dtype)]


def _matmul_ref(op, a, b):
    if op.attrs["transpose_a"]:
        a = np.swapaxes(a, -1, -2)
    if op.attrs["transpose_b"]:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def _matmul_grad(op, g):
    a, b = op.inputs
    ta, tb = op.attrs["transpose_a"], op.attrs["transpose_b"]
    mm = F.matmul
    if not ta and not tb:
        return [mm(g, b, transpose_b=True), mm(a, g, transpose_a=True)]
    if not ta and tb:
        return [mm(g, b), mm(g, a, transpose_a=True)]
    if ta and not tb:
        return [mm(b, g, transpose_b=True), mm(a, g)]
    return [mm(b, g, transpose_a=True, transpose_b=True),
            mm(g, a, transpose_a=True, transpose_b=True)]


def _matmul_flops(op, in_shapes, out_shapes):
    a = in_shapes[0]
    k = a[-2] if op.attrs["transpose_a"] else a[-1]
    return 2 * int(np.prod(out_shapes[0])) * int(k)


defprim("MatMul", _matmul_infer, _matmul_grad, _matmul_ref, "matmul", "matmul", _matmul_flops,
        step_kind="gemm")


# --- shape manipulation ----------------------------------------------------------------

def _transpose_infer(op):
    x = _in(op)
    perm = op.attrs["perm"]
    if x.shape is None:
        return [(None, x.dtype)]
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError(f"expected a permutation of {list(range(len(x.shape)))}, found "
                         f"{list(perm)} for shape {S.fmt(x.shape)}")
    return [(tuple(x.shape[p] for p in perm), x.dtype)]


defprim("Transpose", _transpose_infer,
        lambda op, g: [F.transpose(g, list(np.argsort(op.attrs["perm"])))],
        lambda op, x: np.transpose(x, op.attrs["perm"]), "shape", view=True)


def _reshape_infer(op):
    x = _in(op)
    target = list(op.attrs["shape"])
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1:
        raise ShapeError(f"expected at most one -1 in the new shape, found {target}")
    n = S.num_elements(x.shape)
    known = int(np.prod([d for d in target if d != -1]))
    if unknown:
        if n is not None:
            if known == 0 or n % known:
                raise ShapeError(f"cannot reshape {S.fmt(x.shape)} ({n} elements) into "
                                 f"{tuple(op.attrs['shape'])}")
            target[unknown[0]] = n // known
        else:
            target[unknown[0]] = None
    elif n is not None and n != known:
        raise ShapeError(f"cannot reshape {S.fmt(x.shape)} ({n} elements) into "
                         f"{tuple(target)} ({known} elements)")
    return [(tuple(target), x.dtype)]


def _reshape_ref(op, x):
    try:
        return x.reshape(op.attrs["shape"])
    except ValueError:
        raise ShapeError(f"cannot reshape an array of shape {x.shape} ({x.size} elements) "
                         f"into {tuple(op.attrs['shape'])}") from None


# (a view; where it cannot be one, a copy step)
defprim("Reshape", _reshape_infer, lambda op, g: [F.reshape_like(g, _in(op))],
        _reshape_ref, "shape", view=True, step_kind="copy")
defprim("ReshapeLike", _like_infer, lambda op, g: [F.reshape_like(g, _in(op)), None],
        lambda op, x, like: x.reshape(like.shape), "shape")


def _reshape_to_infer(op):
    x, shape = op.inputs
    if not dtypes.is_integer(shape.dtype):
        raise DTypeError(f"expected an integer shape, found {shape.dtype.name}")
    if shape.shape is not None and len(shape.shape) != 1:
        raise ShapeError(f"expected a 1-d shape, found a shape tensor of shape "
                         f"{S.fmt(shape.shape)}")
    known = static_value(shape)
    if known is not None:
        return _reshape_infer(_StaticReshape(x, known))
    hint = op.attrs.get("hint")
    if hint is not None:           # the entries given as ints (flowgraph.api.reshape)
        return [(tuple(hint), x.dtype)]
    if shape.shape is None or shape.shape[0] is None:
        return [(None, x.dtype)]
    return [((None,) * shape.shape[0], x.dtype)]


class _StaticReshape:
    """A ``Reshape`` op's view of a ``ReshapeTo`` whose shape is known."""

    def __init__(self, x, shape):
        self.inputs, self.attrs = [x], {"shape": tuple(int(d) for d in shape)}


def _reshape_to_ref(op, x, shape):
    shape = np.asarray(shape)
    if shape.ndim != 1:
        raise InvalidArgumentError(f"expected a 1-d shape, found {shape.tolist()}")
    return _reshape_ref(_StaticReshape(x, shape), x)


# ReshapeTo(x, shape): tf.reshape with a shape tensor (a run-time batch size, say).
# Once the compiler knows the shape's value (from the feed shapes), simplify makes it
# a plain Reshape; a shape known only from data runs on the reference path.
defprim("ReshapeTo", _reshape_to_infer, lambda op, g: [F.reshape_like(g, _in(op)), None],
        _reshape_to_ref, "shape")


def _expand_dims_infer(op):
    x = _in(op)
    if x.shape is None:
        return [(None, x.dtype)]
    axis = S.normalize_axis(op.attrs["axis"], len(x.shape) + 1)
    return [(x.shape[:axis] + (1,) + x.shape[axis:], x.dtype)]


def _squeeze_infer(op):
    x = _in(op)
    if x.shape is None:
        return [(None, x.dtype)]
    axes = S.normalize_axes(op.attrs["axis"], len(x.shape))
    for a in axes:
        if x.shape[a] not in (1, None):
            raise ShapeError(f"expected dimension {a} of size 1, found {S.fmt(x.shape)}")
    return [(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)]


def _squeeze_ref(op, x):
    axes = S.normalize_axes(op.attrs["axis"], x.ndim)
    if any(x.shape[a] != 1 for a in axes):
        raise ShapeError(f"expected size 1 along axes {axes}, found shape {x.shape}")
    return np.squeeze(x, axis=axes)


defprim("ExpandDims", _expand_dims_infer,
        lambda op, g: [F.reshape_like(g, _in(op))],
        lambda op, x: np.expand_dims(x, op.attrs["axis"]), "shape")
defprim("Squeeze", _squeeze_infer, lambda op, g: [F.reshape_like(g, _in(op))], _squeeze_ref,
        "shape")


# --- reductions ------------------------------------------------------------------------

def _reduce_infer(op):
    x = _in(op)
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric input, found bool ({x.name})")
    if x.shape is None:
        return [(None, x.dtype)]
    axes = S.normalize_axes(op.attrs["axis"], len(x.shape))
    if op.attrs["keepdims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return [(shape, x.dtype)]


def _keepdims_grad(op, g):
    """``g`` with the reduced axes restored as size-1 dimensions."""
    if op.attrs["keepdims"]:
        return g
    x = _in(op)
    if x.shape is None:
        if op.attrs["axis"] is None:
            return g  # a scalar: it broadcasts as it is
        # Unknown rank: the reduced positions are known only at run time, so take the
        # keepdims shape from a keepdims reduction of the input.
        return F.reshape_like(g, F.reduce_sum(F.stop_gradient(x), op.attrs["axis"],
                                              keepdims=True))
    axes = S.normalize_axes(op.attrs["axis"], len(x.shape))
    for a in axes:
        g = F.expand_dims(g, a)
    return g


def _reduce_sum_grad(op, g):
    return [F.broadcast_like(_keepdims_grad(op, g), _in(op))]


def _reduce_max_grad(op, g):
    x = _in(op)
    y = _keepdims_grad(op, op.outputs[0])
    mask = F.cast(F.equal(x, F.broadcast_like(y, x)), x.dtype)
    count = F.reduce_sum(mask, op.attrs["axis"], keepdims=True)
    return [mask / count * F.broadcast_like(_keepdims_grad(op, g), x)]


def _reduce_ref(fn):
    def ref(op, x):
        axes = S.normalize_axes(op.attrs["axis"], x.ndim)
        if fn is np.max and any(x.shape[a] == 0 for a in axes):
            raise InvalidArgumentError(f"reduce_max over an empty axis (input shape {x.shape})")
        return np.asarray(fn(x, axis=axes, keepdims=op.attrs["keepdims"]), dtype=x.dtype)
    return ref


def _reduce_flops(op, in_shapes, out_shapes):
    return int(np.prod(in_shapes[0]))


defprim("ReduceSum", _reduce_infer, _reduce_sum_grad, _reduce_ref(np.sum), "reduction",
        "sum", _reduce_flops, ufunc="sum")
defprim("ReduceMax", _reduce_infer, _reduce_max_grad, _reduce_ref(np.max), "reduction",
        "max", _reduce_flops)


def _size_infer(op):
    x = _in(op)
    if x.shape is not None:
        S.normalize_axes(op.attrs["axis"], len(x.shape))
    return [((), op.attrs["dtype"])]


def _size_ref(op, x):
    axes = S.normalize_axes(op.attrs["axis"], x.ndim)
    return np.asarray(int(np.prod([x.shape[a] for a in axes])), dtype=op.attrs["dtype"])


# Size: the number of elements along some axes, known only at run time for unknown
# dimensions. reduce_mean divides by it.
defprim("Size", _size_infer, None, _size_ref, "shape", shape_only=True)


# --- concat / split / slicing ----------------------------------------------------------

def _concat_infer(op):
    dtype = _require_same_dtype(op)
    if any(t.shape is None for t in op.inputs):
        return [(None, dtype)]
    rank = len(op.inputs[0].shape)
    if any(len(t.shape) != rank for t in op.inputs):
        found = ", ".join(S.fmt(t.shape) for t in op.inputs)
        raise ShapeError(f"expected inputs of one rank, found {found}")
    axis = S.normalize_axis(op.attrs["axis"], rank)
    out = []
    for i in range(rank):
        dims = [t.shape[i] for t in op.inputs]
        if i == axis:
            out.append(None if None in dims else sum(dims))
        else:
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                found = ", ".join(S.fmt(t.shape) for t in op.inputs)
                raise ShapeError(f"expected equal sizes except along axis {axis}, found {found}")
            out.append(known.pop() if known else None)
    return [(tuple(out), dtype)]


def _concat_ref(op, *xs):
    try:
        return np.concatenate(xs, axis=op.attrs["axis"])
    except ValueError:
        raise ShapeError("expected equal sizes except along axis "
                         f"{op.attrs['axis']}, found {[x.shape for x in xs]}") from None


defprim("Concat", _concat_infer,
        lambda op, g: list(F.split_like(g, list(op.inputs), op.attrs["axis"])),
        _concat_ref, "shape", "concat", step_kind="copy")


def _split_like_infer(op):
    g, likes = op.inputs[0], op.inputs[1:]
    if g.shape is None:
        return [(t.shape, g.dtype) for t in likes]
    axis = S.normalize_axis(op.attrs["axis"], len(g.shape))
    return [(tuple((t.shape[i] if t.shape is not None else None) if i == axis else d
                   for i, d in enumerate(g.shape)), g.dtype) for t in likes]


def _split_like_ref(op, g, *likes):
    axis = op.attrs["axis"]
    bounds = np.cumsum([t.shape[axis] for t in likes])[:-1]
    return tuple(np.split(g, bounds, axis=axis))


def _concat_of_grads(op, *gs):
    """Gradient of a split: the output grads concatenated, zeros where none flowed."""
    parts = [g if g is not None else F.zeros_like(out) for g, out in zip(gs, op.outputs)]
    return F.concat(parts, op.attrs["axis"])


# SplitLike(g, *likes): g cut along `axis` into pieces the sizes of `likes` (the
# gradient of Concat, valid for unknown dimensions too).
defprim("SplitLike", _split_like_infer,
        lambda op, *gs: [_concat_of_grads(op, *gs)] + [None] * (len(op.inputs) - 1),
        _split_like_ref, "shape", view=True)


def _split_infer(op):
    x = _in(op)
    sizes = op.attrs["sizes"]
    if x.shape is None:
        return [(None, x.dtype) for _ in sizes]
    axis = S.normalize_axis(op.attrs["axis"], len(x.shape))
    if x.shape[axis] is not None and sum(sizes) != x.shape[axis]:
        raise ShapeError(f"expected sizes {list(sizes)} to add up to dimension {axis} of "
                         f"{S.fmt(x.shape)}, found a sum of {sum(sizes)}")
    return [(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]


def _split_ref(op, x):
    sizes, axis = op.attrs["sizes"], op.attrs["axis"]
    if sum(sizes) != x.shape[axis]:
        raise ShapeError(f"expected sizes {list(sizes)} to add up to dimension {axis} of "
                         f"shape {x.shape}, found a sum of {sum(sizes)}")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


defprim("Split", _split_infer, lambda op, *gs: [_concat_of_grads(op, *gs)], _split_ref,
        "shape", view=True)


def slice_spec_to_index(spec):
    """The NumPy index tuple for a normalized StridedSlice spec."""
    out = []
    for entry in spec:
        if entry[0] == "slice":
            out.append(slice(*entry[1:]))
        elif entry[0] == "index":
            out.append(entry[1])
        elif entry[0] == "newaxis":
            out.append(None)
        else:
            out.append(Ellipsis)
    return tuple(out)


def _strided_slice_infer(op):
    x = _in(op)
    spec = op.attrs["spec"]
    if x.shape is None:
        return [(None, x.dtype)]
    consumed = sum(1 for e in spec if e[0] in ("slice", "index"))
    if consumed > len(x.shape):
        raise ShapeError(f"expected at most {len(x.shape)} indices for shape "
                         f"{S.fmt(x.shape)}, found {consumed}")
    entries = list(spec)
    if not any(e[0] == "ellipsis" for e in entries):
        entries.append(("ellipsis",))
    out, dim = [], 0
    for e in entries:
        if e[0] == "ellipsis":
            n = len(x.shape) - consumed
            out.extend(x.shape[dim:dim + n])
            dim += n
        elif e[0] == "newaxis":
            out.append(1)
        elif e[0] == "index":
            d = x.shape[dim]
            if d is not None and not -d <= e[1] < d:
                raise ShapeError(f"index {e[1]} is out of range for dimension {dim} of "
                                 f"size {d} (shape {S.fmt(x.shape)})")
            dim += 1
        else:
            d = x.shape[dim]
            out.append(len(range(*slice(*e[1:]).indices(d))) if d is not None else None)
            dim += 1
    return [(tuple(out), x.dtype)]


def _strided_slice_ref(op, x):
    try:
        return np.array(x[slice_spec_to_index(op.attrs["spec"])])
    except IndexError as exc:
        raise InvalidArgumentError(f"index out of range for shape {x.shape}: {exc}") from None


def _slice_grad_ref(op, g, like):
    out = np.zeros(like.shape, g.dtype)
    out[slice_spec_to_index(op.attrs["spec"])] = g
    return out


defprim("StridedSlice", _strided_slice_infer,
        lambda op, g: [F.slice_grad(g, _in(op), op.attrs["spec"])], _strided_slice_ref,
        "index", "strided_slice", view=True)
# SliceGrad(g, like): zeros shaped like `like`, with g written into the slice.
defprim("SliceGrad", _like_infer,
        lambda op, g: [F.strided_slice(g, op.attrs["spec"]), None], _slice_grad_ref, "index")


# --- gather / one_hot ------------------------------------------------------------------

def _check_indices(indices, n, what):
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices[(indices < 0) | (indices >= n)].ravel()[0]
        raise InvalidArgumentError(f"expected {what} in [0, {n}), found {bad}")


def _gather_infer(op):
    params, indices = op.inputs
    if not dtypes.is_integer(indices.dtype):
        raise DTypeError(f"expected integer indices, found {indices.dtype.name}")
    if params.shape is None or indices.shape is None:
        return [(None, params.dtype)]
    if not params.shape:
        raise ShapeError("expected params of rank 1 or more, found a scalar")
    return [(indices.shape + params.shape[1:], params.dtype)]


def _gather_ref(op, params, indices):
    _check_indices(indices, params.shape[0], "indices")
    return params[indices]


def _gather_grad_infer(op):
    """Zeros shaped like ``like``; ``g`` must be ``indices.shape + like.shape[1:]``
    (a user's ``unsorted_segment_sum`` can feed any ``g``: checked here where the
    shapes are known, and at run time by the kernels)."""
    g, indices, like = op.inputs
    if not dtypes.is_integer(indices.dtype):
        raise DTypeError(f"expected integer indices, found {indices.dtype.name}")
    if g.dtype == dtypes.bool_:
        raise DTypeError(f"expected numeric rows, found bool ({g.name})")
    if like.shape is not None and not like.shape:
        raise ShapeError("expected a table of rank 1 or more, found a scalar")
    if g.shape is not None and indices.shape is not None and like.shape is not None:
        want = tuple(indices.shape) + tuple(like.shape[1:])
        if len(want) != len(g.shape) or any(
                a is not None and b is not None and a != b for a, b in zip(want, g.shape)):
            raise ShapeError(f"expected rows of shape {S.fmt(want)} (the indices' shape "
                             f"{S.fmt(indices.shape)} + a row of the table), found "
                             f"{S.fmt(g.shape)}")
        # a row's dims known from g where the table's are not (a Fill of run-time dims)
        k = len(indices.shape)
        return [(S.merge(tuple(like.shape), like.shape[:1] + tuple(g.shape[k:])), g.dtype)]
    return [(like.shape, g.dtype)]


def _check_rows(g, indices, like):
    want = indices.shape + like.shape[1:]
    if g.shape != want:
        raise InvalidArgumentError(f"expected rows of shape {S.fmt(want)} (the indices' "
                                   f"shape {S.fmt(indices.shape)} + a row of the table), "
                                   f"found {S.fmt(g.shape)}")


def _gather_grad_ref(op, g, indices, like):
    out = np.zeros(like.shape, g.dtype)
    _check_indices(indices, like.shape[0], "indices")
    _check_rows(g, indices, like)       # np.add.at would broadcast a wrong shape
    np.add.at(out, indices, g)
    return out


def segment_rows(g, indices, n):
    """``(used, summed)``: the distinct ``indices`` in increasing order and, for each,
    the rows of ``g`` at that index summed in their order: the nonzero rows of
    ``GatherGrad(g, indices)`` (an IndexedSlices with its duplicates summed, as TF1's
    ``tf.unsorted_segment_sum``), without the table of zeros.

    >>> used, summed = segment_rows(np.ones((3, 2)), np.array([4, 1, 4]), 5)
    >>> used.tolist(), summed[:, 0].tolist()
    ([1, 4], [1.0, 2.0])
    """
    _check_indices(indices, n, "indices")
    flat = indices.reshape(-1)
    rows = g.reshape((flat.size,) + g.shape[indices.ndim:])
    if flat.size == 0:
        return flat, rows
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    starts = np.flatnonzero(first)
    summed = rows[order[starts]]          # the first row of each index (a copy)
    if starts.size == flat.size:
        return ordered[starts], summed
    # The k-th repeat of every index added in one vectorized step per k (at most one
    # row per index each time, so in their order): few steps for an embedding's
    # indices, where np.add.reduceat took 20x longer (400 x 200 rows: 0.7 ms).
    segment = np.cumsum(first) - 1
    rank = np.arange(flat.size) - starts[segment]
    repeats = int(rank.max())
    if repeats > 64:
        return ordered[starts], np.add.reduceat(rows[order], starts, axis=0)
    for k in range(1, repeats + 1):
        at = rank == k
        summed[segment[at]] += rows[order[at]]
    return ordered[starts], summed


def _gather_grad_sq_ref(op, g, indices, like):
    _, summed = segment_rows(g, indices, like.shape[0])
    return np.sum(np.square(summed), dtype=g.dtype)


defprim("Gather", _gather_infer,
        lambda op, g: [F.gather_grad(g, op.inputs[1], op.inputs[0]), None],
        _gather_ref, "index", "gather")
# GatherGrad(g, indices, like): zeros shaped like `like`, rows of g added at indices.
defprim("GatherGrad", _gather_grad_infer,
        lambda op, g: [F.gather(g, op.inputs[1]), None, None], _gather_grad_ref, "index",
        step_kind="scatter kernel")
# GatherGradSq(g, indices, like): sum(GatherGrad(g, indices, like) ** 2), from the rows
# used only (clip_by_global_norm's squared norm of an embedding's gradient).
defprim("GatherGradSq", lambda op: [((), op.inputs[0].dtype)],
        lambda op, gy: [F.gather(F.gather_grad(op.inputs[0], op.inputs[1], op.inputs[2]),
                                 op.inputs[1]) * (gy + gy), None, None],
        _gather_grad_sq_ref, "index")


# --- segment sums and tf.case: the run-time checks they need ------------------------------
# (flowgraph.segment_ops, flowgraph.control_flow.case; both small scalars, made on the host)

def _segment_count_infer(op):
    ids = _in(op)
    if not dtypes.is_integer(ids.dtype):
        raise DTypeError(f"expected integer segment ids, found {ids.dtype.name}")
    if ids.shape is not None and len(ids.shape) != 1:
        raise ShapeError(f"expected 1-d segment ids, found shape {S.fmt(ids.shape)}")
    return [((), ids.dtype)]


def _segment_count_ref(op, ids):
    """``max(ids) + 1`` (0 for no ids): segment_sum's rows, once the ids are checked to
    be sorted and >= 0 (TF1's CPU kernel refuses others too)."""
    if ids.ndim != 1:
        raise InvalidArgumentError(f"expected 1-d segment ids, found shape {ids.shape}")
    if ids.size and ids.min() < 0:
        raise InvalidArgumentError(f"expected segment ids >= 0, found {ids.min()}")
    drops = np.flatnonzero(ids[1:] < ids[:-1])
    if drops.size:
        i = int(drops[0])
        raise InvalidArgumentError(f"expected segment ids sorted in increasing order, found "
                                   f"{ids[i]} before {ids[i + 1]} at position {i + 1} "
                                   f"(use unsorted_segment_sum for unsorted ids)")
    return np.asarray(int(ids[-1]) + 1 if ids.size else 0, ids.dtype)


# SegmentCount(ids): max(ids) + 1 for sorted ids >= 0 (else InvalidArgumentError).
defprim("SegmentCount", _segment_count_infer, None, _segment_count_ref, "index")


def _case_index_infer(op):
    preds = _in(op)
    if preds.dtype != dtypes.bool_ or (preds.shape is not None and len(preds.shape) != 1):
        raise DTypeError(f"expected a 1-d bool tensor of predicates, found "
                         f"{preds.dtype.name} of shape {S.fmt(preds.shape)}")
    return [((), dtypes.int32)]


def _case_index_ref(op, preds):
    """The branch ``tf.case`` takes: the first true predicate's index, else
    ``len(preds)`` (the default); TF1's run-time errors otherwise."""
    true = np.flatnonzero(preds)
    if op.attrs["exclusive"] and true.size > 1:
        raise InvalidArgumentError(f"expected at most one true predicate (exclusive=True), "
                                   f"found predicates {true.tolist()} true")
    if true.size:
        return np.asarray(true[0], np.int32)
    if not op.attrs["has_default"]:
        raise InvalidArgumentError(f"none of the {preds.size} predicates is true and no "
                                   f"default was given")
    return np.asarray(preds.size, np.int32)


# CaseIndex(preds): the branch tf.case takes (attrs: exclusive, has_default).
defprim("CaseIndex", _case_index_infer, None, _case_index_ref, "index")


def _unique_ids_infer(op):
    ids = _in(op)
    if not dtypes.is_integer(ids.dtype):
        raise DTypeError(f"expected integer indices, found {ids.dtype.name}")
    return [(ids.shape, ids.dtype)]


def _unique_ids_ref(op, ids):
    """``ids`` unchanged once checked to hold no index twice: scatter_update's rows,
    where TF1 leaves which of two updates of one row wins undefined."""
    flat = np.sort(ids.reshape(-1))
    twice = flat[1:][flat[1:] == flat[:-1]]
    if twice.size:
        raise InvalidArgumentError(f"expected distinct indices (which of two updates of "
                                   f"one row wins is undefined), found {twice[0]} more "
                                   f"than once")
    return ids.copy()       # a new array, as every kernel's output


# UniqueIds(ids): ids, checked to be distinct (else InvalidArgumentError).
defprim("UniqueIds", _unique_ids_infer, None, _unique_ids_ref, "index")


# --- tf.nn.top_k and tf.boolean_mask (flowgraph.selection_ops) ---------------------------

def _top_k_infer(op):
    x, k = _in(op), op.attrs["k"]
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric input, found bool ({x.name})")
    if x.shape is None:
        return [(None, x.dtype), (None, dtypes.int32), (None, dtypes.int64)]
    if not x.shape:
        raise ShapeError(f"expected an input of rank 1 or more, found a scalar ({x.name})")
    if x.shape[-1] is not None and k > x.shape[-1]:
        raise ShapeError(f"expected k <= {x.shape[-1]} (the last dimension of "
                         f"{S.fmt(x.shape)}), found k = {k}")
    out = tuple(x.shape[:-1]) + (k,)
    return [(out, x.dtype), (out, dtypes.int32), (out, dtypes.int64)]


def top_k_order(x):
    """Positions along the last axis from the largest value to the smallest, equal
    values in increasing position (TF1's tie rule; a NaN counts as the largest, as in
    NumPy's sort). A stable ascending sort of the reversed row, read backwards: no
    negation, which would overflow the smallest integer."""
    n = x.shape[-1]
    ascending = np.argsort(x[..., ::-1], axis=-1, kind="stable")
    return (n - 1) - ascending[..., ::-1]


def _top_k_ref(op, x):
    k = op.attrs["k"]
    if x.ndim == 0:
        raise InvalidArgumentError("expected an input of rank 1 or more, found a scalar")
    if k > x.shape[-1]:
        raise InvalidArgumentError(f"expected k <= {x.shape[-1]} (the last dimension of "
                                   f"{x.shape}), found k = {k}")
    idx = top_k_order(x)[..., :k]
    values = np.take_along_axis(x, idx, -1)
    rows = np.arange(int(np.prod(x.shape[:-1], dtype=np.int64)), dtype=np.int64)
    flat = idx.astype(np.int64) + (rows * x.shape[-1]).reshape(x.shape[:-1] + (1,))
    return np.ascontiguousarray(values), idx.astype(np.int32), flat


def _top_k_grad(op, g_values, g_indices, g_flat):
    # g scattered back to the input's positions, zeros elsewhere: GatherGrad over the
    # flattened input at the third output's flat positions (whose gradient is a
    # Gather, whose gradient is GatherGrad again: every order).
    if g_values is None:
        return [None]
    x = _in(op)
    spread = F.gather_grad(F.reshape(g_values, [-1]), F.reshape(op.outputs[2], [-1]),
                           F.reshape(x, [-1]))
    return [F.reshape_like(spread, x)]


# TopK(x) -> (values, indices, flat): TF1's tf.nn.top_k along the last axis (attrs: k,
# sorted; always sorted), indices int32; `flat`, int64 positions in x.reshape(-1), is
# what the gradient scatters at (fg.nn.top_k returns the first two).
defprim("TopK", _top_k_infer, _top_k_grad, _top_k_ref, "index", "top_k")


def _mask_positions_infer(op):
    mask, dims = op.inputs
    if mask.dtype != dtypes.bool_:
        raise DTypeError(f"expected a bool mask, found {mask.dtype.name} ({mask.name})")
    if not dtypes.is_integer(dims.dtype):
        raise DTypeError(f"expected integer dimensions, found {dims.dtype.name}")
    return [((None,), dtypes.int64)]


def mask_positions(mask, dims, axis=0):
    """The positions of ``mask``'s true elements in ``mask.reshape(-1)`` (row-major
    order), once ``mask``'s shape is checked to be ``dims``: the masked dimensions
    of ``boolean_mask``'s tensor, from dimension ``axis``."""
    dims = tuple(int(d) for d in np.asarray(dims).reshape(-1))
    if mask.shape != dims:
        raise InvalidArgumentError(f"expected a mask of shape {dims} (the tensor's "
                                   f"dimensions from axis {axis}), found {mask.shape}")
    return np.flatnonzero(mask).astype(np.int64)


# MaskPositions(mask, dims): boolean_mask's rows, int64 of a length known at run time
# (attrs: axis, for the message); the host makes them on a GPU too (kernels.cuda).
defprim("MaskPositions", _mask_positions_infer, None,
        lambda op, mask, dims: mask_positions(mask, dims, op.attrs["axis"]), "index")


# --- image patches: conv2d's im2col and its adjoint (flowgraph.patches_ops) ---------------
# ExtractPatches(x): NHWC x -> [N, OH, OW, kh*kw*C], the window of each output position
# with its taps in row-major order (channel (i*kw + j)*C + c), positions outside the
# image (the explicit padding) zero. PatchesGrad(g): its adjoint (col2im), each patch
# element added back into an [N, H, W, C] image. Both are linear, so each one's gradient
# is the other: every order. Attrs: ksizes (kh, kw), strides (sh, sw), rates (dh, dw),
# pads (top, bottom, left, right); PatchesGrad also image (H, W).

def patches_hw(hw, attrs):
    """``(OH, OW)`` of the patches of an image of spatial size ``hw`` (entries may be
    ``None``: unknown); ``ShapeError`` where a window does not fit."""
    out = []
    pads = attrs["pads"]
    for a, size in enumerate(hw):
        k, s, d = attrs["ksizes"][a], attrs["strides"][a], attrs["rates"][a]
        if size is None:
            out.append(None)
            continue
        padded, span = size + pads[2 * a] + pads[2 * a + 1], (k - 1) * d + 1
        if padded < span:
            raise ShapeError(f"a window of {span} (ksize {k}, rate {d}) does not fit in "
                             f"a padded spatial size of {padded} ({size} + padding "
                             f"{pads[2 * a]} + {pads[2 * a + 1]})")
        out.append((padded - span) // s + 1)
    return tuple(out)


def _patch_taps(attrs, oh, ow):
    """``(tap, row slice, column slice)`` of each tap over the padded image."""
    (kh, kw), (sh, sw), (dh, dw) = attrs["ksizes"], attrs["strides"], attrs["rates"]
    for i in range(kh):
        for j in range(kw):
            yield (i * kw + j, slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                   slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))


def _patches_rank4(t, what):
    if t.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric {what}, found bool ({t.name})")
    if t.shape is not None and len(t.shape) != 4:
        raise ShapeError(f"expected a rank-4 NHWC {what}, found {t.name} of shape "
                         f"{S.fmt(t.shape)}")


def _extract_patches_infer(op):
    x = _in(op)
    _patches_rank4(x, "image")
    if x.shape is None:
        return [((None,) * 4, x.dtype)]
    n, h, w, c = x.shape
    kk = op.attrs["ksizes"][0] * op.attrs["ksizes"][1]
    return [((n, *patches_hw((h, w), op.attrs), None if c is None else kk * c), x.dtype)]


def _extract_patches_ref(op, x):
    if x.ndim != 4:
        raise InvalidArgumentError(f"expected a rank-4 NHWC image, found shape {x.shape}")
    n, h, w, c = x.shape
    oh, ow = patches_hw((h, w), op.attrs)
    pt, pb, pl, pr = op.attrs["pads"]
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt + pb + pl + pr else x
    kh, kw = op.attrs["ksizes"]
    out = np.empty((n, oh, ow, kh * kw * c), x.dtype)
    for t, rows, cols in _patch_taps(op.attrs, oh, ow):
        out[..., t * c:(t + 1) * c] = padded[:, rows, cols, :]
    return out


def _patches_grad_infer(op):
    g = _in(op)
    _patches_rank4(g, "patches gradient")
    (h, w), kk = op.attrs["image"], op.attrs["ksizes"][0] * op.attrs["ksizes"][1]
    if g.shape is None:
        return [((None, h, w, None), g.dtype)]
    want = patches_hw((h, w), op.attrs)
    if any(a is not None and a != b for a, b in zip(g.shape[1:3], want)):
        raise ShapeError(f"expected patches of spatial size {want} (an image of {h}x{w}), "
                         f"found {g.name} of shape {S.fmt(g.shape)}")
    k = g.shape[3]
    if k is not None and k % kk:
        raise ShapeError(f"expected a last dimension divisible by kh*kw = {kk}, found "
                         f"{g.name} of shape {S.fmt(g.shape)}")
    return [((g.shape[0], h, w, None if k is None else k // kk), g.dtype)]


def _patches_grad_ref(op, g):
    (h, w), (kh, kw) = op.attrs["image"], op.attrs["ksizes"]
    pt, pb, pl, pr = op.attrs["pads"]
    if g.ndim != 4:
        raise InvalidArgumentError(f"expected rank-4 patches, found shape {g.shape}")
    n, oh, ow, k = g.shape
    if (oh, ow) != patches_hw((h, w), op.attrs) or k % (kh * kw):
        raise InvalidArgumentError(f"expected patches [N, {patches_hw((h, w), op.attrs)}, "
                                   f"kh*kw*C] (kh*kw = {kh * kw}), found {g.shape}")
    c = k // (kh * kw)
    out = np.zeros((n, h + pt + pb, w + pl + pr, c), g.dtype)
    for t, rows, cols in _patch_taps(op.attrs, oh, ow):
        out[:, rows, cols, :] += g[..., t * c:(t + 1) * c]     # taps in order: one sum
    return np.ascontiguousarray(out[:, pt:pt + h, pl:pl + w, :])


def _extract_patches_grad(op, g):
    from .patches_ops import patches_grad
    x = _in(op)
    return [patches_grad(g, x.shape[1:3], **_patch_args(op))]


def _patches_grad_grad(op, g):
    from .patches_ops import extract_patches
    return [extract_patches(g, **_patch_args(op))]


def _patch_args(op):
    return {k: op.attrs[k] for k in ("ksizes", "strides", "rates", "pads")}


defprim("ExtractPatches", _extract_patches_infer, _extract_patches_grad,
        _extract_patches_ref, "index", "extract_patches", step_kind="patches kernel")
defprim("PatchesGrad", _patches_grad_infer, _patches_grad_grad, _patches_grad_ref,
        "index", "patches_grad", step_kind="col2im kernel")


# --- tf.Print (flowgraph.logging_ops) -------------------------------------------------------
# Kind "io": a side effect (a line on stderr) each time it runs. Not pure, so the
# compiler neither folds, merges (CSE) nor drops it; it plans it as a reference step
# of its own, and on a GPU it runs on the host (flowgraph.backends.host_fallback).

_PRINT_COUNTS = weakref.WeakKeyDictionary()   # graph op -> lines printed so far


def summarize_value(value, summarize=3):
    """TF1's ``Tensor::SummarizeValue``: the first ``summarize`` elements (row-major,
    all of them when ``summarize`` < 0) separated by spaces, ``...`` after them if
    more remain; bools as 1 and 0, floats without a trailing ``.0``."""
    flat = np.asarray(value).reshape(-1)
    n = flat.size if summarize < 0 else min(flat.size, summarize)
    words = []
    for v in flat[:n]:
        if flat.dtype == np.bool_:
            words.append("1" if v else "0")
        else:
            w = str(v)
            words.append(w[:-2] if flat.dtype.kind == "f" and w.endswith(".0") else w)
    return " ".join(words) + ("..." if n < flat.size else "")


def _print_ref(op, x, *data):
    # The graph op counts first_n across runs and paths (an IR node names it: origin).
    origin = getattr(op, "origin", None) or op
    first_n = op.attrs["first_n"]
    done = _PRINT_COUNTS.get(origin, 0)
    if first_n is None or first_n < 0 or done < first_n:
        _PRINT_COUNTS[origin] = done + 1
        line = op.attrs["message"] + "".join(
            f"[{summarize_value(d, op.attrs['summarize'])}]" for d in data)
        sys.stderr.write(line + "\n")   # sys.stderr read now: a test may capture it
        sys.stderr.flush()
    return x


# Print(input_, *data) -> input_, writing message and data to stderr (attrs: message,
# first_n, summarize); the gradient is the identity to input_, none to data.
defprim("Print", lambda op: [(op.inputs[0].shape, op.inputs[0].dtype)],
        lambda op, g: [g] + [None] * (len(op.inputs) - 1), _print_ref, "io")


def _py_func_infer(op):
    # Unknown shapes (TF1), unless set_shape made them known on the graph op's outputs
    # (attrs["graph_op"], set once the op exists): then a compiled plan can hold it.
    made = op.attrs.get("graph_op")
    made = made() if made is not None else None
    if made is not None:
        return [(t.shape, t.dtype) for t in made.outputs]
    return [(None, d) for d in op.attrs["Tout"]]


def _py_func_ref(op, *inputs):
    # Copies in: the function may keep or change its arguments, not the plan's buffers.
    result = op.attrs["func"](*(np.array(x, copy=True) for x in inputs))
    touts = op.attrs["Tout"]
    if op.attrs["single"]:
        result = (result,)
    elif result is None and not touts:
        result = ()
    elif not isinstance(result, (list, tuple)):
        result = (result,)     # one value for a Tout list of one (TF1 takes it too)
    if not isinstance(result, (list, tuple)) or len(result) != len(touts):
        raise InvalidArgumentError(f"expected the function to return {len(touts)} "
                                   f"value(s) (Tout), found {result!r:.80}")
    outs = []
    for i, (value, dtype) in enumerate(zip(result, touts)):
        value = np.asarray(value)
        if value.dtype != dtype:
            raise InvalidArgumentError(f"value {i} returned by the function is "
                                       f"{value.dtype}, expected {dtype.name} (Tout)")
        outs.append(np.array(value, copy=True))
    return tuple(outs)


# PyFunc(*inp) -> Tout: TF1's tf.py_func, a Python function on NumPy arrays at run
# time (attrs: func, Tout, single, stateful). Kind "io" as Print: never folded, merged
# or dropped, a reference step on the host; no gradient (nothing flows through).
defprim("PyFunc", _py_func_infer, None, _py_func_ref, "io")


def _one_hot_infer(op):
    indices = _in(op)
    if not dtypes.is_integer(indices.dtype):
        raise DTypeError(f"expected integer indices, found {indices.dtype.name}")
    shape = None if indices.shape is None else indices.shape + (op.attrs["depth"],)
    return [(shape, op.attrs["dtype"])]


def _one_hot_ref(op, indices):
    depth = op.attrs["depth"]
    # Out-of-range indices give all-zero rows, as in TensorFlow.
    return (indices[..., None] == np.arange(depth)).astype(op.attrs["dtype"])


defprim("OneHot", _one_hot_infer, None, _one_hot_ref, "index")


# --- TF1's "more ops": arg reductions, products, powers, shapes as values, ranges, fills --

def static_value(t):
    """The value of ``t`` when it is known before the run, else ``None``.

    Shape rules use it for ops whose output shape is another tensor's value (``Range``,
    ``Fill``). During compilation, :func:`flowgraph.passes.lower` hands the rules
    stand-ins carrying the values it could fold (constants, shapes of fixed-shape
    feeds, and pure ops of those); a graph tensor is known when it is a constant or
    the shape of a tensor of fully known shape.
    """
    if hasattr(t, "value"):                # the compiler's stand-in
        return t.value
    op = getattr(t, "op", None)
    if op is None:
        return None
    if op.type == "Const":
        return op.attrs["value"]
    if op.type == "Shape":
        shape = op.inputs[0].shape
        if shape is not None and None not in shape:
            return np.asarray(shape, op.attrs["out_type"])
    return None


def _arg_infer(op):
    x = _in(op)
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric input, found bool ({x.name})")
    if not dtypes.is_integer(op.attrs["output_type"]):
        raise DTypeError(f"expected an integer output_type, found "
                         f"{np.dtype(op.attrs['output_type']).name}")
    if x.shape is None:
        return [(None, op.attrs["output_type"])]
    if not x.shape:
        raise ShapeError(f"expected an input of rank 1 or more, found a scalar ({x.name})")
    axis = S.normalize_axis(op.attrs["axis"], len(x.shape))
    return [(x.shape[:axis] + x.shape[axis + 1:], op.attrs["output_type"])]


def _arg_ref(fn):
    def ref(op, x):
        axis = S.normalize_axis(op.attrs["axis"], x.ndim)
        if x.shape[axis] == 0:
            raise InvalidArgumentError(f"{op.type} over an empty axis {axis} (input shape "
                                       f"{x.shape})")
        return np.asarray(fn(x, axis=axis), op.attrs["output_type"])
    return ref


# ArgMax/ArgMin: the index of the first largest/smallest element along `axis` (a NaN
# counts as the largest and the smallest, as in NumPy). Not differentiable.
defprim("ArgMax", _arg_infer, None, _arg_ref(np.argmax), "reduction", "arg_max")
defprim("ArgMin", _arg_infer, None, _arg_ref(np.argmin), "reduction", "arg_min")


def _cumsum_infer(op):
    x = _in(op)
    if x.dtype == dtypes.bool_:
        raise DTypeError(f"expected a numeric input, found bool ({x.name})")
    if x.shape is not None:
        if not x.shape:
            raise ShapeError(f"expected an input of rank 1 or more, found a scalar "
                             f"({x.name})")
        S.normalize_axis(op.attrs["axis"], len(x.shape))
    return [(x.shape, x.dtype)]


def cumsum_ref(x, axis, exclusive, reverse):
    """TF1's cumulative sum of ``x`` along ``axis``, in ``x``'s dtype (np.cumsum would
    widen int32), added in order from the start (from the end with ``reverse``);
    ``exclusive`` leaves each element out of its own sum (a zero first)."""
    if reverse:
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive and x.shape[axis]:
        out = np.roll(out, 1, axis=axis)
        first = [slice(None)] * x.ndim
        first[axis] = 0
        out[tuple(first)] = 0
    return np.ascontiguousarray(np.flip(out, axis) if reverse else out)


def _cumsum_ref(op, x):
    if x.ndim == 0:
        raise ShapeError(f"{describe_op(op)}: expected an input of rank 1 or more, found "
                         f"a scalar")
    axis = S.normalize_axis(op.attrs["axis"], x.ndim)
    return cumsum_ref(x, axis, op.attrs["exclusive"], op.attrs["reverse"])


# Cumsum (TF1's tf.cumsum): the gradient sums the output gradients that each input
# reached, i.e. the cumsum of g the other way (same `exclusive`), as TF1's _CumsumGrad.
# No template (a scan is not elementwise): on the CPU its reference kernel is a plan
# step of its own; on a GPU a thread per line along the axis (kernels.cuda).
defprim("Cumsum", _cumsum_infer,
        lambda op, g: [F.cumsum(g, op.attrs["axis"], op.attrs["exclusive"],
                                not op.attrs["reverse"])],
        _cumsum_ref, "reduction", "cumsum", _elementwise_flops)


def cumprod_ref(x, axis, exclusive, reverse):
    """TF1's cumulative product of ``x`` along ``axis``, in ``x``'s dtype, multiplied in
    order from the start (from the end with ``reverse``); ``exclusive`` leaves each
    element out of its own product (a one first)."""
    if reverse:
        x = np.flip(x, axis)
    out = np.cumprod(x, axis=axis, dtype=x.dtype)
    if exclusive and x.shape[axis]:
        out = np.roll(out, 1, axis=axis)
        first = [slice(None)] * x.ndim
        first[axis] = 0
        out[tuple(first)] = 1
    return np.ascontiguousarray(np.flip(out, axis) if reverse else out)


def _cumprod_ref(op, x):
    if x.ndim == 0:
        raise ShapeError(f"{describe_op(op)}: expected an input of rank 1 or more, found "
                         f"a scalar")
    axis = S.normalize_axis(op.attrs["axis"], x.ndim)
    with np.errstate(all="ignore"):                   # overflow to inf, as NumPy
        return cumprod_ref(x, axis, op.attrs["exclusive"], op.attrs["reverse"])


def _cumprod_grad(op, g):
    """TF1's _CumprodGrad: ``cumsum(cumprod(x) * g, reverse flipped) / x``. It divides
    by ``x``, so, exactly as in TF1, the gradient at an element equal to 0 is NaN or
    infinite (exact for non-zero inputs). Integer inputs get no gradient."""
    x = _in(op)
    if not dtypes.is_floating(x.dtype):
        return [None]
    a = op.attrs
    return [F.cumsum(op.outputs[0] * g, a["axis"], a["exclusive"], not a["reverse"]) / x]


# Cumprod (TF1's tf.cumprod, tf.math.cumprod): Cumsum's shape rule; a reference step on
# the CPU plan, on a GPU Cumsum's thread-per-line kernel multiplying (kernels.cuda).
defprim("Cumprod", _cumsum_infer, _cumprod_grad, _cumprod_ref, "reduction", "cumprod",
        _elementwise_flops)


def _reduce_prod_grad(op, g):
    """d prod / dx_i is the product of the others: ``y / x_i`` where ``x_i != 0``. At a
    zero of a slice with one zero, the product ``P`` of its non-zero elements; with two
    zeros, ``(z - x_i) * P`` where ``z`` sums the slice's zeros: 0, with the right
    derivative (``P``) along the other zero; with three or more, 0. Exact to second
    order everywhere (to every order with at most two zeros in a slice), and every
    division is by a non-zero, so no NaN hides in a branch not taken.
    """
    x = _in(op)
    axis = op.attrs["axis"]
    zeros = F.zeros_like(x)
    ones = F.ones_like(x)
    is_zero = F.equal(x, zeros)
    safe = F.where(is_zero, ones, x)

    def spread(t):  # a keepdims reduction back to x's shape
        return F.broadcast_like(t, x)

    y = spread(_keepdims_grad(op, op.outputs[0]))
    n_zero = spread(F.reduce_sum(F.cast(is_zero, x.dtype), axis, keepdims=True))
    nonzero_product = spread(A.reduce_prod(safe, axis, keepdims=True))
    zero_sum = spread(F.reduce_sum(F.where(is_zero, x, zeros), axis, keepdims=True))
    at_zero = F.where(F.equal(n_zero, ones), nonzero_product,
                      F.where(F.equal(n_zero, ones + ones), (zero_sum - x) * nonzero_product,
                              zeros))
    return [F.where(is_zero, at_zero, y / safe) * spread(_keepdims_grad(op, g))]


defprim("ReduceProd", _reduce_infer, _reduce_prod_grad, _reduce_ref(np.prod), "reduction",
        "prod", _reduce_flops)


def _pow_ref2(op, x, y):
    if dtypes.is_integer(x.dtype) and np.any(y < 0):
        raise InvalidArgumentError("integers to negative integer powers are not allowed")
    with np.errstate(all="ignore"):
        return np.power(x, y)


def _pow_grad2(op, g):
    x, y = op.inputs
    if not dtypes.is_floating(x.dtype):
        return [None, None]
    z = op.outputs[0]
    positive = x > F.zeros_like(x)
    # log(x) only where x > 0 (TF1's rule); the other branch never divides by zero, so
    # the second derivative has no NaN from the branch not taken.
    log_x = F.where(positive, F.log(F.where(positive, x, F.ones_like(x))), F.zeros_like(x))
    return [g * y * A.pow(x, y - F.ones_like(y)), g * z * log_x]


# Pow: x ** y elementwise for tensor exponents (PowScalar serves Python numbers).
_ew("Pow", binary_infer(), _pow_grad2, _pow_ref2, "pow", template="({0} ** {1})",
    ufunc=np.power)


def _shape_infer(op):
    x = _in(op)
    if not dtypes.is_integer(op.attrs["out_type"]):
        raise DTypeError(f"expected an integer out_type, found "
                         f"{np.dtype(op.attrs['out_type']).name}")
    return [((None,) if x.shape is None else (len(x.shape),), op.attrs["out_type"])]


# Shape: the run-time shape of its input as a 1-d integer tensor. Only the input's shape
# is read, so the compiler folds it to a constant once the feed shapes are fixed.
defprim("Shape", _shape_infer, None,
        lambda op, x: np.asarray(x.shape, op.attrs["out_type"]), "shape", shape_only=True)


def _range_infer(op):
    dtype = _require_same_dtype(op)
    if dtype == dtypes.bool_:
        raise DTypeError("expected numeric start, limit and delta, found bool")
    for t, what in zip(op.inputs, ("start", "limit", "delta")):
        if t.shape is not None and t.shape != ():
            raise ShapeError(f"expected a scalar {what}, found shape {S.fmt(t.shape)}")
    values = [static_value(t) for t in op.inputs]
    if any(v is None for v in values):
        return [((None,), dtype)]
    return [(_range_ref(op, *values).shape, dtype)]


def _range_ref(op, start, limit, delta):
    if delta == 0:
        raise InvalidArgumentError("expected a non-zero delta, found 0")
    return np.arange(start, limit, delta).astype(start.dtype, copy=False)


# Range(start, limit, delta): np.arange; its length depends on the values, so a run
# whose limit is known only at run time is planned by the reference path.
defprim("Range", _range_infer, None, _range_ref, "shape")


def _fill_dims(dims):
    dims = np.asarray(dims)
    if dims.ndim != 1 or (dims.size and dims.min() < 0):
        raise ShapeError(f"expected a 1-d list of sizes >= 0, found {dims.tolist()}")
    return tuple(int(d) for d in dims)


def _fill_op_infer(op):
    dims, value = op.inputs
    if not dtypes.is_integer(dims.dtype):
        raise DTypeError(f"expected integer dims, found {dims.dtype.name}")
    if value.shape is not None and value.shape != ():
        raise ShapeError(f"expected a scalar value, found shape {S.fmt(value.shape)}")
    known = static_value(dims)
    if known is not None:
        return [(_fill_dims(known), value.dtype)]
    if dims.shape is None or dims.shape[0] is None:
        return [(None, value.dtype)]
    return [((None,) * dims.shape[0], value.dtype)]


def _fill_op_ref(op, dims, value):
    try:
        shape = _fill_dims(dims)
    except ShapeError as exc:
        raise InvalidArgumentError(str(exc)) from None
    return np.full(shape, value, value.dtype)


# Fill(dims, value): an array of shape `dims` (a 1-d integer tensor) filled with the
# scalar `value`.
defprim("Fill", _fill_op_infer, lambda op, g: [None, F.reduce_sum(g)], _fill_op_ref, "shape")


# --- softmax cross-entropy over class indices --------------------------------------------
# Two row kernels instead of a composition: the loss and the softmax in one kernel (per
# row: the max, then exp stored and summed, then scaled, the row still in cache; no
# one-hot), and its gradient g * (softmax - onehot) in one pass, the label's -g added at
# one place. Every gradient rule is written with graph ops, so every order differentiates.

def _sparse_xent_infer(op):
    logits, labels = op.inputs
    _require_float(op, logits)
    if not dtypes.is_integer(labels.dtype):
        raise DTypeError(f"expected integer labels, found {labels.dtype.name}")
    if logits.shape is None:
        return [(None, logits.dtype), (None, logits.dtype)]
    if not logits.shape:
        raise ShapeError("expected logits of rank 1 or more, found a scalar")
    rows = logits.shape[:-1]
    if labels.shape is not None and (len(labels.shape) != len(rows) or any(
            a is not None and b is not None and a != b for a, b in zip(labels.shape, rows))):
        raise ShapeError(f"expected labels of shape {S.fmt(rows)} (the logits' "
                         f"{S.fmt(logits.shape)} less the classes), found "
                         f"{S.fmt(labels.shape)}")
    return [(rows, logits.dtype), (logits.shape, logits.dtype)]


def _sparse_xent_ref(op, logits, labels):
    _no_classes(logits)
    _check_indices(labels, logits.shape[-1], "labels")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        picked = np.take_along_axis(logits, labels[..., None].astype(np.intp), -1)[..., 0]
        top = np.max(logits, -1, keepdims=True)
        e = np.exp(logits - top)
        total = np.sum(e, -1, keepdims=True)
        loss = np.log(total[..., 0]) + top[..., 0] - picked
        return loss.astype(logits.dtype), (e / total).astype(logits.dtype)


def _softmax_grad(probs, g):
    """The softmax's vector-Jacobian product: ``p * (g - sum(g * p))`` over the rows."""
    return probs * (g - F.reduce_sum(g * probs, -1, keepdims=True))


def _sparse_xent_grad(op, g_loss, g_probs):
    labels, probs = op.inputs[1], op.outputs[1]
    grads = []
    if g_loss is not None:
        grads.append(F.sparse_softmax_xent_grad(probs, labels, g_loss))
    if g_probs is not None:
        grads.append(_softmax_grad(probs, g_probs))
    return [grads[0] if len(grads) == 1 else grads[0] + grads[1], None]


def _sparse_xent_grad_infer(op):
    probs, labels, g = op.inputs
    _require_float(op, probs)
    if not dtypes.is_integer(labels.dtype):
        raise DTypeError(f"expected integer labels, found {labels.dtype.name}")
    if g.dtype != probs.dtype:
        raise DTypeError(f"expected {g.name} of the dtype {probs.dtype.name} of "
                         f"{probs.name}, found {g.dtype.name}")
    return [(probs.shape, probs.dtype)]


def _sparse_xent_grad_ref(op, probs, labels, g):
    _check_indices(labels, probs.shape[-1], "labels")
    out = probs * g[..., None]
    rows = out.reshape(-1, out.shape[-1])
    rows[np.arange(rows.shape[0]), labels.reshape(-1)] -= g.reshape(-1)
    return out.astype(probs.dtype, copy=False)


def _sparse_xent_grad_grad(op, gg):
    # out = g * (probs - onehot(labels)): linear in probs and in g. The label's entry of
    # gg is picked by this op itself with probs = 0 and g = 1 (a -onehot, built only on
    # this second-order path), which needs no static number of classes.
    probs, labels, g = op.inputs
    minus_onehot = F.sparse_softmax_xent_grad(F.zeros_like(probs), labels, F.ones_like(g))
    return [gg * F.expand_dims(g, -1), None,
            F.reduce_sum(gg * probs, -1) + F.reduce_sum(gg * minus_onehot, -1)]


# SparseSoftmaxXent(logits, labels) -> (loss, probs): per row, logsumexp(logits) minus the
# label's logit, and softmax(logits) (which the gradient reads).
defprim("SparseSoftmaxXent", _sparse_xent_infer, _sparse_xent_grad, _sparse_xent_ref,
        "index", "sparse_softmax_xent", _reduce_flops)
# SparseSoftmaxXentGrad(probs, labels, g): g[..., None] * (probs - onehot(labels)).
defprim("SparseSoftmaxXentGrad", _sparse_xent_grad_infer, _sparse_xent_grad_grad,
        _sparse_xent_grad_ref, "index", "sparse_softmax_xent_grad", _reduce_flops)


# SoftmaxXent(logits, labels) -> (loss, probs): the dense-label loss
# sum(labels) * logsumexp(logits) - sum(labels * logits) per row, and softmax(logits),
# in one row kernel. Its gradients are graph ops: one fused pass for the logits'.

def _xent_infer(op):
    logits, labels = op.inputs
    _require_float(op, logits)
    if labels.dtype != logits.dtype:
        raise DTypeError(f"expected labels of the logits' dtype {logits.dtype.name}, "
                         f"found {labels.dtype.name}")
    if logits.shape is None:
        return [(None, logits.dtype), (labels.shape, logits.dtype)]
    if not logits.shape:
        raise ShapeError("expected logits of rank 1 or more, found a scalar")
    shape = logits.shape
    if labels.shape is not None:
        if len(labels.shape) != len(shape) or any(
                a is not None and b is not None and a != b
                for a, b in zip(labels.shape, shape)):
            raise ShapeError(f"expected labels of the logits' shape {S.fmt(shape)}, "
                             f"found {S.fmt(labels.shape)}")
        shape = tuple(a if a is not None else b for a, b in zip(shape, labels.shape))
    return [(shape[:-1], logits.dtype), (shape, logits.dtype)]


def _no_classes(logits):
    if logits.shape[-1] == 0:
        raise InvalidArgumentError(f"softmax over an empty class axis (logits of shape "
                                   f"{logits.shape})")


def _xent_ref(op, logits, labels):
    _no_classes(logits)
    if logits.shape != labels.shape:
        raise ShapeError(f"expected labels of the logits' shape {logits.shape}, found "
                         f"{labels.shape}")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(logits, -1, keepdims=True)
        e = np.exp(logits - top)
        total = np.sum(e, -1, keepdims=True)
        lse = np.log(total[..., 0]) + top[..., 0]
        loss = np.sum(labels, -1) * lse - np.sum(labels * logits, -1)
        return loss.astype(logits.dtype), (e / total).astype(logits.dtype)


def _xent_grad(op, g_loss, g_probs):
    logits, labels = op.inputs
    probs = op.outputs[1]
    d_logits = d_labels = None
    if g_loss is not None:
        g = F.expand_dims(g_loss, -1)
        d_logits = g * (probs * F.reduce_sum(labels, -1, keepdims=True) - labels)
        top = F.stop_gradient(F.reduce_max(logits, -1, keepdims=True))
        lse = F.log(F.reduce_sum(F.exp(logits - top), -1, keepdims=True)) + top
        d_labels = g * (lse - logits)            # -g * log_softmax(logits)
    if g_probs is not None:
        extra = _softmax_grad(probs, g_probs)
        d_logits = extra if d_logits is None else d_logits + extra
    return [d_logits, d_labels]


defprim("SoftmaxXent", _xent_infer, _xent_grad, _xent_ref, "index", "softmax_xent",
        _reduce_flops)


# --- device copies ---------------------------------------------------------------------

# Copy: a value moved to this op's device. Inserted by placement; its gradient is the
# copy back to the source device.
defprim("Copy", unary_infer(allow_bool=True), lambda op, g: [F.copy_to(g, _in(op).device)],
        lambda op, x: x, "copy", template="{0}", ufunc="copy", exact=True, alias=True,
        step_kind="copy")


# --- IR-only node types ----------------------------------------------------------------
# Nodes the compiler's passes create (flowgraph.passes), never graph ops: a run's feed,
# a value broadcast to a shape (made by the simplify pass), and a value sent to or
# received from another MPI task (flowgraph.distributed.partition).

def _ir_only(what):
    def infer(op):
        raise FlowgraphError(f"{describe_op(op)}: {what} is made by the compiler, not the API")
    return infer


def _broadcast_to_ref(op, x):
    return np.broadcast_to(x, op.attrs["shape"]).copy()


defprim("Feed", _ir_only("a feed"), None, _no_ref("a feed"), "source", ir_only=True)
# BroadcastTo is elementwise: fused kernels read its input broadcast at the region's edge.
defprim("BroadcastTo", _ir_only("a broadcast"), None, _broadcast_to_ref, "elementwise",
        template="{0}", ufunc="copy", exact=True, step_kind="copy", ir_only=True)
defprim("Send", _ir_only("a send"), None, _no_ref("a send"), "comm", step_kind="send",
        ir_only=True)
defprim("Recv", _ir_only("a receive"), None, _no_ref("a receive"), "comm",
        step_kind="recv", ir_only=True)


# --- random numbers --------------------------------------------------------------------
# Kind "random": a function of its inputs, its seeds and the session's run number, which
# executors pass as ``counter=(run, session salt)``. Not pure (every run draws new
# numbers), so the compiler neither folds nor merges these ops; it runs the reference
# kernel with a Numba loop for the Philox rounds (``generator=``, same words). The
# numbers come from flowgraph.philox (bit-identical on every path).

def _random_infer(op):
    shape = op.attrs["shape"]
    if op.inputs:
        source = _in(op)
        if op.attrs.get("shape_from") == "like":
            shape = source.shape
        else:
            if not dtypes.is_integer(source.dtype) or (source.shape is not None
                                                       and len(source.shape) != 1):
                raise DTypeError(f"expected a 1-D integer shape tensor, found {source.name} "
                                 f"({source.dtype.name}, shape {S.fmt(source.shape)})")
    return [(shape, op.attrs["dtype"])]


def _random_shape(op, inputs):
    if not inputs:
        return tuple(op.attrs["shape"])
    if op.attrs.get("shape_from") == "like":
        return inputs[0].shape
    dims = np.asarray(inputs[0])
    if dims.ndim != 1 or (dims.size and dims.min() < 0):
        raise InvalidArgumentError(f"expected a 1-D shape of sizes >= 0, found {dims.tolist()}")
    return tuple(int(d) for d in dims)


def random_key(op, counter):
    """The Philox key (graph seed, op seed) of a random op in a run; an op with no
    seed at all takes the session's salt as its graph seed (TF1: nondeterministic)."""
    graph_seed, op_seed = op.attrs["seeds"]
    return (counter[1] if graph_seed is None else graph_seed), op_seed


def _random_ref(draw, *params):
    def ref(op, *inputs, counter=(0, 0), generator=None):
        args = [op.attrs[p] for p in params]
        return draw(_random_shape(op, inputs), op.attrs["dtype"], random_key(op, counter),
                    counter[0], *args, generator=generator)
    return ref


def _declare_random():
    from . import philox
    defprim("RandomUniform", _random_infer, None,
            _random_ref(philox.uniform, "minval", "maxval"), "random")
    defprim("RandomStandardNormal", _random_infer, None,
            _random_ref(philox.normal, "mean", "stddev"), "random", "random_normal")
    defprim("TruncatedNormal", _random_infer, None,
            _random_ref(philox.truncated_normal, "mean", "stddev"), "random")


_declare_random()
