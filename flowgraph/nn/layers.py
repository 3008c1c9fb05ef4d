"""A dense (fully connected) layer: ``y = activation(x @ kernel + bias)``.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (None, 3))
...     layer = fg.nn.Dense(2, activation=fg.nn.relu, seed=0)
...     y = layer(x)
...     layer.kernel.shape, layer.bias.shape, y.shape
((3, 2), (2,), (None, 2))
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from ..errors import ShapeError
from ..graph import name_scope
from ..variable_scopes import get_variable, get_variable_scope, variable_scope
from . import init


class Dense:
    """A fully connected layer; ``kernel [in, units]`` (Glorot-uniform from ``seed``,
    or the enclosing variable scope's initializer) and ``bias [units]`` (zeros) are
    made on the first call with ``fg.get_variable`` in ``variable_scope(None,
    default_name=name)``, so a layer built under a reusing scope shares them.
    """

    def __init__(self, units, activation=None, use_bias=True, name="dense", seed=None,
                 kernel_initializer=None):
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.name = name
        self._rng = init.as_rng(seed)
        self._explicit_kernel_init = kernel_initializer
        self._kernel_init = kernel_initializer or init.glorot_uniform
        self.kernel = self.bias = None
        self.variables = []
        self._scope = None

    def __call__(self, inputs):
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) != 2 or x.shape[1] is None:
            raise ShapeError(f"Dense '{self.name}': expected inputs [batch, features] with "
                             f"known features, found {x.name} of shape {x.shape}")
        if self.kernel is None:
            with variable_scope(None, default_name=self.name) as scope:
                self._scope = scope.name.rsplit("/", 1)[-1]
                self._build(int(x.shape[1]), x.dtype)
        elif x.shape[1] != self.kernel.shape[0]:
            raise ShapeError(f"Dense '{self._scope}': built for {self.kernel.shape[0]} input "
                             f"features, found {x.name} of shape {x.shape}")
        with name_scope(self._scope):
            y = F.matmul(x, self.kernel)
            if self.use_bias:
                y = y + self.bias
            return self.activation(y) if self.activation is not None else y


    def _build(self, features, dtype):
        shape = (features, self.units)
        if self._explicit_kernel_init is None and get_variable_scope().initializer is not None:
            self.kernel = get_variable("kernel", shape, dtype)   # the scope's initializer
        else:
            self.kernel = get_variable("kernel", shape, dtype, initializer=lambda s, dtype=None:
                                       np.asarray(self._kernel_init(s, self._rng, dtype),
                                                  dtype=dtype))
        self.variables.append(self.kernel)
        if self.use_bias:
            self.bias = get_variable("bias", (self.units,), dtype,
                                     initializer=lambda s, dtype=None: np.zeros(s, dtype))
            self.variables.append(self.bias)


def dense(inputs, units, activation=None, use_bias=True, name="dense", seed=None):
    """``Dense(units, ...)(inputs)``: a new layer applied once (as ``tf.layers.dense``)."""
    return Dense(units, activation, use_bias, name, seed)(inputs)


def xw_plus_b(x, weights, biases, name=None):
    """``x @ weights + biases`` (TF1's ``tf.nn.xw_plus_b``).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.nn.xw_plus_b([[1.0, 2.0]], [[1.0], [1.0]], [0.5])
    ...     fg.Session().run(y)
    array([[3.5]], dtype=float32)
    """
    return F.add(F.matmul(x, weights), biases, name=name)


__all__ = ["Dense", "dense", "xw_plus_b"]
