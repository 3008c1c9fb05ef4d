"""Philox4x32-10, the counter-based generator behind every random op, in vectorized
NumPy (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).

A counter-based generator is a pure function ``(counter, key) -> 4 random words``, so
each element of a random tensor is computed on its own, the same way on every path:
the reference executor, the compiled CPU plan and a device all draw bit-identical
numbers. flowgraph builds the 128-bit counter and the 64-bit key as

* key     = (graph seed, op seed), both 31-bit (TF1's seed rules, :mod:`.random_ops`);
* counter = (block index, attempt, run number low word, run number high word),

where *run number* counts the session's committed runs that drew random numbers, and
*attempt* is the resampling round of the truncated normal (0 elsewhere). One block of
four 32-bit words serves several consecutive elements (:data:`PER_BLOCK`):

* float32 uniform: 4 elements, element ``4b + j`` takes word ``j``: ``(w >> 8) * 2**-24``;
* float64 uniform: 2 elements, words ``(2j, 2j + 1)``: 53 bits (NumPy's ``random_double``
  rule); integers likewise take 64 bits modulo the range;
* normal: 2 elements, Box-Muller in float64 from the 53-bit uniforms of words (0, 1) and
  (2, 3): element ``2b`` is the cosine branch, ``2b + 1`` the sine branch; then cast;
* truncated normal: as normal; an element outside two standard deviations is drawn
  again from its block of attempt 1, 2, ... (its own branch), until inside.

>>> words = philox4x32(np.zeros((4, 1), np.uint32), (0, 0))
>>> [hex(int(w)) for w in words[:, 0]]
['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
"""
from __future__ import annotations

import numpy as np

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_LOW = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
ROUNDS = 10
TRUNCATE_AT = 2.0           # truncated normals lie within this many stddevs
MAX_BLOCKS = 1 << 32        # the block index is one 32-bit counter word


def per_block(kind, dtype):
    """Elements one block of four words serves: ``kind`` "uniform" or "normal"."""
    if kind == "uniform" and np.dtype(dtype) == np.float32:
        return 4
    return 2


def philox4x32(counter, key, rounds=ROUNDS):
    """The Philox4x32 bijection: ``counter`` a ``(4, n)`` uint32 array, ``key`` two
    32-bit ints; returns the ``(4, n)`` uint32 random words.
    """
    c0, c1, c2, c3 = (np.array(w, np.uint64) for w in counter)
    p0, p1 = np.empty_like(c0), np.empty_like(c0)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for r in range(rounds):   # in place: ten array operations per round
        if r:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        np.multiply(c0, _M0, out=p0)
        np.multiply(c2, _M1, out=p1)
        np.right_shift(p1, _32, out=c0)
        c0 ^= c1
        c0 ^= np.uint64(k0)
        np.bitwise_and(p1, _LOW, out=c1)
        np.right_shift(p0, _32, out=c2)
        c2 ^= c3
        c2 ^= np.uint64(k1)
        np.bitwise_and(p0, _LOW, out=c3)
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def blocks(key, run, blocks_index, attempt=0):
    """The ``(4, n)`` words of blocks ``blocks_index`` (uint64 array) of one draw."""
    run = int(run)
    n = blocks_index.shape
    counter = (blocks_index, np.full(n, attempt, np.uint64),
               np.full(n, run & 0xFFFFFFFF, np.uint64),
               np.full(n, (run >> 32) & 0xFFFFFFFF, np.uint64))
    return philox4x32(counter, key)


def _numpy_blocks(key, run, nblocks, attempt=0):
    return blocks(key, run, np.arange(nblocks, dtype=np.uint64), attempt)


def _count(shape, per):
    n = int(np.prod(shape, dtype=np.int64))
    nblocks = -(-n // per)
    if nblocks > MAX_BLOCKS:
        raise ValueError(f"expected at most {MAX_BLOCKS * per} random elements, found {n}")
    return n, nblocks


def unit_float(w, dtype, w_next=None):
    """Words to uniform floats in ``[0, 1)``: 24 bits for float32, 53 for float64."""
    if np.dtype(dtype) == np.float32:
        return (w >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    hi = (w >> np.uint32(5)).astype(np.float64)
    lo = (w_next >> np.uint32(6)).astype(np.float64)
    return (hi * 67108864.0 + lo) * (2.0 ** -53)


def uniform(shape, dtype, key, run, low, high, generator=None):
    """Uniform numbers in ``[low, high)`` (integers: ``low + bits % (high - low)``).

    ``generator(key, run, nblocks, attempt) -> (4, nblocks) words`` replaces the NumPy
    rounds (the compiled plan passes a Numba loop making the same words).
    """
    dtype = np.dtype(dtype)
    per = per_block("uniform", dtype)
    n, nblocks = _count(shape, per)
    w = (generator or _numpy_blocks)(key, run, nblocks)
    if per == 4:
        u = unit_float(w.T.reshape(-1)[:n], np.float32)   # element 4b + j: word j
        if float(low) == 0.0 and float(high) == 1.0 and dtype == np.float32:
            return u.reshape(shape)      # what the formula below gives, exactly
        out = float(low) + u.astype(np.float64) * (float(high) - float(low))
        return out.astype(dtype).reshape(shape)
    first = w[0::2].T.reshape(-1)[:n]                      # element 2b + j: words 2j, 2j+1
    second = w[1::2].T.reshape(-1)[:n]
    if dtype.kind in "iu":
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"expected minval < maxval, found {low} and {high}")
        bits = (first.astype(np.uint64) << _32) | second.astype(np.uint64)
        return ((bits % np.uint64(span)).astype(np.int64) + int(low)).astype(dtype) \
            .reshape(shape)
    u = unit_float(first, np.float64, second)
    return (float(low) + u * (float(high) - float(low))).astype(dtype).reshape(shape)


def _box_muller(w):
    """The cosine and sine normals of blocks of words, in float64."""
    radius = np.sqrt(-2.0 * np.log1p(-unit_float(w[0], np.float64, w[1])))  # 1-u in (0, 1]
    angle = (2.0 * np.pi) * unit_float(w[2], np.float64, w[3])
    return radius * np.cos(angle), radius * np.sin(angle)


def _standard_normal(key, run, index, attempt=0):
    """Standard normals of elements ``index`` (uint64): element ``2b + j`` is branch
    ``j`` (cosine, sine) of block ``b``."""
    z_cos, z_sin = _box_muller(blocks(key, run, index >> np.uint64(1), attempt))
    return np.where((index & np.uint64(1)) == 0, z_cos, z_sin)


def normal(shape, dtype, key, run, mean, stddev, generator=None):
    """Normal numbers: Box-Muller in float64, then cast."""
    n, nblocks = _count(shape, 2)
    z_cos, z_sin = _box_muller((generator or _numpy_blocks)(key, run, nblocks))
    z = np.stack([z_cos, z_sin], axis=1).reshape(-1)[:n]
    return (float(mean) + float(stddev) * z).astype(dtype).reshape(shape)


def truncated_normal(shape, dtype, key, run, mean, stddev, generator=None):
    """Normals with ``|z| < 2`` (TF1's truncated normal): an element outside is drawn
    again from its branch of the block of attempt 1, 2, ... until inside.
    """
    n, _ = _count(shape, 2)
    out = normal((n,), np.float64, key, run, 0.0, 1.0, generator)
    todo = np.flatnonzero(np.abs(out) >= TRUNCATE_AT).astype(np.uint64)
    attempt = 1
    while todo.size:
        z = _standard_normal(key, run, todo, attempt)
        ok = np.abs(z) < TRUNCATE_AT
        out[todo[ok].astype(np.int64)] = z[ok]
        todo = todo[~ok]
        attempt += 1
    return (float(mean) + float(stddev) * out).astype(dtype).reshape(shape)


__all__ = ["philox4x32", "blocks", "per_block", "uniform", "normal", "truncated_normal",
           "unit_float"]
