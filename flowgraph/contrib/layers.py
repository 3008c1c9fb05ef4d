"""TF1's ``tf.contrib.layers``: ``xavier_initializer``, the regularizers of
:mod:`flowgraph.regularizers` and ``batch_norm`` (:mod:`flowgraph.batch_norm`); see
:mod:`flowgraph.contrib`."""
from __future__ import annotations

import numpy as np

from .. import dtypes, philox
from ..initializers import _fans, _Seeded, glorot_uniform_initializer
# TF1's weight regularizers (tf.contrib.layers.l2_regularizer, ...) and batch_norm
from ..batch_norm import batch_norm
from ..regularizers import (apply_regularization, l1_l2_regularizer, l1_regularizer,
                            l2_regularizer, sum_regularizer)


class _xavier_normal(_Seeded):
    """contrib's ``variance_scaling_initializer(1.0, "FAN_AVG", uniform=False)``: a
    normal truncated at two standard deviations, ``stddev = sqrt(1.3 / fan_avg)``."""

    def _values(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        stddev = np.sqrt(1.3 / max(1.0, (fan_in + fan_out) / 2.0))
        return philox.truncated_normal(shape, dtype, self._key(), 0, 0.0, stddev)


def xavier_initializer(uniform=True, seed=None, dtype=dtypes.float32):
    """TF1's ``tf.contrib.layers.xavier_initializer``: Glorot-uniform, or with
    ``uniform=False`` contrib's truncated normal (``stddev = sqrt(1.3 / fan_avg)``)."""
    if uniform:
        return glorot_uniform_initializer(seed=seed, dtype=dtype)
    return _xavier_normal(seed=seed, dtype=dtype)


__all__ = ["xavier_initializer",
           # TF1's weight regularizers
           "l1_regularizer", "l2_regularizer", "l1_l2_regularizer", "sum_regularizer",
           "apply_regularization", "batch_norm"]
