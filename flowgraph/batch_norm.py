"""TF1's batch-normalization layer: ``tf.layers.batch_normalization`` /
``tf.layers.BatchNormalization`` (here ``fg.layers.*``) and
``tf.contrib.layers.batch_norm`` (``fg.contrib.layers.batch_norm``).

The layer normalizes ``inputs`` over every axis but ``axis`` (the features) and
applies ``gamma * x_hat + beta``. Its variables, made on the first call under the
layer's variable scope (``batch_normalization``, ``batch_normalization_1``, ... or
``name``), are TF1's: ``gamma`` and ``beta`` (trainable), ``moving_mean`` and
``moving_variance`` (in ``GLOBAL_VARIABLES`` only). ``training`` is a Python bool or
a boolean scalar tensor (a placeholder switching between modes in one session):

- training: the batch mean and biased variance normalize ``x``, and two assign ops,
  ``moving -= (1 - momentum) * (moving - batch_statistic)`` (TF1's
  ``assign_moving_average``), are added to ``GraphKeys.UPDATE_OPS``; run them with
  the train op (``with fg.control_dependencies(fg.get_collection(
  fg.GraphKeys.UPDATE_OPS)):``), as TF1 programs do;
- inference: the moving statistics normalize ``x``; with a Python ``False`` no
  update op is made, with a tensor false the update ops leave the moving statistics
  unchanged.

The statistic the moving variance follows is TF1's: where TF1 takes its fused kernel
(4-D float32 inputs with ``axis`` 1 or 3, as ``fused=None`` does), the *unbiased*
batch variance (``n / (n - 1)`` times the biased one, ``n`` the number of values per
feature; the fused kernel's output) and ``epsilon`` at least ``1.001e-5``; otherwise
the biased variance of ``tf.nn.moments``. The normalization itself always uses the
biased variance. Gradients are those of the composition (``nn.batch_normalization``
on the batch moments), exact to any order: the variance is computed without TF1's
``stop_gradient`` on the mean, which changes no value or first derivative but makes
second derivatives exact (as TF1's fused gradient is).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (None, 2))
...     training = fg.placeholder_with_default(False, ())
...     y = fg.layers.batch_normalization(x, training=training)
...     with fg.control_dependencies(fg.get_collection(fg.GraphKeys.UPDATE_OPS)):
...         step = fg.identity(y)
...     sess = fg.Session()
...     sess.run(fg.global_variables_initializer())
...     out = sess.run(step, {x: [[1.0, 2.0], [3.0, 6.0]], training: True})
...     moving = fg.global_variables()[2:]
...     [v.op.name for v in fg.global_variables()]
['batch_normalization/gamma', 'batch_normalization/beta',
 'batch_normalization/moving_mean', 'batch_normalization/moving_variance']
>>> out.round(3)                       # (x - batch mean) / sqrt(batch variance + 0.001)
array([[-1., -1.],
       [ 1.,  1.]], dtype=float32)
>>> sess.run(moving)     # 0.99 * (0, 1) + 0.01 * ((2, 4), (1, 4))
[array([0.02, 0.04], dtype=float32), array([1.  , 1.03], dtype=float32)]
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from . import dtypes
from . import shapes as S
from .errors import ShapeError
from .graph import Tensor, get_default_graph, location_suffix, name_scope

UPDATE_OPS = "update_ops"        # = GraphKeys.UPDATE_OPS

_FUSED_MIN_EPSILON = 1.001e-5    # TF1's fused_batch_norm raises a smaller epsilon to it


def _static_bool(training):
    """``training`` as a Python bool, or ``None`` for a boolean scalar tensor."""
    if isinstance(training, (bool, np.bool_)):
        return bool(training)
    if isinstance(training, numbers.Integral):      # TF1 accepts 0 / 1
        return bool(training)
    return None


class BatchNormalization:
    """``tf.layers.BatchNormalization`` (see the module docstring). Call it on
    ``inputs`` with ``training=`` a Python bool or a boolean scalar tensor; after the
    first call it has ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``,
    ``variables`` and ``updates`` (the update ops of its calls in training mode).

    Not supported (``NotImplementedError`` names them): ``renorm=True``,
    ``virtual_batch_size``, ``adjustment``, ``beta_constraint``, ``gamma_constraint``.
    ``fused`` chooses nothing here but which variance the moving variance follows, as
    in TF1 (``fused=False`` forces the biased one).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer=None, gamma_initializer=None,
                 moving_mean_initializer=None, moving_variance_initializer=None,
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, fused=None, trainable=True, virtual_batch_size=None,
                 adjustment=None, name=None, _reuse=None, _default_name=None,
                 _fused_ranks=(4,), _updates_collections=UPDATE_OPS, **kwargs):
        unsupported = [k for k, v in (("renorm", renorm), ("renorm_clipping", renorm_clipping),
                                      ("virtual_batch_size", virtual_batch_size),
                                      ("adjustment", adjustment),
                                      ("beta_constraint", beta_constraint),
                                      ("gamma_constraint", gamma_constraint)) if v]
        if unsupported:
            raise NotImplementedError(f"batch_normalization: {', '.join(unsupported)} "
                                      f"is not supported by flowgraph")
        kwargs.pop("dtype", None)           # TF1's Layer kwargs: the inputs' dtype rules
        if kwargs:
            raise TypeError(f"batch_normalization: unexpected arguments "
                            f"{sorted(kwargs)}")
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, numbers.Integral):
            self.axis = int(axis)
        else:
            raise TypeError(f"batch_normalization: expected an int or a list/tuple of ints "
                            f"for axis, found {axis!r}")
        self.momentum = momentum
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        from .initializers import ones_initializer, zeros_initializer
        self.beta_initializer = beta_initializer or zeros_initializer()
        self.gamma_initializer = gamma_initializer or ones_initializer()
        self.moving_mean_initializer = moving_mean_initializer or zeros_initializer()
        self.moving_variance_initializer = moving_variance_initializer or ones_initializer()
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.fused = fused
        self.trainable = bool(trainable)
        self.name = name
        self._reuse = _reuse
        self._default_name = _default_name or "batch_normalization"
        self._fused_ranks = _fused_ranks      # contrib's batch_norm fuses rank 2 too
        self._updates_collections = _updates_collections     # contrib's may differ
        self._beta_first = False
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self.variables, self.updates = [], []
        self._scope = None
        self._built_for = None                # (rank, axes, param_shape)

    # --- building -------------------------------------------------------------------
    def _axes(self, x):
        label = f"batch_normalization '{self.name or self._default_name}'"
        if x.shape is None:
            raise ShapeError(f"{label}: the inputs' rank must be known, found {x.name} of "
                             f"unknown shape" + location_suffix("called"))
        ndims = len(x.shape)
        if ndims == 0:
            raise ShapeError(f"{label}: expected inputs of rank >= 1, found a scalar "
                             f"{x.name}" + location_suffix("called"))
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        resolved = [a + ndims if a < 0 else a for a in axes]
        for a, r in zip(axes, resolved):
            if not 0 <= r < ndims:
                raise ValueError(f"{label}: invalid axis {a} for inputs {x.name} of rank "
                                 f"{ndims} (shape {S.fmt(x.shape)})")
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"{label}: duplicate axis {axes}")
        for r in resolved:
            if x.shape[r] is None:
                raise ShapeError(f"{label}: the inputs' axis {r} (the features) must be "
                                 f"known, found {x.name} of shape {S.fmt(x.shape)}"
                                 + location_suffix("called"))
        return ndims, sorted(resolved)

    def _build(self, x, ndims, axes):
        from .regularizers import add_regularization_loss
        from .variable_scopes import _store, get_variable, get_variable_scope, variable_scope
        if len(axes) == 1:
            param_shape = (int(x.shape[axes[0]]),)
        else:
            param_shape = tuple(int(x.shape[i]) if i in axes else 1 for i in range(ndims))
        dtype = x.dtype
        opened = (variable_scope(self.name, reuse=self._reuse) if self.name is not None
                  else variable_scope(None, default_name=self._default_name))
        with opened as scope:
            self._scope = scope.name.rsplit("/", 1)[-1]
            store = _store()

            def make(var_name, initializer, trainable, regularizer=None):
                created = f"{get_variable_scope().name}/{var_name}" not in store.variables
                var = get_variable(var_name, param_shape, dtype, initializer=initializer,
                                   trainable=trainable)
                if created:          # TF1: a reused layer adds no second loss
                    add_regularization_loss(var, regularizer)
                self.variables.append(var)
                return var
            # TF1's order of creation: gamma, beta, moving_mean, moving_variance
            # (contrib's own fused batch_norm makes beta first)
            for param in (("beta", "gamma") if self._beta_first else ("gamma", "beta")):
                if param == "gamma" and self.scale:
                    self.gamma = make("gamma", self.gamma_initializer, self.trainable,
                                      self.gamma_regularizer)
                if param == "beta" and self.center:
                    self.beta = make("beta", self.beta_initializer, self.trainable,
                                     self.beta_regularizer)
            self.moving_mean = make("moving_mean", self.moving_mean_initializer, False)
            self.moving_variance = make("moving_variance", self.moving_variance_initializer,
                                        False)
        self._built_for = (ndims, axes, param_shape)

    # --- the layer ------------------------------------------------------------------
    def __call__(self, inputs, training=False):
        x = F.convert_to_tensor(inputs)
        if not dtypes.is_floating(x.dtype):
            raise ValueError(f"batch_normalization: expected float inputs, found {x.name} "
                             f"of dtype {x.dtype.name}")
        ndims, axes = self._axes(x)
        if self._built_for is None:
            self._build(x, ndims, axes)
        elif self._built_for[:2] != (ndims, axes) or any(
                x.shape[a] != self._built_for[2][0 if len(axes) == 1 else a] for a in axes):
            raise ShapeError(f"batch_normalization '{self._scope}': built for inputs of rank "
                             f"{self._built_for[0]} with features of shape "
                             f"{self._built_for[2]}, found {x.name} of shape "
                             f"{S.fmt(x.shape)}")
        static = _static_bool(training)
        if static is None:
            training = F.convert_to_tensor(training)
            if training.dtype != dtypes.bool_ or training.shape not in ((), None):
                raise ValueError(f"batch_normalization: expected training to be a Python "
                                 f"bool or a boolean scalar tensor, found {training.name} of "
                                 f"dtype {training.dtype.name} and shape "
                                 f"{S.fmt(training.shape)}")
        with name_scope(self._scope):
            return self._apply(x, ndims, axes, training, static)

    def apply(self, inputs, training=False):
        """TF1's ``layer.apply(inputs, training=...)``: the same as calling it."""
        return self(inputs, training=training)

    def _fused(self, x, ndims, axes):
        """Whether TF1 would take its fused kernel here (``fused=None`` or ``True``):
        it decides which variance the moving variance follows and the epsilon."""
        if self.fused is False or ndims not in self._fused_ranks or len(axes) != 1:
            return False
        feature_axes = (1, 3) if ndims == 4 else (1,)
        return axes[0] in feature_axes and x.dtype == dtypes.float32

    def _apply(self, x, ndims, axes, training, static):
        reduce_axes = [i for i in range(ndims) if i not in axes]
        broadcast = [1] * ndims
        for a in axes:
            broadcast[a] = int(x.shape[a])
        keep = len(axes) > 1

        def bcast(v):            # a [C] parameter against the inputs (axis not last)
            if v is None or keep or axes == [ndims - 1]:
                return v
            return F.reshape(v, broadcast)

        fused = self._fused(x, ndims, axes)
        epsilon = max(self.epsilon, _FUSED_MIN_EPSILON) if fused else self.epsilon
        moving_mean = self.moving_mean.value()
        moving_variance = self.moving_variance.value()
        if static is False:
            mean, variance = moving_mean, moving_variance
        else:
            with name_scope("moments"):
                batch_mean = F.reduce_mean(x, reduce_axes, keepdims=True)
                # The biased variance, without TF1's stop_gradient on the mean (same
                # values and first derivatives; exact second derivatives).
                batch_var = F.reduce_mean(F.square(x - batch_mean), reduce_axes,
                                          keepdims=True)
                if not keep:
                    batch_mean = F.reshape(batch_mean, [broadcast[axes[0]]])
                    batch_var = F.reshape(batch_var, [broadcast[axes[0]]])
            if static:
                mean, variance = batch_mean, batch_var
            else:
                mean = F.where(training, batch_mean, moving_mean)
                variance = F.where(training, batch_var, moving_variance)
            new_variance = batch_var
            if fused:        # the fused kernel's batch variance carries Bessel's correction
                n = self._count(x, reduce_axes)
                new_variance = batch_var * (n / F.maximum(n - 1.0, 1.0))
            self._add_update(self.moving_mean, batch_mean, training, static)
            self._add_update(self.moving_variance, new_variance, training, static)
        from .nn.activations import batch_normalization
        return batch_normalization(x, bcast(mean), bcast(variance), bcast(self.beta),
                                   bcast(self.gamma), epsilon)

    @staticmethod
    def _count(x, reduce_axes):
        """The number of values per feature: a constant where the reduced dimensions
        are known, else ``size(x) / features`` at run time."""
        dims = [x.shape[i] for i in reduce_axes]
        if None not in dims:
            return F.constant(float(np.prod(dims, dtype=np.int64)), dtype=x.dtype)
        from .array_ops import size
        features = float(np.prod([d for i, d in enumerate(x.shape) if i not in reduce_axes],
                                 dtype=np.int64))
        return F.cast(size(x), x.dtype) / features

    def _add_update(self, variable, value, training, static):
        """TF1's ``assign_moving_average``: ``variable -= (variable - value) * (1 -
        momentum)``; with a tensor ``training``, a zero step when it is false."""
        from .variables import assign_sub
        with name_scope("AssignMovingAvg"):
            momentum = self.momentum
            if isinstance(momentum, Tensor):
                decay = 1.0 - F.cast(momentum, variable.dtype)
            else:
                decay = F.constant(1.0 - float(momentum), dtype=variable.dtype)
            delta = (variable.value() - value) * decay
            if static is None:
                delta = F.where(training, delta, F.zeros_like(delta))
            update = assign_sub(variable, delta)
        self.updates.append(update)
        collections = self._updates_collections
        for key in [collections] if isinstance(collections, str) else collections or ():
            get_default_graph().add_to_collection(key, update)


def batch_normalization(inputs, axis=-1, momentum=0.99, epsilon=1e-3, center=True,
                        scale=True, beta_initializer=None, gamma_initializer=None,
                        moving_mean_initializer=None, moving_variance_initializer=None,
                        beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                        gamma_constraint=None, training=False, trainable=True, name=None,
                        reuse=None, renorm=False, renorm_clipping=None, renorm_momentum=0.99,
                        fused=None, virtual_batch_size=None, adjustment=None):
    """``tf.layers.batch_normalization``: a new :class:`BatchNormalization` applied once
    to ``inputs`` with ``training`` (a Python bool, TF1's default ``False``, or a
    boolean scalar tensor). With ``name``, its variables are ``<scope>/<name>/gamma``,
    ... and ``reuse=True`` shares an earlier layer's; without, the scope is
    ``batch_normalization``, ``batch_normalization_1``, ... The update ops of training
    mode go to ``GraphKeys.UPDATE_OPS`` (see the module docstring).
    """
    layer = BatchNormalization(
        axis, momentum, epsilon, center, scale, beta_initializer, gamma_initializer,
        moving_mean_initializer, moving_variance_initializer, beta_regularizer,
        gamma_regularizer, beta_constraint, gamma_constraint, renorm, renorm_clipping,
        renorm_momentum, fused, trainable, virtual_batch_size, adjustment, name,
        _reuse=reuse)
    return layer(inputs, training=training)


def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001,
               activation_fn=None, param_initializers=None, param_regularizers=None,
               updates_collections=UPDATE_OPS, is_training=True, reuse=None,
               variables_collections=None, outputs_collections=None, trainable=True,
               batch_weights=None, fused=None, data_format="NHWC",
               zero_debias_moving_mean=False, scope=None, renorm=False,
               renorm_clipping=None, renorm_decay=0.99, adjustment=None):
    """``tf.contrib.layers.batch_norm``: the layer above with contrib's defaults
    (``decay=0.999``, ``scale=False``, ``is_training=True``), its variable scope
    ``BatchNorm`` (else ``scope``), ``data_format`` ``"NHWC"`` (features last) or
    ``"NCHW"`` (axis 1), variables also in ``GraphKeys.MODEL_VARIABLES``, and
    ``activation_fn`` applied to the result. The update ops go to
    ``updates_collections``; ``None`` runs them with the output instead (TF1's
    in-place updates). As TF1's, rank-2 and rank-4 float32 inputs take the fused
    kernel's (unbiased) variance for the moving variance.
    ``param_initializers``/``param_regularizers``: dicts keyed by ``"beta"``,
    ``"gamma"``, ``"moving_mean"``, ``"moving_variance"``. Not supported
    (``NotImplementedError``): ``batch_weights``, ``zero_debias_moving_mean``,
    ``renorm``, ``adjustment``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 3))
    ...     y = fg.contrib.layers.batch_norm(x, scale=True)
    ...     [v.op.name for v in fg.get_collection(fg.GraphKeys.MODEL_VARIABLES)]
    ['BatchNorm/beta', 'BatchNorm/gamma', 'BatchNorm/moving_mean', 'BatchNorm/moving_variance']
    """
    unsupported = [k for k, v in (("batch_weights", batch_weights is not None),
                                  ("zero_debias_moving_mean", zero_debias_moving_mean),
                                  ("renorm", renorm), ("adjustment", adjustment is not None))
                   if v]
    if unsupported:
        raise NotImplementedError(f"batch_norm: {', '.join(unsupported)} is not supported "
                                  f"by flowgraph")
    if data_format not in ("NHWC", "NCHW"):
        raise ValueError(f"batch_norm: data_format has to be either NCHW or NHWC, found "
                         f"{data_format!r}")
    if scope is None and reuse is True:
        raise ValueError("batch_norm: reuse=True cannot be used without a scope")
    inits, regs = dict(param_initializers or {}), dict(param_regularizers or {})
    x = F.convert_to_tensor(inputs)
    rank = None if x.shape is None else len(x.shape)
    # TF1 takes contrib's own fused function (beta made before gamma) here, else the
    # tf.layers class.
    contrib_fused = fused is not False and rank in (2, 4) and (
        rank == 2 or updates_collections != UPDATE_OPS)
    layer = BatchNormalization(
        axis=1 if data_format == "NCHW" else -1, momentum=decay, epsilon=epsilon,
        center=center, scale=scale, beta_initializer=inits.get("beta"),
        gamma_initializer=inits.get("gamma"),
        moving_mean_initializer=inits.get("moving_mean"),
        moving_variance_initializer=inits.get("moving_variance"),
        beta_regularizer=regs.get("beta"), gamma_regularizer=regs.get("gamma"),
        renorm_clipping=renorm_clipping, fused=fused, trainable=trainable, name=scope,
        _reuse=reuse, _default_name="BatchNorm", _fused_ranks=(2, 4),
        _updates_collections=updates_collections)
    layer._beta_first = contrib_fused
    outputs = layer(x, training=is_training)
    graph = get_default_graph()
    for var in layer.variables:
        short = var.op.name.rsplit("/", 1)[-1]
        keys = ["model_variables"]
        if isinstance(variables_collections, dict):
            keys += list(variables_collections.get(short) or [])
        elif variables_collections:
            keys += list(variables_collections)
        for key in keys:
            if var not in graph.get_collection(key):
                graph.add_to_collection(key, var)
    if updates_collections is None and layer.updates:
        from .graph import control_dependencies
        with control_dependencies(layer.updates):
            outputs = F.identity(outputs)
    if activation_fn is not None:
        outputs = activation_fn(outputs)
    for key in [outputs_collections] if isinstance(outputs_collections, str) \
            else outputs_collections or ():
        graph.add_to_collection(key, outputs)
    return outputs


__all__ = ["BatchNormalization", "batch_normalization", "batch_norm"]
