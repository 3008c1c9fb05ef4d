"""Softmax, log-softmax, cross-entropy losses and embedding lookup, composed from
primitives (so they differentiate to any order).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     p = fg.nn.softmax(fg.constant([[1.0, 1.0]]))
...     fg.Session().run(p)
array([[0.5, 0.5]], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..graph import name_scope


def softmax(logits, axis=-1, name=None):
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the max for stability."""
    x = F.convert_to_tensor(logits)
    shifted = x - F.stop_gradient(F.reduce_max(x, axis, keepdims=True))
    e = F.exp(shifted)
    return F.divide(e, F.reduce_sum(e, axis, keepdims=True), name=name)


def log_softmax(logits, axis=-1, name=None):
    """``x - log(sum(exp(x)))`` along ``axis``, computed stably."""
    x = F.convert_to_tensor(logits)
    shifted = x - F.stop_gradient(F.reduce_max(x, axis, keepdims=True))
    return F.subtract(shifted, F.log(F.reduce_sum(F.exp(shifted), axis, keepdims=True)),
                      name=name)


def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, name=None):
    """Per-example ``-sum(labels * log_softmax(logits))`` over the last axis."""
    if labels is None or logits is None:
        raise TypeError("softmax_cross_entropy_with_logits needs labels= and logits=")
    logits = F.convert_to_tensor(logits)
    labels = F.convert_to_tensor(labels, dtype=logits.dtype) if not isinstance(
        labels, F.Tensor) else labels
    if labels.dtype != logits.dtype:
        raise DTypeError(f"softmax_cross_entropy_with_logits: expected labels of the logits' "
                         f"dtype {logits.dtype.name}, found {labels.dtype.name}")
    rank = None if logits.shape is None else len(logits.shape)
    if rank and labels.shape is not None and len(labels.shape) == rank and axis in (
            -1, rank - 1) and all(a == b or None in (a, b)
                                  for a, b in zip(labels.shape, logits.shape)):
        # Labels of the logits' shape (as TF1 requires): one row kernel
        # (ops.SoftmaxXent) for the loss and the softmax.
        return F.softmax_xent(logits, labels, name=name)[0]
    return F.negative(F.reduce_sum(labels * log_softmax(logits, axis), axis), name=name)


def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Per-example ``logsumexp(logits) - logits[label]``; ``labels`` are class indices.

    A label outside ``[0, classes)`` raises ``fg.errors.InvalidArgumentError`` at run
    time naming the check (``.../labels_in_range``), for the loss and its gradient, as
    TF1 does. A ``-inf`` logit on a class other than the label gives the finite loss
    and gradient (the label's logit is picked, never ``0 * -inf``).

    >>> import flowgraph as fg, numpy as np
    >>> with fg.Graph().as_default():
    ...     loss = sparse_softmax_cross_entropy_with_logits(
    ...         labels=[0], logits=fg.constant([[0.0, -np.inf]]))
    ...     fg.Session().run(loss)
    array([0.], dtype=float32)
    """
    if labels is None or logits is None:
        raise TypeError("sparse_softmax_cross_entropy_with_logits needs labels= and logits=")
    logits = F.convert_to_tensor(logits)
    labels = F.convert_to_tensor(labels)
    if not dtypes.is_integer(labels.dtype):
        raise DTypeError(f"sparse_softmax_cross_entropy_with_logits: expected integer "
                         f"labels, found {labels.dtype.name}")
    if logits.shape is None or logits.shape[-1] is None:
        raise ShapeError("sparse_softmax_cross_entropy_with_logits: expected logits with a "
                         f"known number of classes, found shape {logits.shape}")
    depth = logits.shape[-1]
    with name_scope("sparse_softmax_cross_entropy_with_logits"):
        # Gather checks its indices on every path: the labels themselves, or
        # InvalidArgumentError for a label out of range. The loss and its gradient read
        # the checked labels, so both depend on the check.
        classes = F.constant(np.arange(depth), dtype=labels.dtype)
        checked = F.gather(classes, labels, name="labels_in_range")
    # One row kernel for the loss and the softmax, one pass for its gradient
    # (ops.SparseSoftmaxXent): no [rows, classes] one-hot.
    loss, _ = F.sparse_softmax_xent(logits, checked, name=name)
    return loss


def embedding_lookup(params, ids, name=None):
    """Rows of ``params`` for integer ``ids`` (a gather along axis 0)."""
    return F.gather(params, ids, name=name)
