"""Vectorizable ``exp``, ``tanh`` and ``sigmoid`` for float32 fused kernels.

Numba compiles ``math.exp`` and ``math.tanh`` to scalar libm calls (measured here at
9-33 ns per element), which keeps LLVM from vectorizing a fused loop: a region with
transcendental functions then ran faster as a chain of NumPy ufunc calls than as one
generated loop. These versions are straight-line float64 arithmetic (no calls, no
branches that LLVM cannot turn into selects), so a fused float32 loop that uses them
vectorizes (AVX-512 here: about 2 ns per exp).

Accuracy: the result is computed in float64 to within 8e-9 relative error (an eighth
of a float32 ulp) and rounded once to float32, so it is within one float32 ulp of the
correctly rounded value (0 ulp for almost all inputs; tests/test_kernels_cpu.py bounds
the max); NaN, +-inf, +-0 and float32 overflow/underflow behave as NumPy's. The float64
kernels keep libm: these are not accurate enough for float64 results.
A primitive uses them by declaring ``template_f32="vmath.exp({0})"`` (float32 CPU
loops only: the CUDA generator keeps the shared templates, the GPU has a fast ``exp``).

``exp`` works by range reduction, ``exp(x) = 2**n * exp(r)`` with ``|r| <= ln(2)/2``,
a degree-7 Taylor polynomial for ``exp(r)`` (truncation error below 8e-9: all a
float32 result needs, in 3 fewer multiply-adds than the degree-10 one it replaced) and
``2**n`` built from its exponent bits.

>>> import numpy as np
>>> x = np.linspace(-20.0, 20.0, 9)
>>> bool(np.allclose([exp(v) for v in x], np.exp(x), rtol=1e-8, atol=0))
True
>>> float(sigmoid(0.0)), float(tanh(-0.0))
(0.5, -0.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# Kernels generated with these functions name this version in their source, so a
# change here gives them new cache keys (Numba's cache tracks only the kernel's file).
VERSION = "2"   # 2: exp with a degree-7 polynomial (was 10)

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238      # ln(2) split in two (Cody and Waite) so that
_LN2_LO = 1.9082149292705877e-10  # r = x - n*ln(2) is exact to about 1e-19


@intrinsic
def _pow2(typingctx, n):
    """``2.0 ** n`` for an integer ``-1022 <= n <= 1023``, from the exponent bits."""
    def codegen(context, builder, signature, args):
        import llvmlite.ir as ir
        i64 = ir.IntType(64)
        biased = builder.add(args[0], ir.Constant(i64, 1023))
        return builder.bitcast(builder.shl(biased, ir.Constant(i64, 52)), ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(fastmath={"contract"}, cache=True)
def exp(x):
    """``exp(x)`` in float64 arithmetic, for results to be rounded to float32."""
    # Beyond +-200 a float32 result is 0 or inf anyway; the clamp keeps 2**n normal.
    # NaN passes the clamp (comparisons with NaN are false) and the polynomial.
    x = 200.0 if x > 200.0 else x
    x = -200.0 if x < -200.0 else x
    safe = x if x == x else 0.0           # converting NaN to an integer is undefined
    n = math.floor(safe * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    # Taylor to degree 7: |r| <= ln(2)/2 leaves a relative error below 8e-9, an
    # eighth of a float32 ulp (2**-24 relative at least) before the one rounding.
    p = 1.0 + r * (1.0 + r * (0.5 + r * (0.16666666666666666 + r * (
        0.041666666666666664 + r * (0.008333333333333333 + r * (
            0.001388888888888889 + r * 0.0001984126984126984))))))
    return p * _pow2(np.int64(n))


@njit(fastmath={"contract"}, cache=True)
def sigmoid(x):
    """``1 / (1 + exp(-x))``: in float64 neither overflow nor cancellation matters for
    a float32 result (``exp(200)`` is finite; the clamp in :func:`exp` covers the rest).
    """
    return 1.0 / (1.0 + exp(-x))


@njit(fastmath={"contract"}, cache=True)
def tanh(x):
    """``tanh(x) = 1 - 2 / (exp(2|x|) + 1)`` with the sign of ``x``; below ``|x| = 0.02``
    a Taylor polynomial, where the subtraction would lose relative accuracy.
    """
    a = abs(x)
    a = 20.0 if a > 20.0 else a           # tanh(20) is 1 in float32 (and in float64)
    big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0)
    a2 = a * a
    small = a * (1.0 - a2 * (0.3333333333333333 - a2 * (
        0.13333333333333333 - a2 * 0.05396825396825397)))
    t = small if a < 0.02 else big
    t = t if x == x else x                # NaN in, NaN out
    return math.copysign(t, x)

