"""TF1's sampled losses for large output vocabularies: ``tf.nn.sampled_softmax_loss``
and ``tf.nn.nce_loss`` (word2vec, large-vocabulary language models).

Both are TF1's ``_compute_sampled_logits`` built from graph ops, so they differentiate
to any order: one embedding lookup of the true and sampled classes' rows of
``weights`` (and of ``biases``), so the gradient of the table is one ``GatherGrad`` of
those rows (an optimizer updates only them, as TF1's IndexedSlices); logits
``inputs @ w.T + b`` minus ``log(expected count)`` (the samplers' Q); with
``remove_accidental_hits`` a sampled class equal to one of the row's labels gets
``-FLT_MAX`` added to its logit (TF1's ``compute_accidental_hits`` + ``sparse_to_dense``).
The samples (given as ``sampled_values`` or drawn by
:func:`~flowgraph.nn.log_uniform_candidate_sampler` with ``unique=True``) are behind
``stop_gradient``, as TF1's.
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from .. import array_ops as A
from .. import dtypes
from ..candidate_sampling_ops import log_uniform_candidate_sampler
from ..graph import location_suffix, name_scope
from .losses import (embedding_lookup, sigmoid_cross_entropy_with_logits,
                     softmax_cross_entropy_with_logits_v2)

FLOAT_MAX = float(np.finfo(np.float32).max)   # TF1's accidental-hit weight: -FLT_MAX


def _weights_list(weights):
    if isinstance(weights, (list, tuple)):
        return list(weights)
    return [weights]


def _compute_sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes,
                            num_true=1, sampled_values=None, subtract_log_q=True,
                            remove_accidental_hits=False, partition_strategy="mod",
                            name=None, seed=None):
    """TF1's ``nn_impl._compute_sampled_logits``: ``(out_logits, out_labels)``, each
    ``[batch_size, num_true + num_sampled]``, the true classes first; the labels are
    ``1 / num_true`` for the true classes and 0 for the sampled ones."""
    weights = _weights_list(weights)
    with name_scope(name or "compute_sampled_logits"):
        inputs = F.convert_to_tensor(inputs)
        labels = F.convert_to_tensor(labels)
        if not dtypes.is_integer(labels.dtype):
            raise TypeError(f"expected integer labels, found {labels.dtype.name}"
                            f"{location_suffix('called')}")
        if labels.dtype != dtypes.int64:
            labels = F.cast(labels, dtypes.int64)
        if labels.shape is not None and len(labels.shape) != 2:
            raise ValueError(f"expected labels of shape [batch_size, num_true], found "
                             f"shape {labels.shape}{location_suffix('called')}")
        labels_flat = F.reshape(labels, [-1])
        if sampled_values is None:
            sampled_values = log_uniform_candidate_sampler(
                true_classes=labels, num_true=num_true, num_sampled=num_sampled,
                unique=True, range_max=num_classes, seed=seed)
        sampled, true_expected, sampled_expected = (
            F.stop_gradient(F.convert_to_tensor(s)) for s in sampled_values)
        sampled = F.cast(sampled, dtypes.int64)
        n_sampled = sampled.shape[0] if sampled.shape and sampled.shape[0] is not None \
            else num_sampled
        if n_sampled < 1:     # (the rows are split from the end: at least one sampled)
            raise ValueError(f"expected at least one sampled class, found {n_sampled}"
                             f"{location_suffix('called')}")
        all_ids = F.concat([labels_flat, sampled], 0)

        # The rows of the true and the sampled classes: one lookup (one gradient scatter).
        all_w = embedding_lookup(weights, all_ids, partition_strategy=partition_strategy)
        if all_w.dtype != inputs.dtype:
            all_w = F.cast(all_w, inputs.dtype)
        true_w, sampled_w = all_w[:-n_sampled], all_w[-n_sampled:]
        sampled_logits = F.matmul(inputs, sampled_w, transpose_b=True)

        all_b = embedding_lookup(biases, all_ids, partition_strategy=partition_strategy)
        if all_b.dtype != inputs.dtype:
            all_b = F.cast(all_b, inputs.dtype)
        true_b, sampled_b = all_b[:-n_sampled], all_b[-n_sampled:]

        # Row-wise dots of each input with its num_true true rows: [batch, num_true].
        dim = all_w.shape[1] if all_w.shape is not None else None
        if dim is None:
            dim = A.shape(all_w)[1]
        true_w = F.reshape(true_w, F.stack([-1, num_true, dim]) if hasattr(dim, "op")
                           else [-1, num_true, dim])
        true_logits = F.reduce_sum(F.expand_dims(inputs, 1) * true_w, axis=2)
        true_logits = true_logits + F.reshape(true_b, [-1, num_true])
        sampled_logits = sampled_logits + sampled_b

        if remove_accidental_hits:
            # [batch, num_sampled]: is sampled class j one of row i's labels?
            hits = A.reduce_any(F.equal(F.expand_dims(labels, 2),
                                        F.reshape(sampled, [1, 1, -1])), axis=1)
            penalty = F.where(hits, F.ones_like(sampled_logits) * -FLOAT_MAX,
                              F.zeros_like(sampled_logits))
            sampled_logits = sampled_logits + penalty
        if subtract_log_q:     # minus log Q(class), the sampler's expected count
            true_logits = true_logits - F.log(F.cast(true_expected, inputs.dtype))
            sampled_logits = sampled_logits - F.log(F.cast(sampled_expected, inputs.dtype))

        out_logits = F.concat([true_logits, sampled_logits], 1)
        out_labels = F.concat([F.ones_like(true_logits) / num_true,
                               F.zeros_like(sampled_logits)], 1)
        return out_logits, out_labels


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes,
                         num_true=1, sampled_values=None, remove_accidental_hits=True,
                         partition_strategy="mod", name="sampled_softmax_loss", seed=None):
    """TF1's ``tf.nn.sampled_softmax_loss``: per example (``[batch_size]``) the softmax
    cross-entropy over the true classes and ``num_sampled`` sampled ones, logits
    corrected by ``-log(expected count)``. ``weights`` ``[num_classes, dim]`` (or a
    list of its shards, split by ``partition_strategy``), ``biases`` ``[num_classes]``,
    ``labels`` ``[batch_size, num_true]`` ints, ``inputs`` ``[batch_size, dim]``.
    Training only: evaluate with the full softmax.

    >>> import flowgraph as fg
    >>> import numpy as np
    >>> with fg.Graph().as_default():
    ...     w = fg.constant(np.eye(4, 2, dtype=np.float32))
    ...     fixed = ([1, 2], [[0.5]], [0.5, 0.5])          # candidates, expected counts
    ...     loss = fg.nn.sampled_softmax_loss(w, fg.zeros([4]), [[0]], [[1.0, 0.0]], 2, 4,
    ...                                       sampled_values=fixed)
    ...     print(np.round(fg.Session().run(loss), 4))     # -log(e / (e + 1 + 1))
    [0.5514]
    """
    logits, labels = _compute_sampled_logits(
        weights, biases, labels, inputs, num_sampled, num_classes, num_true=num_true,
        sampled_values=sampled_values, subtract_log_q=True,
        remove_accidental_hits=remove_accidental_hits,
        partition_strategy=partition_strategy, name=name, seed=seed)
    labels = F.stop_gradient(labels, name="labels_stop_gradient")
    return softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)


def nce_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
             sampled_values=None, remove_accidental_hits=False, partition_strategy="mod",
             name="nce_loss", seed=None):
    """TF1's ``tf.nn.nce_loss`` (noise-contrastive estimation): per example the sum of
    the sigmoid cross-entropies of the true classes (label ``1 / num_true``) and the
    sampled ones (label 0), logits corrected by ``-log(expected count)``; arguments as
    :func:`sampled_softmax_loss` (``seed=`` is flowgraph's addition, for the default
    sampler).

    >>> import flowgraph as fg
    >>> import numpy as np
    >>> with fg.Graph().as_default():
    ...     w = fg.constant(np.zeros((4, 2), np.float32))
    ...     fixed = ([1, 2], [[1.0]], [1.0, 1.0])
    ...     loss = fg.nn.nce_loss(w, fg.zeros([4]), [[0]], [[1.0, 0.0]], 2, 4,
    ...                           sampled_values=fixed)
    ...     print(np.round(fg.Session().run(loss), 4))     # 3 * log(2)
    [2.0794]
    """
    logits, labels = _compute_sampled_logits(
        weights, biases, labels, inputs, num_sampled, num_classes, num_true=num_true,
        sampled_values=sampled_values, subtract_log_q=True,
        remove_accidental_hits=remove_accidental_hits,
        partition_strategy=partition_strategy, name=name, seed=seed)
    losses = sigmoid_cross_entropy_with_logits(labels=labels, logits=logits,
                                               name="sampled_losses")
    return F.reduce_sum(losses, axis=1)


__all__ = ["sampled_softmax_loss", "nce_loss"]
