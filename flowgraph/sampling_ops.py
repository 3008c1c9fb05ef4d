"""TF1's sampling ops: ``tf.random.shuffle`` (``tf.random_shuffle``) and
``tf.random.categorical`` / ``tf.multinomial``.

They are random ops as :mod:`flowgraph.random_ops` makes them (kind ``"random"``):
TF1's seed rules pick the Philox key, every run draws anew, a new session with the
same seeds repeats the same runs, and every path (reference, compiled CPU plan, a GPU
by its host fallback) draws bit-identical numbers from :mod:`flowgraph.philox`.
Element ``i`` of a draw takes the 64 bits of words ``(2j, 2j + 1)`` of block ``i // 2``
(the float64/integer rule of :func:`flowgraph.philox.uniform`); a draw that needs more
numbers than it can know in advance (a sampler with ``unique=True``) takes its next
chunk from the blocks of *attempt* 1, 2, ... as the truncated normal does. No gradient
(TF1's ``RandomShuffle`` and ``Multinomial`` have none).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.random.shuffle(fg.range(6), seed=3)
...     print(sorted(fg.Session().run(x).tolist()))
[0, 1, 2, 3, 4, 5]
"""
from __future__ import annotations

import numpy as np

from . import api, dtypes, philox
from . import shapes as S
from .errors import DTypeError, InvalidArgumentError, ShapeError
from .graph import get_default_graph, location_suffix
from .primitives import defprim
from .random_ops import _op_seeds

_32 = np.uint64(32)


# --- the draws (NumPy; ``generator`` is the compiled plan's Numba maker of the words) --

def random_key(op, counter):
    """The Philox key of a random op in a run (:func:`flowgraph.ops.random_key`)."""
    graph_seed, op_seed = op.attrs["seeds"]
    return (counter[1] if graph_seed is None else graph_seed), op_seed


def words64(key, run, n, attempt=0, generator=None):
    """``(first, second)`` uint32 words of ``n`` draws of one run and ``attempt``."""
    nblocks = -(-int(n) // 2)
    if generator is not None:
        w = generator(key, run, nblocks, attempt)
    else:
        w = philox.blocks(key, run, np.arange(nblocks, dtype=np.uint64), attempt)
    return w[0::2].T.reshape(-1)[:n], w[1::2].T.reshape(-1)[:n]


def bits64(first, second):
    """64 random bits (uint64) of each draw."""
    return (first.astype(np.uint64) << _32) | second.astype(np.uint64)


def unit64(first, second):
    """Uniform float64 in ``[0, 1)`` of each draw (53 bits, as float64 uniforms)."""
    return philox.unit_float(first, np.float64, second)


# --- shuffle -----------------------------------------------------------------------------

def _shuffle_infer(op):
    x = op.inputs[0]
    return [(x.shape, x.dtype)]


def _shuffle_ref(op, x, counter=(0, 0), generator=None):
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[0] <= 1:       # TF1: nothing to shuffle, the input itself
        return x.copy()
    # A permutation by sorting 64 random bits per row: ties have probability n^2 / 2^65.
    bits = bits64(*words64(random_key(op, counter), counter[0], x.shape[0], 0, generator))
    return x[np.argsort(bits, kind="stable")]


defprim("RandomShuffle", _shuffle_infer, None, _shuffle_ref, "random")


def random_shuffle(value, seed=None, name=None):
    """TF1's ``tf.random.shuffle``: ``value`` with its first axis in a random order
    (the same order for every slice); a scalar or one row comes back as it is.

    >>> import flowgraph as fg
    >>> import numpy as np
    >>> with fg.Graph().as_default():
    ...     x = fg.constant(np.arange(8).reshape(4, 2))
    ...     y = fg.Session().run(fg.random_shuffle(x, seed=1))
    >>> sorted(y[:, 0].tolist()), bool((y[:, 1] == y[:, 0] + 1).all())
    ([0, 2, 4, 6], True)
    """
    value = api.convert_to_tensor(value)
    graph = get_default_graph()
    return graph.create_op("RandomShuffle", [value], {"seeds": _op_seeds(seed, graph)},
                           name).outputs[0]


# --- categorical -----------------------------------------------------------------------

def _multinomial_infer(op):
    logits = op.inputs[0]
    if not dtypes.is_floating(logits.dtype):
        raise DTypeError(f"expected float logits, found {logits.name} ({logits.dtype.name})")
    if logits.shape is not None and len(logits.shape) != 2:
        raise ShapeError(f"expected logits of shape [batch_size, num_classes], found "
                         f"{logits.name} of shape {S.fmt(logits.shape)}")
    if logits.shape is not None and logits.shape[1] == 0:
        raise ShapeError("expected at least one class, found logits with 0 columns")
    batch = None if logits.shape is None else logits.shape[0]
    return [((batch, op.attrs["num_samples"]), op.attrs["dtype"])]


def _multinomial_ref(op, logits, counter=(0, 0), generator=None):
    """Inverse-CDF sampling of ``softmax(logits)`` per row, in float64: draw ``u``,
    take the first class whose cumulative weight exceeds ``u * total``. A class of
    weight 0 (logit ``-inf``) is never taken."""
    logits = np.asarray(logits, np.float64)
    batch, classes = logits.shape
    n = op.attrs["num_samples"]
    if classes == 0:
        raise InvalidArgumentError("expected at least one class, found logits with 0 "
                                   "columns")
    u = unit64(*words64(random_key(op, counter), counter[0], batch * n, 0, generator))
    u = u.reshape(batch, n)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(weights, axis=1)
    positive = np.where(weights > 0, np.arange(classes), 0).max(axis=1)
    out = np.empty((batch, n), np.int64)
    for row in range(batch):       # u * total may round up to total: the last positive
        found = np.searchsorted(cdf[row], u[row] * cdf[row, -1], side="right")
        out[row] = np.minimum(found, positive[row])
    return out.astype(op.attrs["dtype"])


defprim("Multinomial", _multinomial_infer, None, _multinomial_ref, "random")


def _num_samples(num_samples, what):
    if hasattr(num_samples, "op") and num_samples.op.type == "Const":
        num_samples = np.asarray(num_samples.op.attrs["value"]).item()
    if isinstance(num_samples, (int, np.integer)) and not isinstance(num_samples, bool) \
            and num_samples >= 0:
        return int(num_samples)
    raise ValueError(f"{what}: expected num_samples a number >= 0 (or a constant), found "
                     f"{num_samples!r}{location_suffix('called')}")


def categorical(logits, num_samples, dtype=None, seed=None, name=None):
    """TF1's ``tf.random.categorical``: ``num_samples`` class indices per row of
    ``logits`` ``[batch_size, num_classes]`` (unnormalized log-probabilities), drawn
    from ``softmax(logits)``; ``[batch_size, num_samples]`` of ``dtype`` (int64 by
    default, or int32).

    >>> import flowgraph as fg
    >>> import numpy as np
    >>> with fg.Graph().as_default():
    ...     logits = fg.constant([[0.0, -np.inf, 0.0]])
    ...     s = fg.Session().run(fg.random.categorical(logits, 1000, seed=1))
    >>> s.shape, s.dtype, sorted(set(s.ravel().tolist()))
    ((1, 1000), dtype('int64'), [0, 2])
    """
    dtype = dtypes.int64 if dtype is None else dtypes.as_dtype(dtype)
    if dtype not in (dtypes.int32, dtypes.int64):
        raise DTypeError(f"categorical: expected dtype int32 or int64, found {dtype.name}"
                         f"{location_suffix('called')}")
    n = _num_samples(num_samples, "categorical")
    logits = api.convert_to_tensor(logits)
    graph = get_default_graph()
    return graph.create_op("Multinomial", [logits], {
        "num_samples": n, "dtype": dtype, "seeds": _op_seeds(seed, graph)}, name).outputs[0]


def multinomial(logits, num_samples, seed=None, name=None, output_dtype=None):
    """TF1's ``tf.multinomial`` (``tf.random.multinomial``): :func:`categorical` with
    TF1's older argument order.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     s = fg.multinomial(fg.constant([[1.0, 2.0]]), 5, seed=2, output_dtype=fg.int32)
    ...     print(fg.Session().run(s).shape, s.dtype.name)
    (1, 5) int32
    """
    return categorical(logits, num_samples, dtype=output_dtype, seed=seed, name=name)


__all__ = ["random_shuffle", "categorical", "multinomial"]
