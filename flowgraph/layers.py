"""TF1's ``tf.layers`` namespace: ``dense``/``Dense`` and ``dropout`` with TF1's
signatures, on top of :class:`flowgraph.nn.Dense` and :func:`flowgraph.nn.dropout`.

The differences from the ``fg.nn`` spellings are TF1's: initializers are TF1
initializers (``fg.zeros_initializer()``, ``fg.truncated_normal_initializer(...)``:
callables ``(shape, dtype)``), a ``name=`` opens exactly that variable scope (with
``reuse=``, so ``tf.layers.dense(h, 10, name="out", reuse=True)`` shares a layer's
weights), inputs of rank 3 or more are multiplied along their last axis, and
``dropout`` takes a ``rate`` and a ``training`` flag (a Python bool or a boolean
tensor) instead of a ``keep_prob``.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (None, None, 3))              # [batch, time, 3]
...     training = fg.placeholder_with_default(False, ())
...     h = fg.layers.dense(x, 4, activation=fg.nn.relu, name="hidden")
...     y = fg.layers.dense(fg.layers.dropout(h, 0.5, training=training), 2, name="out")
...     with fg.Session() as sess:
...         sess.run(fg.global_variables_initializer())
...         out = sess.run(y, {x: np.ones((5, 7, 3), np.float32)})
...     out.shape, [v.op.name for v in fg.trainable_variables()]
((5, 7, 2), ['hidden/kernel', 'hidden/bias', 'out/kernel', 'out/bias'])
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from . import dtypes
from . import shapes as S
from .errors import ShapeError
from .nn import dropouts
from .nn import layers as nn_layers


class Dense(nn_layers.Dense):
    """``tf.layers.Dense``: ``activation(inputs @ kernel + bias)`` over the last axis of
    ``inputs``; ``kernel [features, units]`` from ``kernel_initializer`` (else the
    variable scope's initializer, else Glorot-uniform) and ``bias [units]`` from
    ``bias_initializer`` (else zeros), made on the first call."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer=None,
                 bias_initializer=None, name=None, _reuse=None, seed=None, trainable=True):
        tf1_kernel_init = None
        if kernel_initializer is not None:
            def tf1_kernel_init(shape, rng, dtype):     # fg.nn's initializers take an rng
                return kernel_initializer(shape, dtype=dtype)
        super().__init__(units, activation, use_bias, name or "dense", seed,
                         kernel_initializer=tf1_kernel_init,
                         bias_initializer=bias_initializer, trainable=trainable)
        self._scope_name, self._reuse = name, _reuse


def dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None,
          bias_initializer=None, name=None, reuse=None, trainable=True):
    """``tf.layers.dense``: a new :class:`Dense` layer applied once to ``inputs``
    (``[..., features]``). With ``name``, its variables are ``<scope>/<name>/kernel``
    and ``.../bias``, and ``reuse=True`` takes them from an earlier layer of that name;
    without, the layer's scope is ``dense``, ``dense_1``, ... ``trainable=False`` keeps
    the variables out of ``fg.trainable_variables()`` (TF1).
    """
    return Dense(units, activation, use_bias, kernel_initializer, bias_initializer, name,
                 _reuse=reuse, trainable=trainable)(inputs)


def dropout(inputs, rate=0.5, noise_shape=None, seed=None, training=False, name=None):
    """``tf.layers.dropout``: with ``training`` true, each element is dropped with
    probability ``rate`` and the rest scaled by ``1 / (1 - rate)``; with it false,
    ``inputs`` unchanged. ``training`` may be a boolean scalar tensor (a placeholder,
    say), decided at run time: when false, the kept fraction is 1 and the values pass
    through exactly.
    """
    inputs = F.convert_to_tensor(inputs)
    if isinstance(training, (bool, np.bool_)):
        if not training:
            return inputs
        return dropouts.dropout(inputs, rate=rate, noise_shape=noise_shape, seed=seed,
                                name=name)
    training = F.convert_to_tensor(training)
    if training.dtype != dtypes.bool_ or training.shape not in ((), None):
        raise ValueError(f"dropout: expected training to be a Python bool or a boolean "
                         f"scalar tensor, found {training.name} of dtype "
                         f"{training.dtype.name} and shape {training.shape}")
    if isinstance(rate, numbers.Real) and not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"dropout: expected rate in [0, 1), found {rate}")
    keep = F.cast(1.0 - F.convert_to_tensor(rate), inputs.dtype) if not isinstance(
        rate, numbers.Real) else F.constant(1.0 - float(rate), dtype=inputs.dtype)
    keep_prob = F.where(training, keep, F.ones_like(keep))
    return dropouts.dropout(inputs, keep_prob, noise_shape=noise_shape, seed=seed,
                            name=name)


def flatten(inputs, name=None, data_format="channels_last"):
    """``tf.layers.flatten``: ``inputs`` reshaped to ``[batch, -1]`` (the batch may be
    known only at run time; the other dimensions must be known)."""
    x = F.convert_to_tensor(inputs)
    if x.shape is None or len(x.shape) < 1 or None in x.shape[1:]:
        raise ShapeError(f"flatten of {x.name}: expected a known rank >= 1 and known "
                         f"dimensions after the first, found shape {S.fmt(x.shape)}")
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"flatten: expected data_format 'channels_last' or "
                         f"'channels_first', found {data_format!r}")
    rest = int(np.prod(x.shape[1:], dtype=np.int64))
    return F.reshape(x, [-1, rest], name=name)


__all__ = ["Dense", "dense", "dropout", "flatten"]
