"""Philox4x32-10 blocks as one Numba loop, for the compiled CPU plan's random ops.

The reference (:mod:`flowgraph.philox`) runs the ten rounds as whole-array NumPy
operations: about 15 array passes per round, 60-80 ns per float32 uniform here. This
loop keeps a block's four words in registers. It makes only the raw 32-bit words, and
integer arithmetic is exact, so the numbers are bit-identical to the reference (the
conversion to floats stays the reference's NumPy code; tests/test_random.py compares).
Compiled on first use, cached on disk like every generated kernel (:mod:`kernels.cache`).

>>> import numpy as np
>>> from flowgraph import philox
>>> fast = contiguous_blocks((1, 2), 3, 5)
>>> bool((fast == philox.blocks((1, 2), 3, np.arange(5, dtype=np.uint64))).all())
True
"""
from __future__ import annotations

import numpy as np

SOURCE = '''import numpy as np
from numba import njit


@njit(nogil=True)   # no cache=True: kernels.cache attaches its sealed disk cache
def philox_blocks(out, attempt, run_lo, run_hi, k0, k1):
    m0 = np.uint64(0xD2511F53)
    m1 = np.uint64(0xCD9E8D57)
    w0 = np.uint64(0x9E3779B9)
    w1 = np.uint64(0xBB67AE85)
    low = np.uint64(0xFFFFFFFF)
    s = np.uint64(32)
    for i in range(out.shape[0]):
        c0 = np.uint64(i)
        c1 = attempt
        c2 = run_lo
        c3 = run_hi
        a = k0
        b = k1
        for r in range(10):
            if r > 0:
                a = (a + w0) & low
                b = (b + w1) & low
            p0 = c0 * m0
            p1 = c2 * m1
            n0 = (p1 >> s) ^ c1 ^ a
            n2 = (p0 >> s) ^ c3 ^ b
            c1 = p1 & low
            c3 = p0 & low
            c0 = n0
            c2 = n2
        out[i, 0] = np.uint32(c0)
        out[i, 1] = np.uint32(c1)
        out[i, 2] = np.uint32(c2)
        out[i, 3] = np.uint32(c3)
'''


def contiguous_blocks(key, run, nblocks, attempt=0):
    """The ``(4, nblocks)`` uint32 words of blocks ``0 .. nblocks-1`` of one draw (a
    transposed view of a block-major array: the element-major order the conversions
    read is then contiguous)."""
    from numba import types

    from ..cache import compile_kernel
    kernel = compile_kernel(SOURCE, "philox_blocks",
                            (types.uint32[:, ::1],) + (types.uint64,) * 5)
    out = np.empty((int(nblocks), 4), np.uint32)
    run = int(run)
    kernel(out, np.uint64(attempt), np.uint64(run & 0xFFFFFFFF),
           np.uint64((run >> 32) & 0xFFFFFFFF), np.uint64(int(key[0]) & 0xFFFFFFFF),
           np.uint64(int(key[1]) & 0xFFFFFFFF))
    return out.T


__all__ = ["contiguous_blocks"]
