"""TF1's ``tf.losses``: per-example losses reduced with weights, and the graph's
collection of losses.

Each loss computes per-element losses, multiplies them by ``weights`` (a number, or
a tensor that broadcasts to the losses: ``[batch]`` weights per example for the
sparse softmax, ``[batch, 1]`` for a ``[batch, classes]`` loss) and reduces them as
``reduction`` says; the default, ``Reduction.SUM_BY_NONZERO_WEIGHTS``, is the weighted
sum over the number of elements whose weight is not zero (with all weights 1, the
mean), and 0 where every weight is. The result is added to the graph's
``tf.GraphKeys.LOSSES`` collection (``loss_collection=None`` keeps it out), which
:func:`get_losses` and :func:`get_total_loss` read. Unlike TF1, which computes the
reduction in float32 and casts back, the reduction runs in the inputs' dtype (float64
losses keep float64 precision). Gradients come from the compositions, to any order.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     logits = fg.constant([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], fg.float64)
...     labels = fg.constant([0, 1, 0])
...     mean = fg.losses.sparse_softmax_cross_entropy(labels, logits)
...     one_row = fg.losses.sparse_softmax_cross_entropy(labels, logits,
...                                                      weights=[0.0, 0.0, 2.0])
...     total = fg.losses.get_total_loss()
...     [round(float(v), 6) for v in fg.Session().run([mean, one_row, total])]
[0.315668, 1.386294, 1.701962]
"""
from __future__ import annotations

import numbers

from . import api as F
from . import dtypes
from .array_ops import size
from .errors import ShapeError
from .graph import get_default_graph, name_scope
from .nn import losses as nn_losses

LOSSES = "losses"
"""The collection the losses are added to (TF1's ``tf.GraphKeys.LOSSES``)."""


class Reduction:
    """How :func:`compute_weighted_loss` reduces the weighted losses (TF1's
    ``tf.losses.Reduction``)."""

    NONE = "none"                          # the weighted losses, unreduced
    SUM = "weighted_sum"
    MEAN = "weighted_mean"                 # sum / sum of the (broadcast) weights
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"   # sum / number of elements
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS      # sum / number of weights != 0

    @classmethod
    def all(cls):
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE,
                cls.SUM_BY_NONZERO_WEIGHTS)


def _div_no_nan(total, count):
    """``total / count``, 0 where ``count`` is 0 (TF1's ``_safe_mean``)."""
    nonzero = F.not_equal(count, 0)
    return F.where(nonzero, total / F.where(nonzero, count, F.ones_like(count)),
                   F.zeros_like(total))


def compute_weighted_loss(losses, weights=1.0, scope=None, loss_collection=LOSSES,
                          reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """``losses * weights`` reduced as ``reduction`` says, added to
    ``loss_collection`` (see the module docstring)."""
    if reduction not in Reduction.all():
        raise ValueError(f"compute_weighted_loss: expected a Reduction "
                         f"({', '.join(Reduction.all())}), found {reduction!r}")
    losses = F.convert_to_tensor(losses)
    if not dtypes.is_floating(losses.dtype):
        raise ValueError(f"compute_weighted_loss: expected float losses, found "
                         f"{losses.name} of dtype {losses.dtype.name}")
    with name_scope(scope or "weighted_loss"):
        weights = F.cast(F.convert_to_tensor(weights), losses.dtype)
        if (weights.shape is not None and losses.shape is not None
                and len(weights.shape) > len(losses.shape)):
            raise ShapeError(f"compute_weighted_loss: weights of shape {weights.shape} do "
                             f"not broadcast to the losses' shape {losses.shape}")
        weighted = losses * weights
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            total = F.reduce_sum(weighted)
            if reduction == Reduction.SUM:
                loss = total
            elif reduction == Reduction.MEAN:
                loss = _div_no_nan(total, F.reduce_sum(F.broadcast_like(weights, losses)))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _div_no_nan(total, F.cast(size(losses), losses.dtype))
            else:
                present = F.cast(F.not_equal(F.broadcast_like(weights, losses), 0),
                                 losses.dtype)
                loss = _div_no_nan(total, F.reduce_sum(present))
    if loss_collection is not None:
        add_loss(loss, loss_collection)
    return loss


def add_loss(loss, loss_collection=LOSSES):
    """Add ``loss`` to ``loss_collection`` of its graph (``tf.losses.add_loss``)."""
    loss = F.convert_to_tensor(loss)
    loss.graph.add_to_collection(loss_collection, loss)


def get_losses(scope=None, loss_collection=LOSSES):
    """The losses added to ``loss_collection``, those under name scope ``scope`` if
    given."""
    found = get_default_graph().get_collection(loss_collection)
    if scope is None:
        return list(found)
    return [t for t in found if t.op.name.startswith(scope)]


def get_total_loss(add_regularization_losses=True, name="total_loss", scope=None):
    """The sum of :func:`get_losses` and, with ``add_regularization_losses`` (TF1's
    default), of :func:`get_regularization_losses`. ``ValueError`` if there are none,
    as in TF1."""
    found = get_losses(scope)
    if add_regularization_losses:
        found = found + get_regularization_losses(scope)
    if not found:
        raise ValueError("get_total_loss: no losses found in the graph's losses "
                         "collection (add some with the fg.losses functions or add_loss)")
    return F.add_n(found, name=name)


# --- regularization losses (TF1's tf.losses.get_regularization_loss[es]) -------------
def get_regularization_losses(scope=None):
    """The graph's ``GraphKeys.REGULARIZATION_LOSSES`` (the losses of the
    regularizers of ``fg.get_variable``, ``fg.variable_scope`` and ``fg.layers``), those
    whose name matches ``scope`` from the start if given (``re.match``, TF1)."""
    from .graph_collections import get_collection
    from .regularizers import REGULARIZATION_LOSSES
    return get_collection(REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope=None, name="total_regularization_loss"):
    """The sum of :func:`get_regularization_losses` (``scope`` as there), or a float32
    constant 0 if there are none (TF1). Below, ``0.1 * sum(ones(2, 3)**2) / 2``:

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 2))
    ...     h = fg.layers.dense(x, 3, kernel_initializer=fg.ones_initializer(),
    ...                         kernel_regularizer=fg.contrib.layers.l2_regularizer(0.1))
    ...     round(float(fg.Session().run(fg.losses.get_regularization_loss())), 6)
    0.3
    """
    found = get_regularization_losses(scope)
    if found:
        return F.add_n(found, name=name)
    return F.constant(0.0, dtype=dtypes.float32, name=name)


def _float_pair(what, labels, predictions):
    predictions = F.convert_to_tensor(predictions)
    labels = F.cast(F.convert_to_tensor(labels), predictions.dtype)
    if (labels.shape is not None and predictions.shape is not None
            and not _compatible(labels.shape, predictions.shape)):
        raise ShapeError(f"{what}: expected labels of the predictions' shape "
                         f"{predictions.shape}, found {labels.shape}")
    return labels, predictions


def _compatible(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def absolute_difference(labels, predictions, weights=1.0, scope=None,
                        loss_collection=LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """``|predictions - labels|``, weighted and reduced."""
    with name_scope(scope or "absolute_difference"):
        labels, predictions = _float_pair("absolute_difference", labels, predictions)
        losses = F.abs(predictions - labels)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def mean_squared_error(labels, predictions, weights=1.0, scope=None,
                       loss_collection=LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """``(predictions - labels)**2``, weighted and reduced."""
    with name_scope(scope or "mean_squared_error"):
        labels, predictions = _float_pair("mean_squared_error", labels, predictions)
        losses = F.square(predictions - labels)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def huber_loss(labels, predictions, weights=1.0, delta=1.0, scope=None,
               loss_collection=LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """``0.5 e**2`` for ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``, with ``e =
    predictions - labels``; weighted and reduced."""
    with name_scope(scope or "huber_loss"):
        labels, predictions = _float_pair("huber_loss", labels, predictions)
        error = F.abs(predictions - labels)
        quadratic = F.minimum(error, delta)
        losses = 0.5 * F.square(quadratic) + delta * (error - quadratic)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def log_loss(labels, predictions, weights=1.0, epsilon=1e-7, scope=None,
             loss_collection=LOSSES, reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """``-labels log(p + eps) - (1 - labels) log(1 - p + eps)`` for probabilities
    ``predictions``; weighted and reduced."""
    with name_scope(scope or "log_loss"):
        labels, p = _float_pair("log_loss", labels, predictions)
        losses = -labels * F.log(p + epsilon) - (1.0 - labels) * F.log(1.0 - p + epsilon)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def _smoothing(what, label_smoothing):
    if not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{what}: expected label_smoothing in [0, 1], found "
                         f"{label_smoothing!r}")
    return float(label_smoothing)


def sigmoid_cross_entropy(multi_class_labels, logits, weights=1.0, label_smoothing=0,
                          scope=None, loss_collection=LOSSES,
                          reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """The sigmoid cross-entropy of ``logits`` against labels in [0, 1] (smoothed
    towards 1/2 by ``label_smoothing``), weighted and reduced."""
    smoothing = _smoothing("sigmoid_cross_entropy", label_smoothing)
    with name_scope(scope or "sigmoid_cross_entropy_loss"):
        labels, logits = _float_pair("sigmoid_cross_entropy", multi_class_labels, logits)
        if smoothing:
            labels = labels * (1.0 - smoothing) + 0.5 * smoothing
        losses = nn_losses.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def softmax_cross_entropy(onehot_labels, logits, weights=1.0, label_smoothing=0,
                          scope=None, loss_collection=LOSSES,
                          reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """The softmax cross-entropy of ``logits [batch, classes]`` against one-hot (or
    probability) labels, smoothed towards ``1/classes`` by ``label_smoothing``; no
    gradient flows into the labels. ``weights``: a number or ``[batch]``."""
    smoothing = _smoothing("softmax_cross_entropy", label_smoothing)
    with name_scope(scope or "softmax_cross_entropy_loss"):
        labels, logits = _float_pair("softmax_cross_entropy", onehot_labels, logits)
        if smoothing:
            classes = logits.shape[-1] if logits.shape is not None else None
            if classes is None:
                raise ShapeError("softmax_cross_entropy: label_smoothing needs the number "
                                 f"of classes known, found logits of shape {logits.shape}")
            labels = labels * (1.0 - smoothing) + smoothing / classes
        losses = nn_losses.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


def sparse_softmax_cross_entropy(labels, logits, weights=1.0, scope=None,
                                 loss_collection=LOSSES,
                                 reduction=Reduction.SUM_BY_NONZERO_WEIGHTS):
    """The softmax cross-entropy of ``logits [batch, classes]`` against integer class
    ``labels [batch]``; ``weights``: a number or ``[batch]``."""
    with name_scope(scope or "sparse_softmax_cross_entropy_loss"):
        losses = nn_losses.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                    logits=logits)
    return compute_weighted_loss(losses, weights, scope, loss_collection, reduction)


__all__ = ["LOSSES", "Reduction", "absolute_difference", "add_loss",
           "compute_weighted_loss", "get_losses", "get_total_loss", "huber_loss",
           "get_regularization_loss", "get_regularization_losses",
           "log_loss", "mean_squared_error", "sigmoid_cross_entropy",
           "softmax_cross_entropy", "sparse_softmax_cross_entropy"]
