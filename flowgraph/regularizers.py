"""TF1's weight regularizers (``tf.contrib.layers.l1_regularizer``, ``l2_regularizer``,
``l1_l2_regularizer``, ``sum_regularizer``, ``apply_regularization``) and the
collection they fill, ``GraphKeys.REGULARIZATION_LOSSES``.

A regularizer is a callable ``weights -> scalar loss tensor`` (or ``None``: a scale
of 0 disables one, as in TF1). ``fg.get_variable(..., regularizer=)``, a
``fg.variable_scope(..., regularizer=)`` (the default of every ``get_variable``
inside) and the ``kernel_regularizer``/``bias_regularizer`` of ``fg.layers`` apply
it once, when the variable is created (not when it is reused), and add the loss to
``REGULARIZATION_LOSSES``; ``fg.losses.get_regularization_loss()`` sums them and
``fg.losses.get_total_loss()`` includes them, as TF1.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.variable_scope("net", regularizer=fg.contrib.layers.l2_regularizer(0.1)):
...         w = fg.get_variable("w", initializer=np.array([1.0, 2.0], np.float32))
...     with fg.variable_scope("net", reuse=True):
...         same = fg.get_variable("w")                 # reused: no second loss
...     reg = fg.losses.get_regularization_losses()
...     [t.name for t in reg], float(fg.Session().run(fg.losses.get_regularization_loss()))
(['net/w/Regularizer/l2_regularizer:0'], 0.25)
"""
from __future__ import annotations

import numbers

from . import api as F
from .graph import Tensor, get_default_graph, name_scope

REGULARIZATION_LOSSES = "regularization_losses"
"""TF1's ``tf.GraphKeys.REGULARIZATION_LOSSES``."""


def _check_scale(fn_name, scale):
    """TF1's checks: an int scale is an error (``1`` for ``1.0`` is a common typo),
    a negative one too; 0 means no regularizer (returns True)."""
    if isinstance(scale, numbers.Integral):
        raise ValueError(f"{fn_name}: scale cannot be an integer: {scale}")
    if isinstance(scale, numbers.Real):
        if scale < 0.0:
            raise ValueError(f"{fn_name}: setting a scale less than 0 on a regularizer: "
                             f"{scale}")
        return scale == 0.0
    return False


def _scaled(scale, weights, value, scope):
    """``scale * value``, named ``scope`` itself (TF1's ``name_scope(...) as name``
    names the result after its scope; the parts are made inside it)."""
    with name_scope(scope):
        my_scale = F.convert_to_tensor(scale, dtype=weights.dtype)
    return F.multiply(my_scale, value, name=scope)


def l1_regularizer(scale, scope=None):
    """``weights -> scale * sum(|weights|)`` (TF1's; ``scale`` 0 gives a regularizer
    returning ``None``).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     float(fg.Session().run(fg.contrib.layers.l1_regularizer(0.5)(
    ...         fg.constant([1.0, -3.0]))))
    2.0
    """
    if _check_scale("l1_regularizer", scale):
        return lambda _: None

    def l1(weights, name=None):
        weights = F.convert_to_tensor(weights)
        with name_scope(scope or "l1_regularizer"):
            total = F.reduce_sum(F.abs(weights))
        return _scaled(scale, weights, total, name or scope or "l1_regularizer")
    return l1


def l2_regularizer(scale, scope=None):
    """``weights -> scale * sum(weights**2) / 2`` (TF1's: ``scale * tf.nn.l2_loss``).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     float(fg.Session().run(fg.contrib.layers.l2_regularizer(0.5)(
    ...         fg.constant([1.0, -3.0]))))
    2.5
    """
    from .nn.losses import l2_loss
    if _check_scale("l2_regularizer", scale):
        return lambda _: None

    def l2(weights, name=None):
        weights = F.convert_to_tensor(weights)
        with name_scope(scope or "l2_regularizer"):
            total = l2_loss(weights)
        return _scaled(scale, weights, total, name or scope or "l2_regularizer")
    return l2


def l1_l2_regularizer(scale_l1=1.0, scale_l2=1.0, scope=None):
    """The sum of :func:`l1_regularizer` ``(scale_l1)`` and :func:`l2_regularizer`
    ``(scale_l2)`` (either alone where the other scale is 0, as TF1)."""
    if isinstance(scale_l1, numbers.Real) and not isinstance(scale_l1, numbers.Integral) \
            and scale_l1 == 0.0:
        return l2_regularizer(scale_l2, scope)
    if isinstance(scale_l2, numbers.Real) and not isinstance(scale_l2, numbers.Integral) \
            and scale_l2 == 0.0:
        return l1_regularizer(scale_l1, scope)
    return sum_regularizer([l1_regularizer(scale_l1), l2_regularizer(scale_l2)],
                           scope=scope or "l1_l2_regularizer")


def sum_regularizer(regularizer_list, scope=None):
    """A regularizer adding the losses of ``regularizer_list`` (``None`` entries and
    ``None`` losses skipped; ``None`` if the list is empty, as TF1)."""
    regularizers = [r for r in regularizer_list if r is not None]
    if not regularizers:
        return None

    def sum_reg(weights):
        with name_scope(scope or "sum_regularizer"):
            found = [t for t in (r(weights) for r in regularizers) if t is not None]
        return F.add_n(found, name=scope or "sum_regularizer") if found else None
    return sum_reg


def apply_regularization(regularizer, weights_list=None):
    """``regularizer`` applied to each of ``weights_list`` (else the graph's
    ``GraphKeys.WEIGHTS`` collection), summed; the sum is added to
    ``REGULARIZATION_LOSSES`` and returned. ``ValueError`` if there are no weights or a
    penalty is not a scalar (TF1).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     ws = [fg.constant([1.0, 2.0]), fg.constant([[3.0]])]
    ...     total = fg.contrib.layers.apply_regularization(
    ...         fg.contrib.layers.l1_regularizer(0.1), ws)
    ...     round(float(fg.Session().run(total)), 6)
    0.6
    """
    if not weights_list:
        weights_list = get_default_graph().get_collection("weights")
    if not weights_list:
        raise ValueError("apply_regularization: no weights to regularize (pass "
                         "weights_list or fill the GraphKeys.WEIGHTS collection)")
    with name_scope("get_regularization_penalty"):
        penalties = []
        for w in weights_list:
            p = regularizer(w)
            p = F.constant(0.0) if p is None else F.convert_to_tensor(p)
            if p.shape is not None and len(p.shape) != 0:
                raise ValueError(f"apply_regularization: the regularizer must return a "
                                 f"scalar tensor, found {p.name} of shape {p.shape} for "
                                 f"{w.name}")
            penalties.append(p)
    total = F.add_n(penalties, name="get_regularization_penalty")
    get_default_graph().add_to_collection(REGULARIZATION_LOSSES, total)
    return total


def add_regularization_loss(variable, regularizer, prefix=None):
    """Apply ``regularizer`` to a newly made ``variable`` under the name scope
    ``<variable>/Regularizer`` and add the loss (if not ``None``) to
    ``REGULARIZATION_LOSSES``, as TF1's ``get_variable`` and ``tf.layers`` do; returns
    the loss. Callers call it only when they created ``variable``."""
    if regularizer is None:
        return None
    from .graph import _absolute_name_scope, _no_control_dependencies
    # Made where the variable is, outside any control-dependency context the variable
    # was created in (a loss needs no run-order constraint).
    with _no_control_dependencies(), \
            _absolute_name_scope(f"{prefix or variable.op.name}/Regularizer"):
        loss = regularizer(variable)          # TF1 passes the variable itself
    if loss is not None:
        loss = F.convert_to_tensor(loss)
        if not isinstance(loss, Tensor):
            raise TypeError(f"regularizer for {variable.name}: expected a tensor, found "
                            f"{type(loss).__name__}")
        get_default_graph().add_to_collection(REGULARIZATION_LOSSES, loss)
    return loss


__all__ = ["REGULARIZATION_LOSSES", "l1_regularizer", "l2_regularizer",
           "l1_l2_regularizer", "sum_regularizer", "apply_regularization"]
