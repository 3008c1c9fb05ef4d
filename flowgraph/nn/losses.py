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
from .. import shapes as S
from ..errors import DTypeError, ShapeError
from ..graph import location_suffix, name_scope


def softmax(logits, axis=None, name=None, dim=None):
    """``exp(x) / sum(exp(x))`` along ``axis`` (the last by default; ``dim`` is TF1's
    older name), shifted by the max for stability."""
    axis = _axis_or_dim("softmax", axis, dim)
    x = F.convert_to_tensor(logits)
    shifted = x - F.stop_gradient(F.reduce_max(x, axis, keepdims=True))
    e = F.exp(shifted)
    return F.divide(e, F.reduce_sum(e, axis, keepdims=True), name=name)


def log_softmax(logits, axis=None, name=None, dim=None):
    """``x - log(sum(exp(x)))`` along ``axis`` (the last by default; ``dim`` is TF1's
    older name), computed stably."""
    axis = _axis_or_dim("log_softmax", axis, dim)
    x = F.convert_to_tensor(logits)
    shifted = x - F.stop_gradient(F.reduce_max(x, axis, keepdims=True))
    return F.subtract(shifted, F.log(F.reduce_sum(F.exp(shifted), axis, keepdims=True)),
                      name=name)


def _axis_or_dim(fn_name, axis, dim):
    """``axis`` or TF1's ``dim=``, -1 when neither is given."""
    axis = F._alias(fn_name, "axis", axis, "dim", dim)
    return -1 if axis is None else axis


def _called(fn_name):
    """``"softmax_cross_entropy_with_logits (called at model.py:12)"``: the loss an
    error is about and the user's line that called it."""
    return fn_name + location_suffix("called")


def _named_arguments_only(fn_name, sentinel, labels, logits):
    """TF1 refuses positional arguments for its losses: ``loss(pred, y)`` would read
    the prediction as the labels and train silently towards a wrong answer."""
    if sentinel is not None:
        raise ValueError(f"Only call `{fn_name}` with named arguments (labels=..., "
                         f"logits=..., ...)")
    if labels is None or logits is None:
        raise ValueError(f"{fn_name}: both labels= and logits= must be provided")


def softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, axis=-1,
                                      name=None, dim=None):
    """Per-example ``-sum(labels * log_softmax(logits))`` over the last axis. Named
    arguments only (a positional call raises ``ValueError``, as in TF1). As TF1's
    (deprecated) first version, no gradient flows into ``labels`` (they are wrapped in
    ``stop_gradient``); ``softmax_cross_entropy_with_logits_v2`` differentiates both.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.nn.softmax_cross_entropy_with_logits([[0.0, 1.0]], [[0.0, 0.0]])
    Traceback (most recent call last):
    ValueError: Only call `softmax_cross_entropy_with_logits` with named arguments (labels=..., logits=..., ...)
    >>> with fg.Graph().as_default():
    ...     labels, logits = fg.constant([[0.5, 0.5]]), fg.constant([[0.0, 1.0]])
    ...     loss = fg.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    ...     fg.Session().run(fg.gradients(loss, [labels])[0])
    array([[0., 0.]], dtype=float32)
    """
    return _softmax_xent_loss("softmax_cross_entropy_with_logits", _sentinel, labels,
                              logits, axis, name, dim, stop_labels=True)


def softmax_cross_entropy_with_logits_v2(_sentinel=None, labels=None, logits=None, axis=-1,
                                         name=None, dim=None):
    """``softmax_cross_entropy_with_logits`` whose gradient also flows into ``labels``
    (TF1's ``_v2``; differentiable in both, to any order).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     labels, logits = fg.constant([[0.5, 0.5]]), fg.constant([[0.0, 0.0]])
    ...     loss = fg.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    ...     fg.Session().run(fg.gradients(loss, [labels])[0])   # -log_softmax(logits)
    array([[0.6931472, 0.6931472]], dtype=float32)
    """
    return _softmax_xent_loss("softmax_cross_entropy_with_logits_v2", _sentinel, labels,
                              logits, axis, name, dim, stop_labels=False)


def _labels_like(fn_name, labels, logits):
    """``labels`` as a tensor of the logits' dtype and a shape that broadcasts to
    theirs, else a ``DTypeError`` / ``ShapeError`` naming ``fn_name``'s call."""
    labels = F.convert_to_tensor(labels, dtype=logits.dtype) if not isinstance(
        labels, F.Tensor) else labels
    if labels.dtype != logits.dtype:
        raise DTypeError(f"{_called(fn_name)}: expected labels "
                         f"of the logits' dtype {logits.dtype.name}, found "
                         f"{labels.dtype.name}")
    try:
        S.broadcast_shapes(labels.shape, logits.shape)
    except ValueError:
        raise ShapeError(f"{_called(fn_name)}: expected labels "
                         f"of the logits' shape {S.fmt(logits.shape)} (or one that "
                         f"broadcasts to it), found {S.fmt(labels.shape)}") from None
    return labels


def _softmax_xent_loss(fn_name, _sentinel, labels, logits, axis, name, dim, stop_labels):
    _named_arguments_only(fn_name, _sentinel, labels, logits)
    axis = axis if dim is None else dim
    logits = F.convert_to_tensor(logits)
    labels = _labels_like(fn_name, labels, logits)
    if stop_labels:     # TF1's first version: the labels are data, never trained
        labels = F.stop_gradient(labels)
    rank = None if logits.shape is None else len(logits.shape)
    if rank and labels.shape is not None and len(labels.shape) == rank and axis in (
            -1, rank - 1) and all(a == b or None in (a, b)
                                  for a, b in zip(labels.shape, logits.shape)):
        # Labels of the logits' shape (as TF1 requires): one row kernel
        # (ops.SoftmaxXent) for the loss and the softmax.
        return F.softmax_xent(logits, labels, name=name)[0]
    return F.negative(F.reduce_sum(labels * log_softmax(logits, axis), axis), name=name)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None,
                                             name=None):
    """Per-example ``logsumexp(logits) - logits[label]``; ``labels`` are class indices.

    A label outside ``[0, classes)`` raises ``fg.errors.InvalidArgumentError`` at run
    time naming the check (``.../labels_in_range``), for the loss and its gradient, as
    TF1 does. A ``-inf`` logit on a class other than the label gives the finite loss
    and gradient (the label's logit is picked, never ``0 * -inf``). Named arguments
    only (a positional call raises ``ValueError``, as in TF1).

    >>> import flowgraph as fg, numpy as np
    >>> with fg.Graph().as_default():
    ...     loss = sparse_softmax_cross_entropy_with_logits(
    ...         labels=[0], logits=fg.constant([[0.0, -np.inf]]))
    ...     fg.Session().run(loss)
    array([0.], dtype=float32)
    """
    _named_arguments_only("sparse_softmax_cross_entropy_with_logits", _sentinel, labels,
                          logits)
    logits = F.convert_to_tensor(logits)
    labels = F.convert_to_tensor(labels)
    if not dtypes.is_integer(labels.dtype):
        raise DTypeError(f"{_called('sparse_softmax_cross_entropy_with_logits')}: expected "
                         f"integer labels, found {labels.dtype.name}")
    if logits.shape is None or logits.shape[-1] is None:
        raise ShapeError(f"{_called('sparse_softmax_cross_entropy_with_logits')}: expected "
                         f"logits with a known number of classes, found shape "
                         f"{S.fmt(logits.shape)}")
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


def embedding_lookup(params, ids, partition_strategy="mod", name=None, validate_indices=True,
                     max_norm=None):
    """Rows of ``params`` for integer ``ids`` (a gather along axis 0).

    ``params`` may be a list of shards of one table (TF1): with ``"mod"`` (the
    default) row ``i`` is row ``i // n`` of shard ``i % n``; with ``"div"`` the shards
    hold consecutive blocks of rows (the first ``rows % n`` one row more). The shards
    are joined and ``ids`` remapped, so the gradient reaches every shard.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     shards = [fg.constant([[0.0], [2.0]]), fg.constant([[1.0]])]   # rows 0, 2 | 1
    ...     fg.Session().run(fg.nn.embedding_lookup(shards, [2, 1, 0]))
    array([[2.],
           [1.],
           [0.]], dtype=float32)
    """
    if max_norm is not None:
        raise NotImplementedError("embedding_lookup: max_norm is not supported")
    if not isinstance(params, (list, tuple)):
        return F.gather(params, ids, name=name)
    shards = [F.convert_to_tensor(p) for p in params]
    if not shards:
        raise ValueError("embedding_lookup: expected at least one shard of params")
    if len(shards) == 1:
        return F.gather(shards[0], ids, name=name)
    dtype = shards[0].dtype
    for p in shards:
        if p.dtype != dtype:
            raise DTypeError(f"embedding_lookup: expected shards of one dtype, found "
                             f"{', '.join(f'{q.name}: {q.dtype.name}' for q in shards)}")
    table = F.concat(shards, 0)
    ids = F.convert_to_tensor(ids)
    if not dtypes.is_integer(ids.dtype):
        raise DTypeError(f"embedding_lookup: expected integer ids, found {ids.dtype.name}")
    if partition_strategy == "div":
        return F.gather(table, ids, name=name)       # the shards in order are the table
    if partition_strategy != "mod":
        raise ValueError(f"embedding_lookup: expected partition_strategy 'mod' or 'div', "
                         f"found {partition_strategy!r}")
    n = len(shards)
    for p in shards:
        if p.shape is None or p.shape[0] is None:
            raise ShapeError(f"embedding_lookup: expected 'mod' shards with a known number "
                             f"of rows, found {p.name} of shape {p.shape}")
    sizes = [p.shape[0] for p in shards]
    expected = [(sum(sizes) + n - 1 - k) // n for k in range(n)]
    if sizes != expected:
        raise ShapeError(f"embedding_lookup: expected 'mod' shards of {expected} rows for "
                         f"a table of {sum(sizes)}, found {sizes}")
    offsets = F.constant(np.cumsum([0] + sizes[:-1]).astype(ids.dtype))
    # ids // n and ids % n with exact integer results for ids >= 0 (true division,
    # truncated); a negative id gives a negative shard index, which gather rejects.
    quotient = F.cast(F.divide(ids, n), ids.dtype)
    shard = ids - quotient * n
    return F.gather(table, F.gather(offsets, shard) + quotient, name=name)


def sigmoid_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """Per-element ``-labels*log(sigmoid(x)) - (1-labels)*log(1-sigmoid(x))`` in TF1's
    overflow-free form ``max(x, 0) - x*labels + log(1 + exp(-|x|))``. Named arguments
    only, as TF1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     loss = fg.nn.sigmoid_cross_entropy_with_logits(labels=[1.0, 0.0],
    ...                                                    logits=[100.0, -100.0])
    ...     fg.Session().run(loss)
    array([0., 0.], dtype=float32)
    """
    _named_arguments_only("sigmoid_cross_entropy_with_logits", _sentinel, labels, logits)
    logits = F.convert_to_tensor(logits)
    labels = _labels_like("sigmoid_cross_entropy_with_logits", labels, logits)
    return F.add(F.relu(logits) - logits * labels, F.log(1.0 + F.exp(-F.abs(logits))),
                 name=name)


def weighted_cross_entropy_with_logits(labels=None, logits=None, pos_weight=None, name=None,
                                       targets=None):
    """``sigmoid_cross_entropy_with_logits`` with the positive term weighted by
    ``pos_weight`` (TF1), in TF1's overflow-free form ``(1 - z) * x + (1 + (q - 1) * z)
    * (log(1 + exp(-|x|)) + max(-x, 0))``; ``targets`` is TF1's older name of
    ``labels``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     loss = fg.nn.weighted_cross_entropy_with_logits(labels=[1.0, 0.0],
    ...                                                     logits=[0.0, 0.0], pos_weight=3.0)
    ...     fg.Session().run(loss).round(4)
    array([2.0794, 0.6931], dtype=float32)
    """
    labels = F._alias("weighted_cross_entropy_with_logits", "labels", labels, "targets",
                      targets)
    if labels is None or logits is None or pos_weight is None:
        raise ValueError(f"{_called('weighted_cross_entropy_with_logits')}: expected "
                         f"labels=, logits= and pos_weight=")
    logits = F.convert_to_tensor(logits)
    labels = _labels_like("weighted_cross_entropy_with_logits", labels, logits)
    log_weight = 1.0 + (F.convert_to_tensor(pos_weight, dtype=logits.dtype) - 1.0) * labels
    softplus_neg = F.log(1.0 + F.exp(-F.abs(logits))) + F.relu(-logits)   # log(1 + e^-x)
    return F.add((1.0 - labels) * logits, log_weight * softplus_neg, name=name)


def l2_loss(t, name=None):
    """``sum(t ** 2) / 2`` (TF1's weight-decay term).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     float(fg.Session().run(fg.nn.l2_loss([3.0, 4.0])))
    12.5
    """
    t = F.convert_to_tensor(t)
    return F.multiply(F.reduce_sum(F.square(t)), 0.5, name=name)


def _per_nonzero_weight(total, weights, axis, name):
    """``total`` divided by the number of non-zero ``weights`` (over ``axis``), 0 where
    there are none (TF 1.15's ``div_no_nan(sum, count_nonzero(weights))``)."""
    count = F.reduce_sum(F.cast(F.not_equal(weights, 0), total.dtype), axis)
    safe = F.maximum(count, 1.0)
    return F.where(count > 0, total / safe, F.zeros_like(total), name=name)


def sequence_loss(logits, targets, weights, average_across_timesteps=True,
                  average_across_batch=True, softmax_loss_function=None, name=None, *,
                  sum_over_timesteps=False, sum_over_batch=False):
    """Weighted cross-entropy of ``logits [batch, time, classes]`` against integer
    ``targets [batch, time]`` with ``weights [batch, time]``, exactly as
    ``tf.contrib.seq2seq.sequence_loss``: summed losses divided by the summed weights
    (+1e-12) over the averaged axes; a scalar when both averages are on, ``[time]`` or
    ``[batch]`` when one is off, ``[batch, time]`` when both are.

    TF 1.15's ``sum_over_timesteps`` / ``sum_over_batch`` (keywords here, after the
    older TF1 positional order): the weighted losses summed over those axes and divided
    by the number of non-zero weights there (0 where there are none); each excludes
    the matching ``average_across_*`` (``ValueError`` if both are on, as TF1); an
    average over the other axis takes precedence, as in TF1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     logits = fg.zeros((1, 2, 4))                    # uniform over 4 classes
    ...     loss = fg.nn.sequence_loss(logits, [[0, 3]], fg.ones((1, 2)))
    ...     round(float(fg.Session().run(loss)), 6)         # log(4)
    1.386294
    """
    logits = F.convert_to_tensor(logits)
    targets = F.convert_to_tensor(targets)
    weights = F.convert_to_tensor(weights, dtype=logits.dtype) if not isinstance(
        weights, F.Tensor) and not hasattr(weights, "_as_tensor") else \
        F.convert_to_tensor(weights)
    if logits.shape is None or len(logits.shape) != 3 or logits.shape[-1] is None:
        raise ShapeError(f"sequence_loss: expected logits [batch, time, classes] with a "
                         f"known number of classes, found shape {logits.shape}")
    if targets.shape is not None and len(targets.shape) != 2:
        raise ShapeError(f"sequence_loss: expected targets [batch, time], found shape "
                         f"{targets.shape}")
    if weights.shape is not None and len(weights.shape) != 2:
        raise ShapeError(f"sequence_loss: expected weights [batch, time], found shape "
                         f"{weights.shape}")
    for what, average, total in (("timesteps", average_across_timesteps, sum_over_timesteps),
                                 ("batch", average_across_batch, sum_over_batch)):
        if average and total:
            raise ValueError(f"sequence_loss: average_across_{what} and sum_over_{what} "
                             f"cannot both be True")
    flat_logits = F.reshape(logits, [-1, logits.shape[-1]])
    flat_targets = F.reshape(targets, [-1])
    if softmax_loss_function is None:
        crossent = sparse_softmax_cross_entropy_with_logits(labels=flat_targets,
                                                            logits=flat_logits)
    else:
        crossent = softmax_loss_function(labels=flat_targets, logits=flat_logits)
    crossent = crossent * F.reshape(weights, [-1])
    if average_across_timesteps and average_across_batch:
        return F.divide(F.reduce_sum(crossent), F.reduce_sum(weights) + 1e-12, name=name)
    if sum_over_timesteps and sum_over_batch:
        return _per_nonzero_weight(F.reduce_sum(crossent), weights, None, name)
    crossent = F.reshape_like(crossent, weights)
    # TF1's precedence: an average over one axis wins over a sum over the other.
    if average_across_timesteps:
        return F.divide(F.reduce_sum(crossent, 1), F.reduce_sum(weights, 1) + 1e-12, name=name)
    if average_across_batch:
        return F.divide(F.reduce_sum(crossent, 0), F.reduce_sum(weights, 0) + 1e-12, name=name)
    if sum_over_timesteps or sum_over_batch:
        axis = 1 if sum_over_timesteps else 0
        return _per_nonzero_weight(F.reduce_sum(crossent, axis), weights, axis, name)
    return F.identity(crossent, name=name) if name else crossent
