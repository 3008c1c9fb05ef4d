"""Philox4x32-10, the counter-based generator behind every random op, in vectorized
NumPy (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).

A counter-based generator is a pure function ``(counter, key) -> 4 random words``, so
each element of a random tensor is computed on its own, the same way on every path:
the reference executor, the compiled CPU plan and a device all draw bit-identical
numbers. flowgraph builds the 128-bit counter and the 64-bit key as

* key     = (graph seed, op seed), both 31-bit (TF1's seed rules, :mod:`.random_ops`);
* counter = (element index, attempt, run number low word, run number high word),

where *run number* counts the session's committed runs that drew random numbers, and
*attempt* is the resampling round of the truncated normal (0 elsewhere).

The words become numbers by fixed rules, the same on every path: float32 uniforms take
the top 24 bits of word 0 (``(w0 >> 8) * 2**-24``), float64 uniforms 53 bits of words 0
and 1; normals are Box-Muller in float64 from words (0, 1) and (2, 3), cast at the end.

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
MAX_ELEMENTS = 1 << 32      # the element index is one 32-bit counter word
TRUNCATE_AT = 2.0           # truncated normals lie within this many stddevs


def philox4x32(counter, key, rounds=ROUNDS):
    """The Philox4x32 bijection: ``counter`` a ``(4, n)`` uint32 array, ``key`` two
    32-bit ints; returns the ``(4, n)`` uint32 random words.
    """
    c0, c1, c2, c3 = (np.asarray(w, np.uint64) for w in counter)
    k0, k1 = int(key[0]) & 0xFFFFFFFF, int(key[1]) & 0xFFFFFFFF
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W0) & 0xFFFFFFFF, (k1 + _W1) & 0xFFFFFFFF
        p0 = c0 * _M0
        p1 = c2 * _M1
        c0, c1, c2, c3 = ((p1 >> _32) ^ c1 ^ np.uint64(k0), p1 & _LOW,
                          (p0 >> _32) ^ c3 ^ np.uint64(k1), p0 & _LOW)
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def words(key, run, n, attempt=0, index=None):
    """Random words for elements ``index`` (default ``0..n-1``) of one draw:
    a ``(4, n)`` uint32 array."""
    if n > MAX_ELEMENTS:
        raise ValueError(f"expected at most 2**32 random elements, found {n}")
    index = np.arange(n, dtype=np.uint64) if index is None else index.astype(np.uint64)
    run = int(run)
    counter = (index, np.full(index.shape, attempt, np.uint64),
               np.full(index.shape, run & 0xFFFFFFFF, np.uint64),
               np.full(index.shape, (run >> 32) & 0xFFFFFFFF, np.uint64))
    return philox4x32(counter, key)


def unit_float(w, dtype, w_next=None):
    """Words to uniform floats in ``[0, 1)``: 24 bits for float32, 53 for float64."""
    if np.dtype(dtype) == np.float32:
        return (w >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    hi = (w >> np.uint32(5)).astype(np.float64)
    lo = (w_next >> np.uint32(6)).astype(np.float64)
    return (hi * 67108864.0 + lo) * (2.0 ** -53)


def _unit53(w):
    return unit_float(w[0], np.float64, w[1])


def uniform(shape, dtype, key, run, low, high):
    """Uniform numbers in ``[low, high)`` (integers: ``low + bits % (high - low)``)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    w = words(key, run, n)
    if dtype.kind in "iu":
        span = int(high) - int(low)
        if span <= 0:
            raise ValueError(f"expected minval < maxval, found {low} and {high}")
        bits = (w[0].astype(np.uint64) << _32) | w[1].astype(np.uint64)
        out = (bits % np.uint64(span)).astype(np.int64) + int(low)
        return out.astype(dtype).reshape(shape)
    u = unit_float(w[0], np.float32) if dtype == np.float32 else _unit53(w)
    out = float(low) + u.astype(np.float64) * (float(high) - float(low))
    return out.astype(dtype).reshape(shape)


def _box_muller(w):
    """Two standard normals per block of words, in float64."""
    radius = np.sqrt(-2.0 * np.log1p(-_unit53(w[0:2])))   # 1 - u in (0, 1]: finite
    angle = (2.0 * np.pi) * _unit53(w[2:4])
    return radius * np.cos(angle), radius * np.sin(angle)


def normal(shape, dtype, key, run, mean, stddev):
    """Normal numbers: Box-Muller in float64 (the cosine branch), then cast."""
    n = int(np.prod(shape, dtype=np.int64))
    z, _ = _box_muller(words(key, run, n))
    return (float(mean) + float(stddev) * z).astype(dtype).reshape(shape)


def truncated_normal(shape, dtype, key, run, mean, stddev):
    """Normals with ``|z| < 2`` (TF1's truncated normal): each element takes the
    cosine branch, else the sine branch, of attempt 0, 1, ... until one lies inside.
    """
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, np.float64)
    todo = np.arange(n, dtype=np.uint64)
    attempt = 0
    while todo.size:
        z_cos, z_sin = _box_muller(words(key, run, todo.size, attempt, todo))
        z = np.where(np.abs(z_cos) < TRUNCATE_AT, z_cos, z_sin)
        ok = np.abs(z) < TRUNCATE_AT
        out[todo[ok].astype(np.int64)] = z[ok]
        todo = todo[~ok]
        attempt += 1
    return (float(mean) + float(stddev) * out).astype(dtype).reshape(shape)


__all__ = ["philox4x32", "words", "uniform", "normal", "truncated_normal", "unit_float"]
