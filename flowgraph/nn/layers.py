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
from .. import shapes as S
from ..errors import ShapeError
from ..graph import location_suffix, name_scope
from ..variable_scopes import get_variable, get_variable_scope, variable_scope
from . import init


class Dense:
    """A fully connected layer; ``kernel [in, units]`` (Glorot-uniform from ``seed``,
    or the enclosing variable scope's initializer) and ``bias [units]`` (zeros) are
    made on the first call with ``fg.get_variable`` in ``variable_scope(None,
    default_name=name)``, so a layer built under a reusing scope shares them.
    """

    def __init__(self, units, activation=None, use_bias=True, name="dense", seed=None,
                 kernel_initializer=None, bias_initializer=None, trainable=True):
        self.units = int(units)
        self.trainable = bool(trainable)     # False: variables outside trainable_variables()
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.name = name
        self._rng = init.as_rng(seed)
        self._explicit_kernel_init = kernel_initializer
        self._kernel_init = kernel_initializer or init.glorot_uniform
        self._bias_init = bias_initializer
        self.kernel = self.bias = None
        self.variables = []
        self._scope = None
        # fg.layers' layers set these: a layer named there opens exactly that scope
        # (TF1's tf.layers), with its reuse; otherwise a unique one (dense, dense_1).
        self._scope_name = self._reuse = None

    def __call__(self, inputs):
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) < 2 or x.shape[-1] is None:
            raise ShapeError(f"Dense '{self.name}': expected inputs [..., features] of rank "
                             f"2 or more with known features, found {x.name} of shape "
                             f"{x.shape}")
        if self.kernel is None:
            self._build_in_scope(x)
        elif x.shape[-1] != self.kernel.shape[0]:
            raise ShapeError(f"Dense '{self._scope}': built for {self.kernel.shape[0]} input "
                             f"features, found {x.name} of shape {x.shape}")
        with name_scope(self._scope):
            y = F.matmul(x, self.kernel)
            if self.use_bias:
                y = y + self.bias
            return self.activation(y) if self.activation is not None else y


    def _kernel_shape(self, features):
        return (features, self.units)

    def _build_in_scope(self, x):
        """Make the variables for inputs like ``x`` (known last dimension), in the
        scope the layer was named for (fg.layers), or in a unique one of its name."""
        opened = (variable_scope(self._scope_name, reuse=self._reuse)
                  if self._scope_name is not None
                  else variable_scope(None, default_name=self.name))
        with opened as scope:
            self._scope = scope.name.rsplit("/", 1)[-1]
            self._build(int(x.shape[-1]), x.dtype)

    def _build(self, features, dtype):
        shape = self._kernel_shape(features)      # fg.layers.Conv2D: [kh, kw, in, out]
        if self._explicit_kernel_init is None and get_variable_scope().initializer is not None:
            self.kernel = get_variable("kernel", shape, dtype,     # the scope's initializer
                                       trainable=self.trainable)
        else:
            self.kernel = get_variable("kernel", shape, dtype, initializer=lambda s, dtype=None:
                                       np.asarray(self._kernel_init(s, self._rng, dtype),
                                                  dtype=dtype), trainable=self.trainable)
        self.variables.append(self.kernel)
        self._build_bias(dtype)

    def _build_bias(self, dtype):
        """The ``bias [units]`` variable (zeros unless ``bias_initializer``), if
        ``use_bias``; also the layers built on this one (fg.layers) call it."""
        if self.use_bias:
            self.bias = get_variable("bias", (self.units,), dtype,
                                     initializer=self._bias_init or
                                     (lambda s, dtype=None: np.zeros(s, dtype)),
                                     trainable=self.trainable)
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


def bias_add(value, bias, data_format=None, name=None):
    """``value + bias`` with ``bias`` a vector of ``value``'s last dimension (TF1's
    ``tf.nn.bias_add``, NHWC / channels last); any other bias is a ``ShapeError``, where
    ``+`` would broadcast it.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.nn.bias_add([[1.0, 2.0], [3.0, 4.0]], [10.0, 20.0]))
    array([[11., 22.],
           [13., 24.]], dtype=float32)
    """
    value, bias = F.convert_to_tensor(value), F.convert_to_tensor(bias)
    if data_format not in (None, "NHWC", "N...C"):
        raise ValueError(f"bias_add: only channels-last data (data_format 'NHWC'), found "
                         f"{data_format!r}")
    last = None if value.shape is None or not value.shape else value.shape[-1]
    if (value.shape is not None and len(value.shape) < 2) or (bias.shape is not None and (
            len(bias.shape) != 1 or None not in (last, bias.shape[0])
            and bias.shape[0] != last)):
        raise ShapeError("bias_add" + location_suffix("called")
                         + f": expected a value of rank >= 2 and a bias of shape "
                         f"({'?' if last is None else last},), found value "
                         f"{S.fmt(value.shape)} and bias {S.fmt(bias.shape)}")
    return F.add(value, bias, name=name)


__all__ = ["Dense", "dense", "xw_plus_b", "bias_add"]
