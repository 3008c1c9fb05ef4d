"""Softmax, log-softmax, cross-entropy losses and embedding lookup, composed from
primitives (so they differentiate to any order).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     p = fg.nn.softmax(fg.constant([[1.0, 1.0]]))
...     fg.Session().run(p)
array([[0.5, 0.5]], dtype=float32)
"""
from __future__ import annotations

from .. import api as F
from .. import dtypes
from ..errors import DTypeError, ShapeError


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
    return F.negative(F.reduce_sum(labels * log_softmax(logits, axis), axis), name=name)


def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Per-example ``-log_softmax(logits)[label]``; ``labels`` are class indices."""
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
    onehot = F.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return F.negative(F.reduce_sum(onehot * log_softmax(logits), -1), name=name)


def embedding_lookup(params, ids, name=None):
    """Rows of ``params`` for integer ``ids`` (a gather along axis 0)."""
    return F.gather(params, ids, name=name)
