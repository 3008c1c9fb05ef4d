"""Vectorizable ``exp``, ``tanh`` and ``sigmoid`` for float32 fused kernels.

Numba compiles ``math.exp`` and ``math.tanh`` to scalar libm calls (measured here at
9-33 ns per element), which keeps LLVM from vectorizing a fused loop: a region with
transcendental functions then ran faster as a chain of NumPy ufunc calls than as one
generated loop. These versions are straight-line float32 arithmetic (no calls, no
branches that LLVM cannot turn into selects), so a fused float32 loop that uses them
vectorizes with a float32 in every lane: 8 per AVX2 register, twice as many as the
float64 polynomial these replaced (which computed in float64 and rounded once). An LSTM
cell's forward loop (three sigmoids, two tanh) went from 17 to 7 ns per element on
one AVX2 core (AMD EPYC, loaded machine, same loop, both versions in one process).

``tanh`` is inlined into the calling loop at Numba's level (``inline="always"``): left
to LLVM's inliner, it (its ``exp`` inlined) was over the size threshold and stayed a
call per element, which no loop vectorizes around. ``exp`` and ``sigmoid`` are small
enough for LLVM's inliner; inlining them at Numba's level too made an LSTM cell's
kernel compile in 3.6 s instead of 2-2.4 s (loaded machine), for the same loop. What
Numba inlines takes the calling loop's fast-math flags (``reassoc`` in a fused sum or
the softmax rows), so the steps whose grouping matters are intrinsics those flags do
not reach (``_fmuladd``, ``_round``, ``_scale``).

Accuracy, against the exact value (float64 NumPy) over a dense sweep of float32 bit
patterns (tests/test_kernels_cpu.py): ``exp`` at most 1.01 ulp, ``sigmoid`` 2.4 ulp,
``tanh`` 1.6 ulp; most results are the correctly rounded float32 (99%, 93%, 98%). NumPy's
own float32 ``np.exp`` (the reference kernels' ``exp``) is at most 2.52 ulp off by the
same measure (NumPy 2.4, AVX2). NaN, +-inf, +-0 and float32 overflow and underflow
(subnormal results included) behave as NumPy's. Float64 kernels keep libm: these are
float32 only. A primitive uses them by declaring ``template_f32="vmath.exp({0})"``
(float32 CPU loops only: the CUDA generator keeps the shared templates, the GPU has a
fast ``exp``).

``exp`` works by range reduction, ``exp(x) = 2**n * exp(r)`` with ``|r| <= ln(2)/2``
(``n*ln(2)`` subtracted in two parts, Cody and Waite), Cephes' degree-7 minimax
polynomial for ``exp(r)`` (``1 + r + r**2 * P(r)``, ``P`` of degree 5) and ``2**n``
applied as two factors built from exponent bits, so that results near float32's
overflow and in its subnormal range come out as one correctly placed rounding.

>>> import numpy as np
>>> x = np.linspace(-20.0, 20.0, 9).astype(np.float32)
>>> bool(np.allclose([exp(v) for v in x], np.exp(x), rtol=3e-7, atol=0))
True
>>> float(sigmoid(np.float32(0.0))), float(tanh(np.float32(-0.0)))
(0.5, -0.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# Kernels generated with these functions name this version in their source, so a
# change here gives them new cache keys (Numba's cache tracks only the kernel's file).
VERSION = "4"   # 3-4: float32 arithmetic (2: float64, degree-7 exp; 1: degree 10)

# Every constant is a float32, so that Numba keeps the arithmetic in float32 (a Python
# float would promote it to float64).
_F = np.float32
_ZERO, _ONE = _F(0.0), _F(1.0)
_LOG2E = _F(1.4426950408889634)
_LN2_HI = _F(0.693359375)          # ln(2) in two parts: n * _LN2_HI is exact for the
_LN2_LO = _F(-2.12194440e-4)       # n used here, so r = x - n*ln(2) loses nothing
# exp's clamp: beyond it the float32 result is 0 or inf anyway, and n stays within
# [-159, 145], so each half of 2**n is a normal float32.
_EXP_LO, _EXP_HI = _F(-110.0), _F(100.0)
# Cephes expf: exp(r) = 1 + r + r**2 * (P0 r**5 + ... + P5) on |r| <= ln(2)/2.
_P0, _P1, _P2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
_P3, _P4, _P5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)
# Cephes tanhf below |x| = 0.625: x + x**3 * Q(x**2), where 1 - 2/(exp(2x) + 1)
# would lose relative accuracy to cancellation.
_TANH_SMALL = _F(0.625)
_Q0, _Q1, _Q2 = _F(-5.70498872745e-3), _F(2.06390887954e-2), _F(-5.37397155531e-2)
_Q3, _Q4 = _F(1.33314422036e-1), _F(-3.33332819422e-1)

# error_model="numpy": a division never raises (no exception path in the loop).
_JIT = dict(fastmath={"contract"}, error_model="numpy", cache=True)


@intrinsic
def _pow2(typingctx, n):
    """``2.0 ** n`` as a float32 for an integer ``-126 <= n <= 127``, from exponent bits."""
    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        i32 = ir.IntType(32)
        biased = builder.add(args[0], ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(biased, ir.Constant(i32, 23)), ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _fmuladd(typingctx, a, b, c):
    """``a * b + c`` (fused where the CPU has FMA) that the caller's fast-math flags
    cannot regroup: what Numba inlines into a loop compiled with
    ``fastmath={"reassoc"}`` (a fused sum) takes that loop's flags, and reassociation
    undoes a range reduction (``n*ln2_hi + n*ln2_lo`` folded into ``n*ln2``) and
    rounding tricks. (Measured with every function Numba-inlined: ``exp`` was then
    off by up to 2**23 ulps in such a loop.)"""
    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fmuladd", [f32],
                                              ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _round(typingctx, x):
    """``x`` rounded to the nearest integer (ties to even): LLVM's ``rint``, one
    vector instruction on x86-64 (SSE4.1) and ARM. ``x + 1.5*2**23 - 1.5*2**23`` does
    the same without it, but Numba's fast-math pass flags every float operation in a
    ``reassoc`` loop, and the two then fold away."""
    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.rint", [f32], ir.FunctionType(f32, [f32]))
        return builder.call(fn, args)
    return types.float32(types.float32), codegen


@intrinsic
def _scale(typingctx, x, n):
    """``x * 2.0 ** n`` by adding ``n`` to the exponent bits: exact while the result is
    a normal float32 (no rounding, no overflow check). An integer addition, so that
    ``(x * 2**h) * 2**(k - h)`` cannot be regrouped into ``x * 2**k``, which
    overflows or underflows at the ends of float32's range, in a loop whose float
    operations Numba flags ``reassoc`` (``llvm.arithmetic.fence`` would prevent that
    too, but the loop vectorizer gives up on it)."""
    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        i32 = ir.IntType(32)
        bits = builder.add(builder.bitcast(args[0], i32),
                           builder.shl(args[1], ir.Constant(i32, 23)))
        return builder.bitcast(bits, ir.FloatType())
    return types.float32(types.float32, types.int32), codegen


@njit(**_JIT)
def exp(x):
    """``exp(x)`` of a float32, in float32 arithmetic."""
    x = _F(x)
    # NaN passes the clamp (comparisons with NaN are false) and the polynomial.
    x = _EXP_HI if x > _EXP_HI else x
    x = _EXP_LO if x < _EXP_LO else x
    safe = x if x == x else _ZERO          # converting NaN to an integer is undefined
    n = _round(safe * _LOG2E)
    r = _fmuladd(n, -_LN2_LO, _fmuladd(n, -_LN2_HI, x))
    p = _fmuladd(_fmuladd(_fmuladd(_fmuladd(_fmuladd(
        _P0, r, _P1), r, _P2), r, _P3), r, _P4), r, _P5)
    p = _fmuladd(p, r * r, r) + _ONE       # the small terms first: one rounding near 1
    k = np.int32(n)
    half = k >> 1
    return _scale(p, half) * _pow2(k - half)


@njit(**_JIT)
def sigmoid(x):
    """``1 / (1 + exp(-x))``, from ``e = exp(-|x|)`` (never overflows): ``1 / (1 + e)``
    for ``x >= 0``, ``e / (1 + e)`` below, which keeps a subnormal result for ``x``
    down to -103 where ``1 / (1 + exp(-x))`` would give 0.
    """
    x = _F(x)
    e = exp(-abs(x))
    return (_ONE if x >= _ZERO else e) / (_ONE + e)


@njit(inline="always", **_JIT)
def tanh(x):
    """``tanh(|x|) = (1 - e) / (1 + e)`` with ``e = exp(-2|x|)``, the sign of ``x``
    copied onto it; below ``|x| = 0.625`` a polynomial."""
    x = _F(x)
    a = abs(x)
    e = exp(_F(-2.0) * a)
    big = (_ONE - e) / (_ONE + e)
    z = a * a
    q = _fmuladd(_fmuladd(_fmuladd(_fmuladd(_Q0, z, _Q1), z, _Q2), z, _Q3), z, _Q4)
    small = _fmuladd(a * z, q, a)
    t = small if a < _TANH_SMALL else big
    t = t if x == x else x                 # NaN in, NaN out
    return math.copysign(t, x)


@intrinsic
def maxnum(typingctx, a, b):
    """``max(a, b)`` of two floats of one type as LLVM's ``maxnum`` (a NaN operand
    gives the other one): a max over a row in a loop of these vectorizes, which a
    compare-and-select max does not without fast-math flags that would reach the rest
    of the loop. A row max that skips NaN this way still gives NaN wherever the row's
    NaN is then used (the softmax rows: ``exp(NaN - top)`` is NaN)."""
    if not isinstance(a, types.Float) or a != b:
        return None

    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        t = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.maxnum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(fn, args)
    return a(a, a), codegen
