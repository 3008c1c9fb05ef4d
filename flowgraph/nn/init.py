"""Weight initializers: NumPy functions that return initial arrays.

They are plain NumPy (no graph ops), so a variable's initial value is computed once,
reproducibly from ``seed`` (an int, a ``numpy.random.Generator``, or ``None`` for fresh
entropy).

>>> from flowgraph.nn import init
>>> w = init.glorot_uniform((4, 6), seed=0)
>>> w.shape, bool(abs(w).max() <= (6 / (4 + 6)) ** 0.5)
((4, 6), True)
>>> q = init.orthogonal((3, 3), seed=0)
>>> bool(np.allclose(q @ q.T, np.eye(3), atol=1e-6))
True
"""
from __future__ import annotations

import numpy as np


def as_rng(seed):
    """A ``numpy.random.Generator`` from an int seed, a generator, or ``None``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _fans(shape):
    """(fan_in, fan_out) of a weight shape; for a 2-D ``[in, out]`` kernel the obvious."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, seed=None, dtype=np.float32, gain=1.0):
    """Glorot & Bengio (2010): ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(shape)
    limit = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return as_rng(seed).uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, seed=None, dtype=np.float32, gain=1.0):
    """Saxe et al. (2014): a (semi-)orthogonal matrix from the QR decomposition of a
    Gaussian matrix, signs fixed so the result is uniformly distributed; tensors of
    rank > 2 are flattened to ``[prod(shape[:-1]), shape[-1]]``.
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: expected a shape of rank >= 2, found {shape}")
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = as_rng(seed).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # make the decomposition unique (uniform Haar measure)
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(dtype)


def zeros(shape, dtype=np.float32):
    """An array of zeros (biases)."""
    return np.zeros(shape, dtype)


__all__ = ["glorot_uniform", "orthogonal", "zeros", "as_rng"]
