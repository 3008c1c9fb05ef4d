"""Initializers: callables ``init(shape, dtype=None) -> array`` for ``fg.get_variable``
(and anything else that wants initial values), as TF1's ``tf.*_initializer``.

They compute NumPy arrays on the host, from the same Philox generator as the random
ops (:mod:`flowgraph.philox`), so they add no ops to the graph; the seeds follow TF1's
rules (:func:`flowgraph.get_seed`): with a seed (or a graph seed) the values are
reproducible, with none they come from fresh entropy.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     w = fg.glorot_uniform_initializer(seed=1)((4, 6), fg.float32)
...     q = fg.orthogonal_initializer(seed=1)((3, 3), fg.float64)
>>> w.shape, bool(abs(w).max() <= (6 / 10) ** 0.5), bool(np.allclose(q @ q.T, np.eye(3)))
((4, 6), True, True)
"""
from __future__ import annotations

import numpy as np

from . import dtypes, philox
from .random_ops import get_seed


def _shape(shape):
    return tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else [shape]))


class Initializer:
    """Base: ``init(shape, dtype=None, partition_info=None) -> ndarray``."""

    dtype = dtypes.float32

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = dtypes.as_dtype(dtype if dtype is not None else self.dtype)
        return self._values(_shape(shape), dtype)

    def _values(self, shape, dtype):
        raise NotImplementedError

    def __repr__(self):
        return f"<fg.{type(self).__name__}>"


class _Seeded(Initializer):
    def __init__(self, seed=None, dtype=dtypes.float32):
        self.seed = seed
        self.dtype = dtypes.as_dtype(dtype)

    def _key(self):
        key = get_seed(self.seed)
        if key[0] is None:
            return tuple(int(w) & 0x7FFFFFFF for w in np.random.SeedSequence()
                         .generate_state(2))
        return key


class zeros_initializer(Initializer):
    """All zeros."""

    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtypes.as_dtype(dtype)

    def _values(self, shape, dtype):
        return np.zeros(shape, dtype)


class ones_initializer(zeros_initializer):
    """All ones."""

    def _values(self, shape, dtype):
        return np.ones(shape, dtype)


class constant_initializer(Initializer):
    """``value`` (a scalar, or as many values as the shape has elements).

    >>> constant_initializer([1, 2, 3, 4])((2, 2)).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    """

    def __init__(self, value=0, dtype=dtypes.float32):
        self.value = np.asarray(value)
        self.dtype = dtypes.as_dtype(dtype)

    def _values(self, shape, dtype):
        if self.value.size == 1:
            return np.full(shape, self.value.reshape(()), dtype)
        if self.value.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"constant_initializer: expected 1 or {int(np.prod(shape))} "
                             f"values for shape {shape}, found {self.value.size}")
        return self.value.astype(dtype).reshape(shape)


class random_uniform_initializer(_Seeded):
    """Uniform in ``[minval, maxval)``."""

    def __init__(self, minval=0.0, maxval=None, seed=None, dtype=dtypes.float32):
        super().__init__(seed, dtype)
        self.minval, self.maxval = minval, (1.0 if maxval is None else maxval)

    def _values(self, shape, dtype):
        return philox.uniform(shape, dtype, self._key(), 0, self.minval, self.maxval)


class random_normal_initializer(_Seeded):
    """Normal with ``mean`` and ``stddev``."""

    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=dtypes.float32):
        super().__init__(seed, dtype)
        self.mean, self.stddev = mean, stddev

    def _values(self, shape, dtype):
        return philox.normal(shape, dtype, self._key(), 0, self.mean, self.stddev)


class truncated_normal_initializer(random_normal_initializer):
    """Normal with ``mean`` and ``stddev``, redrawn beyond two standard deviations."""

    def _values(self, shape, dtype):
        return philox.truncated_normal(shape, dtype, self._key(), 0, self.mean, self.stddev)


def _fans(shape):
    if not shape:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class glorot_uniform_initializer(_Seeded):
    """Glorot & Bengio: uniform in ``±sqrt(6 / (fan_in + fan_out))`` (TF1's default
    for ``get_variable``)."""

    def _values(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
        return philox.uniform(shape, dtype, self._key(), 0, -limit, limit)


class variance_scaling_initializer(_Seeded):
    """TF1's ``tf.variance_scaling_initializer``: ``n`` is ``fan_in``, ``fan_out`` or
    their mean (``mode``); ``distribution`` ``"truncated_normal"`` (or TF1's older
    ``"normal"``, the same) draws a normal truncated at two standard deviations with
    ``stddev = sqrt(scale / n) / 0.87962566103423978`` (the truncation's correction),
    ``"untruncated_normal"`` a plain normal with ``sqrt(scale / n)``, ``"uniform"``
    uniform in ``±sqrt(3 * scale / n)``.

    >>> w = variance_scaling_initializer(2.0, "fan_in", "uniform", seed=1)((100, 10))
    >>> bool(abs(w).max() <= (3 * 2.0 / 100) ** 0.5)
    True
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("normal", "truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 dtype=dtypes.float32):
        if scale <= 0.0:
            raise ValueError(f"variance_scaling_initializer: expected scale > 0, found {scale}")
        if mode not in self.MODES:
            raise ValueError(f"variance_scaling_initializer: expected mode in {self.MODES}, "
                             f"found {mode!r}")
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"variance_scaling_initializer: expected distribution in "
                             f"{self.DISTRIBUTIONS}, found {distribution!r}")
        super().__init__(seed, dtype)
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _values(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[
            self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = np.sqrt(3.0 * variance)
            return philox.uniform(shape, dtype, self._key(), 0, -limit, limit)
        if self.distribution == "untruncated_normal":
            return philox.normal(shape, dtype, self._key(), 0, 0.0, np.sqrt(variance))
        return philox.truncated_normal(shape, dtype, self._key(), 0, 0.0,
                                       np.sqrt(variance) / 0.87962566103423978)


class glorot_normal_initializer(variance_scaling_initializer):
    """Glorot & Bengio's normal: ``variance_scaling_initializer(1.0, "fan_avg",
    "truncated_normal")`` (TF1's ``tf.glorot_normal_initializer``)."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)


class orthogonal_initializer(_Seeded):
    """A (semi-)orthogonal matrix times ``gain``: the Q of a Gaussian matrix's QR
    decomposition with signs fixed (TF1's algorithm); rank > 2 shapes are flattened to
    ``[prod(shape[:-1]), shape[-1]]``."""

    def __init__(self, gain=1.0, seed=None, dtype=dtypes.float32):
        super().__init__(seed, dtype)
        self.gain = gain

    def _values(self, shape, dtype):
        if len(shape) < 2:
            raise ValueError(f"orthogonal_initializer: expected a shape of rank >= 2, "
                             f"found {shape}")
        rows, cols = int(np.prod(shape[:-1])), shape[-1]
        a = philox.normal((max(rows, cols), min(rows, cols)), np.float64, self._key(), 0,
                          0.0, 1.0)
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)


__all__ = ["zeros_initializer", "ones_initializer", "constant_initializer",
           "random_uniform_initializer", "random_normal_initializer",
           "truncated_normal_initializer", "glorot_uniform_initializer",
           "orthogonal_initializer", "variance_scaling_initializer",
           "glorot_normal_initializer", "Initializer"]
