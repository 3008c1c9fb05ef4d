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
                 bias_initializer=None, name=None, _reuse=None, seed=None, trainable=True,
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None):
        _no_constraints(type(self).__name__, kernel_constraint=kernel_constraint,
                        bias_constraint=bias_constraint)
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        tf1_kernel_init = None
        if kernel_initializer is not None:
            def tf1_kernel_init(shape, rng, dtype):     # fg.nn's initializers take an rng
                return kernel_initializer(shape, dtype=dtype)
        super().__init__(units, activation, use_bias, name or "dense", seed,
                         kernel_initializer=tf1_kernel_init,
                         bias_initializer=bias_initializer, trainable=trainable)
        if kernel_initializer is None and seed is None:
            # TF1's default, get_variable's glorot_uniform_initializer(): its seed comes
            # from the graph's (fg.set_random_seed), so a seeded program initializes
            # the same weights every run (fg.nn's rng would draw fresh ones each time).
            # A variable scope's initializer still takes precedence (_build).
            def tf1_default_init(shape, rng, dtype):
                from .initializers import glorot_uniform_initializer
                return glorot_uniform_initializer()(shape, dtype=dtype)
            self._kernel_init = tf1_default_init
        self._scope_name, self._reuse = name, _reuse

    # --- TF1's regularizers (kernel_/bias_/activity_regularizer) ----------------------
    def _build(self, features, dtype):
        from .variable_scopes import _store, get_variable_scope
        created = get_variable_scope().name + "/kernel" not in _store().variables
        super()._build(features, dtype)
        if created:          # TF1: a reused layer adds no second regularization loss
            from .regularizers import add_regularization_loss
            add_regularization_loss(self.kernel, self.kernel_regularizer)
            if self.use_bias:
                add_regularization_loss(self.bias, self.bias_regularizer)

    def __call__(self, inputs):
        return self._regularize_activity(super().__call__(inputs))

    def _regularize_activity(self, outputs):
        """TF1's ``activity_regularizer``: ``regularizer(outputs) / batch size`` (the
        strength independent of the batch size) added to REGULARIZATION_LOSSES."""
        if self.activity_regularizer is None:
            return outputs
        from .graph import get_default_graph, name_scope
        from .regularizers import REGULARIZATION_LOSSES
        from .array_ops import shape as shape_of
        with name_scope(self._scope), name_scope("ActivityRegularizer"):
            loss = self.activity_regularizer(outputs)
            if loss is not None:
                loss = F.convert_to_tensor(loss)
                batch = F.cast(shape_of(outputs)[0], loss.dtype)
                get_default_graph().add_to_collection(REGULARIZATION_LOSSES, loss / batch)
        return outputs


def _no_constraints(layer, **constraints):
    given = [k for k, v in constraints.items() if v is not None]
    if given:
        raise NotImplementedError(f"{layer}: {', '.join(given)} (TF1's projection after "
                                  f"each optimizer step) is not supported by flowgraph")


def dense(inputs, units, activation=None, use_bias=True, kernel_initializer=None,
          bias_initializer=None, name=None, reuse=None, trainable=True,
          kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
          kernel_constraint=None, bias_constraint=None):
    """``tf.layers.dense``: a new :class:`Dense` layer applied once to ``inputs``
    (``[..., features]``). With ``name``, its variables are ``<scope>/<name>/kernel``
    and ``.../bias``, and ``reuse=True`` takes them from an earlier layer of that name;
    without, the layer's scope is ``dense``, ``dense_1``, ... ``trainable=False`` keeps
    the variables out of ``fg.trainable_variables()`` (TF1). ``kernel_regularizer`` and
    ``bias_regularizer`` (e.g. ``fg.contrib.layers.l2_regularizer(1e-4)``) add their
    losses to ``GraphKeys.REGULARIZATION_LOSSES`` when the variables are made;
    ``activity_regularizer(outputs)`` divided by the batch size is added there too.
    """
    return Dense(units, activation, use_bias, kernel_initializer, bias_initializer, name,
                 _reuse=reuse, trainable=trainable, kernel_regularizer=kernel_regularizer,
                 bias_regularizer=bias_regularizer,
                 activity_regularizer=activity_regularizer,
                 kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)(inputs)


class Conv2D(Dense):
    """``tf.layers.Conv2D``: ``activation(conv2d(inputs, kernel) + bias)`` over NHWC
    ``inputs`` (``data_format="channels_last"`` only); ``kernel [kh, kw, in, filters]``
    (Glorot-uniform over the receptive field by default, as TF1) and ``bias
    [filters]`` made on the first call, in the variable scope ``name`` (else
    ``conv2d``, ``conv2d_1``, ...), as :class:`Dense`'s.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 28, 28, 1))
    ...     h = fg.layers.conv2d(x, 32, 5, padding="same", activation=fg.nn.relu)
    ...     h = fg.layers.max_pooling2d(h, 2, 2)
    ...     h.shape, [v.op.name for v in fg.trainable_variables()]
    ((None, 14, 14, 32), ['conv2d/kernel', 'conv2d/bias'])
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer=None, bias_initializer=None, name=None,
                 _reuse=None, trainable=True, seed=None, kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None):
        if data_format != "channels_last":
            raise ValueError(f"conv2d: only data_format='channels_last' is supported, found "
                             f"{data_format!r}")
        super().__init__(filters, activation, use_bias, kernel_initializer,
                         bias_initializer, name, _reuse, seed, trainable,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint)
        self.name = name or "conv2d"
        self.kernel_size = _pair("conv2d", "kernel_size", kernel_size)
        self.strides = _pair("conv2d", "strides", strides)
        self.dilation_rate = _pair("conv2d", "dilation_rate", dilation_rate)
        self.padding = padding

    def _kernel_shape(self, features):
        return (*self.kernel_size, features, self.units)

    def __call__(self, inputs):
        from .graph import name_scope
        from .nn.conv import conv2d
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) != 4 or x.shape[-1] is None:
            raise ShapeError(f"conv2d '{self.name}': expected inputs [batch, height, width, "
                             f"channels] with known channels, found {x.name} of shape "
                             f"{S.fmt(x.shape)}")
        if self.kernel is None:
            self._build_in_scope(x)
        with name_scope(self._scope):
            y = conv2d(x, self.kernel, self.strides, self.padding,
                       dilations=self.dilation_rate)
            if self.use_bias:
                y = y + self.bias
            y = self.activation(y) if self.activation is not None else y
        return self._regularize_activity(y)


def _pair(fn_name, what, value):
    v = (value,) * 2 if isinstance(value, numbers.Integral) else tuple(value)
    if len(v) != 2:
        raise ValueError(f"{fn_name}: expected {what} as an int or 2 ints, found {value!r}")
    return tuple(int(i) for i in v)


def conv2d(inputs, filters, kernel_size, strides=(1, 1), padding="valid",
           data_format="channels_last", dilation_rate=(1, 1), activation=None,
           use_bias=True, kernel_initializer=None, bias_initializer=None, name=None,
           reuse=None, trainable=True, kernel_regularizer=None, bias_regularizer=None,
           activity_regularizer=None, kernel_constraint=None, bias_constraint=None):
    """``tf.layers.conv2d``: a new :class:`Conv2D` applied once to NHWC ``inputs``
    (``padding`` ``"valid"`` or ``"same"``, either case); regularizers as
    :func:`dense`'s."""
    return Conv2D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                  activation, use_bias, kernel_initializer, bias_initializer, name,
                  _reuse=reuse, trainable=trainable, kernel_regularizer=kernel_regularizer,
                  bias_regularizer=bias_regularizer,
                  activity_regularizer=activity_regularizer,
                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)(inputs)


class Conv2DTranspose(Conv2D):
    """``tf.layers.Conv2DTranspose``: ``activation(conv2d_transpose(inputs, kernel) +
    bias)`` over NHWC ``inputs``; ``kernel [kh, kw, filters, in]`` (TF1's layout:
    the transpose of a conv2d from ``filters`` channels to ``in``) and ``bias
    [filters]``, in the scope ``name`` (else ``conv2d_transpose``, ...). The output's
    spatial size is TF1's: ``in * stride`` with ``"same"``, ``in * stride + max(k -
    stride, 0)`` with ``"valid"``.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 7, 7, 16))
    ...     y = fg.layers.conv2d_transpose(x, 8, 5, strides=2, padding="same")
    ...     y.shape, [tuple(v.shape) for v in fg.trainable_variables()]
    ((None, 14, 14, 8), [(5, 5, 8, 16), (8,)])
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", activation=None, use_bias=True,
                 kernel_initializer=None, bias_initializer=None, name=None, _reuse=None,
                 trainable=True, seed=None, kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None):
        _channels_last("conv2d_transpose", data_format)
        super().__init__(filters, kernel_size, strides, padding, data_format, (1, 1),
                         activation, use_bias, kernel_initializer, bias_initializer,
                         name, _reuse, trainable, seed, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint)
        self.name = name or "conv2d_transpose"     # the default scope: conv2d_transpose_1...
        self.kernel_size = _pair("conv2d_transpose", "kernel_size", kernel_size)
        self.strides = _pair("conv2d_transpose", "strides", strides)

    def _kernel_shape(self, features):
        return (*self.kernel_size, self.units, features)

    def __call__(self, inputs):
        from .graph import name_scope
        from .nn.conv import _padding, conv2d_transpose
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) != 4 or None in x.shape[1:]:
            raise ShapeError(f"conv2d_transpose '{self.name}': expected inputs [batch, "
                             f"height, width, channels] with known height, width and "
                             f"channels, found {x.name} of shape {S.fmt(x.shape)}")
        padding = _padding("conv2d_transpose", self.padding)
        out_hw = [x.shape[1 + a] * self.strides[a] + (
            0 if padding == "SAME" else max(self.kernel_size[a] - self.strides[a], 0))
            for a in range(2)]
        if self.kernel is None:
            self._build_in_scope(x)
        with name_scope(self._scope):
            y = conv2d_transpose(x, self.kernel, [-1, *out_hw, self.units], self.strides,
                                 padding)
            if self.use_bias:
                y = y + self.bias
            y = self.activation(y) if self.activation is not None else y
        return self._regularize_activity(y)


def conv2d_transpose(inputs, filters, kernel_size, strides=(1, 1), padding="valid",
                     data_format="channels_last", activation=None, use_bias=True,
                     kernel_initializer=None, bias_initializer=None,
                     kernel_regularizer=None, bias_regularizer=None,
                     activity_regularizer=None, kernel_constraint=None,
                     bias_constraint=None, trainable=True, name=None, reuse=None):
    """``tf.layers.conv2d_transpose``: a new :class:`Conv2DTranspose` applied once to
    NHWC ``inputs``; regularizers as :func:`dense`'s."""
    return Conv2DTranspose(filters, kernel_size, strides, padding, data_format, activation,
                           use_bias, kernel_initializer, bias_initializer, name,
                           _reuse=reuse, trainable=trainable,
                           kernel_regularizer=kernel_regularizer,
                           bias_regularizer=bias_regularizer,
                           activity_regularizer=activity_regularizer,
                           kernel_constraint=kernel_constraint,
                           bias_constraint=bias_constraint)(inputs)


class Conv1D(Conv2D):
    """``tf.layers.Conv1D``: ``activation(conv1d(inputs, kernel) + bias)`` over NWC
    ``inputs [batch, width, channels]``; ``kernel [kw, in, filters]`` and ``bias
    [filters]`` in the scope ``name`` (else ``conv1d``, ...). It is :class:`Conv2D` on
    the inputs with a height of 1, as TF1's.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 20, 3))
    ...     y = fg.layers.conv1d(x, 4, 5, strides=2, padding="same", dilation_rate=1)
    ...     y.shape, [tuple(v.shape) for v in fg.trainable_variables()]
    ((None, 10, 4), [(5, 3, 4), (4,)])
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid",
                 data_format="channels_last", dilation_rate=1, activation=None,
                 use_bias=True, kernel_initializer=None, bias_initializer=None, name=None,
                 _reuse=None, trainable=True, seed=None, kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None):
        _channels_last("conv1d", data_format)
        width = _one("conv1d", "kernel_size", kernel_size)
        super().__init__(filters, (1, width), (1, _one("conv1d", "strides", strides)),
                         padding, data_format,
                         (1, _one("conv1d", "dilation_rate", dilation_rate)), activation,
                         use_bias, kernel_initializer, bias_initializer, name, _reuse,
                         trainable, seed, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint)
        self.name = name or "conv1d"               # the default scope: conv1d_1...

    def _kernel_shape(self, features):
        return (self.kernel_size[1], features, self.units)

    def __call__(self, inputs):
        from .graph import name_scope
        from .nn.conv import conv2d
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) != 3 or x.shape[-1] is None:
            raise ShapeError(f"conv1d '{self.name}': expected inputs [batch, width, "
                             f"channels] with known channels, found {x.name} of shape "
                             f"{S.fmt(x.shape)}")
        if self.kernel is None:
            self._build_in_scope(x)
        with name_scope(self._scope):
            y = conv2d(F.expand_dims(x, 1), F.expand_dims(self.kernel, 0), self.strides,
                       self.padding, dilations=self.dilation_rate)
            y = F.squeeze(y, [1])
            if self.use_bias:
                y = y + self.bias
            y = self.activation(y) if self.activation is not None else y
        return self._regularize_activity(y)


def _one(fn_name, what, value):
    v = (value,) if isinstance(value, numbers.Integral) else tuple(value)
    if len(v) != 1:
        raise ValueError(f"{fn_name}: expected {what} as an int or 1 int, found {value!r}")
    return int(v[0])


def conv1d(inputs, filters, kernel_size, strides=1, padding="valid",
           data_format="channels_last", dilation_rate=1, activation=None, use_bias=True,
           kernel_initializer=None, bias_initializer=None, kernel_regularizer=None,
           bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
           bias_constraint=None, trainable=True, name=None, reuse=None):
    """``tf.layers.conv1d``: a new :class:`Conv1D` applied once to NWC ``inputs``;
    regularizers as :func:`dense`'s."""
    return Conv1D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                  activation, use_bias, kernel_initializer, bias_initializer, name,
                  _reuse=reuse, trainable=trainable, kernel_regularizer=kernel_regularizer,
                  bias_regularizer=bias_regularizer,
                  activity_regularizer=activity_regularizer,
                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)(inputs)


# --- TF1's tf.layers.SeparableConv2D / separable_conv2d (fg.nn.separable_conv2d) ------------

class SeparableConv2D(Conv2D):
    """``tf.layers.SeparableConv2D``: ``activation(separable_conv2d(inputs,
    depthwise_kernel, pointwise_kernel) + bias)`` over NHWC ``inputs``;
    ``depthwise_kernel [kh, kw, in, depth_multiplier]``, ``pointwise_kernel [1, 1,
    in * depth_multiplier, filters]`` (both Glorot-uniform over their receptive fields
    by default, as TF1) and ``bias [filters]``, TF1's variable names, in the scope
    ``name`` (else ``separable_conv2d``, ``separable_conv2d_1``, ...); ``reuse`` and
    regularizers as :class:`Conv2D`'s (``depthwise_regularizer``,
    ``pointwise_regularizer``).

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 8, 8, 3))
    ...     y = fg.layers.separable_conv2d(x, 4, 3, padding="same", depth_multiplier=2)
    ...     print(y.shape)
    ...     for v in fg.trainable_variables():
    ...         print(v.op.name, tuple(v.shape))
    (None, 8, 8, 4)
    separable_conv2d/depthwise_kernel (3, 3, 3, 2)
    separable_conv2d/pointwise_kernel (1, 1, 6, 4)
    separable_conv2d/bias (4,)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format="channels_last", dilation_rate=(1, 1), depth_multiplier=1,
                 activation=None, use_bias=True, depthwise_initializer=None,
                 pointwise_initializer=None, bias_initializer=None,
                 depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 trainable=True, name=None, _reuse=None, seed=None):
        _channels_last("separable_conv2d", data_format)
        _no_constraints("SeparableConv2D", depthwise_constraint=depthwise_constraint,
                        pointwise_constraint=pointwise_constraint)
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, None, bias_initializer, name, _reuse,
                         trainable, seed, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         bias_constraint=bias_constraint)
        self.name = name or "separable_conv2d"     # the default scope: separable_conv2d_1
        self.kernel_size = _pair("separable_conv2d", "kernel_size", kernel_size)
        self.strides = _pair("separable_conv2d", "strides", strides)
        self.dilation_rate = _pair("separable_conv2d", "dilation_rate", dilation_rate)
        self.depth_multiplier = int(depth_multiplier)
        self._initializers = (depthwise_initializer, pointwise_initializer)
        self._regularizers = (depthwise_regularizer, pointwise_regularizer)
        self.depthwise_kernel = self.pointwise_kernel = None

    def _build(self, features, dtype):
        from .regularizers import add_regularization_loss
        from .variable_scopes import _store, get_variable, get_variable_scope
        created = get_variable_scope().name + "/depthwise_kernel" not in _store().variables
        shapes = ((*self.kernel_size, features, self.depth_multiplier),
                  (1, 1, features * self.depth_multiplier, self.units))
        kernels = []
        for what, shape, init in zip(("depthwise_kernel", "pointwise_kernel"), shapes,
                                     self._initializers):
            if init is None and get_variable_scope().initializer is None:
                def init(s, dtype=None):   # the layers' default (TF1's, graph-seeded)
                    return np.asarray(self._kernel_init(s, self._rng, dtype), dtype=dtype)
            kernels.append(get_variable(what, shape, dtype, initializer=init,
                                        trainable=self.trainable))
        self.depthwise_kernel, self.pointwise_kernel = kernels
        self.kernel = self.depthwise_kernel          # Conv2D's "built" mark
        self.variables.extend(kernels)
        self._build_bias(dtype)
        if created:          # TF1: a reused layer adds no second regularization loss
            for kernel, regularizer in zip(kernels, self._regularizers):
                add_regularization_loss(kernel, regularizer)
            if self.use_bias:
                add_regularization_loss(self.bias, self.bias_regularizer)

    def __call__(self, inputs):
        from .graph import name_scope
        from .nn.depthwise import separable_conv2d
        x = F.convert_to_tensor(inputs)
        if x.shape is None or len(x.shape) != 4 or x.shape[-1] is None:
            raise ShapeError(f"separable_conv2d '{self.name}': expected inputs [batch, "
                             f"height, width, channels] with known channels, found "
                             f"{x.name} of shape {S.fmt(x.shape)}")
        if self.kernel is None:
            self._build_in_scope(x)
        with name_scope(self._scope):
            y = separable_conv2d(x, self.depthwise_kernel, self.pointwise_kernel,
                                 [1, *self.strides, 1], self.padding,
                                 rate=self.dilation_rate)
            if self.use_bias:
                y = y + self.bias
            y = self.activation(y) if self.activation is not None else y
        return self._regularize_activity(y)


def separable_conv2d(inputs, filters, kernel_size, strides=(1, 1), padding="valid",
                     data_format="channels_last", dilation_rate=(1, 1), depth_multiplier=1,
                     activation=None, use_bias=True, depthwise_initializer=None,
                     pointwise_initializer=None, bias_initializer=None,
                     depthwise_regularizer=None, pointwise_regularizer=None,
                     bias_regularizer=None, activity_regularizer=None,
                     depthwise_constraint=None, pointwise_constraint=None,
                     bias_constraint=None, trainable=True, name=None, reuse=None):
    """``tf.layers.separable_conv2d``: a new :class:`SeparableConv2D` applied once to
    NHWC ``inputs`` (TF1's argument order)."""
    return SeparableConv2D(filters, kernel_size, strides, padding, data_format,
                           dilation_rate, depth_multiplier, activation, use_bias,
                           depthwise_initializer, pointwise_initializer, bias_initializer,
                           depthwise_regularizer, pointwise_regularizer, bias_regularizer,
                           activity_regularizer, depthwise_constraint, pointwise_constraint,
                           bias_constraint, trainable, name, _reuse=reuse)(inputs)


def max_pooling2d(inputs, pool_size, strides, padding="valid",
                  data_format="channels_last", name=None):
    """``tf.layers.max_pooling2d`` (NHWC): :func:`fg.nn.max_pool` with ``pool_size``
    and ``strides`` as an int or 2 ints."""
    from .nn.conv import max_pool
    _channels_last("max_pooling2d", data_format)
    return max_pool(inputs, _pair("max_pooling2d", "pool_size", pool_size),
                    _pair("max_pooling2d", "strides", strides), padding, name=name)


def average_pooling2d(inputs, pool_size, strides, padding="valid",
                      data_format="channels_last", name=None):
    """``tf.layers.average_pooling2d`` (NHWC): :func:`fg.nn.avg_pool`."""
    from .nn.conv import avg_pool
    _channels_last("average_pooling2d", data_format)
    return avg_pool(inputs, _pair("average_pooling2d", "pool_size", pool_size),
                    _pair("average_pooling2d", "strides", strides), padding, name=name)


def _channels_last(fn_name, data_format):
    if data_format != "channels_last":
        raise ValueError(f"{fn_name}: only data_format='channels_last' is supported, found "
                         f"{data_format!r}")


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


# TF1's batch normalization (flowgraph/batch_norm.py)
from .batch_norm import BatchNormalization, batch_normalization  # noqa: E402

__all__ = ["Dense", "dense", "dropout", "flatten",
           # TF1's convolution and pooling layers
           "Conv2D", "conv2d", "max_pooling2d", "average_pooling2d",
           # TF1's transposed and 1-D convolution layers
           "Conv2DTranspose", "conv2d_transpose", "Conv1D", "conv1d",
           # TF1's separable convolution layer
           "SeparableConv2D", "separable_conv2d",
           # TF1's batch normalization
           "BatchNormalization", "batch_normalization"]
