"""TF1's candidate samplers (``tf.nn.uniform_candidate_sampler``,
``log_uniform_candidate_sampler``, ``fixed_unigram_candidate_sampler``): the negative
classes of sampled softmax and NCE (:mod:`flowgraph.nn.sampled_losses`).

Each returns TF1's triple ``(sampled_candidates, true_expected_count,
sampled_expected_count)``: ``num_sampled`` int64 classes in ``[0, range_max)``, and
float32 expected counts of ``true_classes`` ``[batch_size, num_true]`` and of the
sampled classes. The expected counts follow TF1's ``range_sampler.cc`` exactly, in
float32: with ``p`` a class's probability and ``num_tries`` the draws it took,

* ``p * num_sampled`` where ``num_tries == num_sampled`` (always when ``unique=False``;
  also when ``unique=True`` drew no repeat);
* else ``-expm1(num_tries * log1p(-p))`` (``1 - (1 - p) ** num_tries``).

``unique=True`` draws until ``num_sampled`` distinct classes came (rejecting repeats,
counting every draw); the probabilities are

* uniform: ``1 / range_max``;
* log-uniform (Zipfian): ``log((c + 2) / (c + 1)) / log(range_max + 1)``, drawn as
  ``int(exp(u * log(range_max + 1))) - 1`` (modulo ``range_max``);
* fixed unigram: ``w_c / sum(w)`` with ``w = unigrams ** distortion`` (float32, the sum
  accumulated in order as TF1's), ``num_reserved_ids`` classes of weight 0 first, and
  of ``num_shards`` only the ids ``% num_shards == shard``, as TF1's.

The sampler is one random op (kind ``"random"``, :mod:`flowgraph.sampling_ops`: TF1's
seed rules, bit-identical on every path) with three outputs. No gradient: TF1 stops
gradients through them.

>>> import flowgraph as fg
>>> import numpy as np
>>> with fg.Graph().as_default():
...     true = fg.constant([[0], [3]], fg.int64)
...     s, t, e = fg.nn.uniform_candidate_sampler(true, 1, 4, False, 10, seed=1)
...     s, t, e = fg.Session().run([s, t, e])
>>> s.shape, s.dtype, t.shape, e.shape          # p = 1/10, 4 tries: 4 * p each
((4,), dtype('int64'), (2, 1), (4,))
>>> bool((t == np.float32(0.1) * 4).all() and (e == np.float32(0.1) * 4).all())
True
"""
from __future__ import annotations

import numpy as np

from . import api, dtypes
from . import shapes as S
from .errors import DTypeError, InvalidArgumentError, ShapeError
from .graph import get_default_graph, location_suffix
from .primitives import defprim
from .random_ops import _op_seeds
from .sampling_ops import bits64, random_key, unit64, words64


# --- TF1's probabilities and expected counts (float32, as range_sampler.cc) -------------

def probabilities(attrs, classes):
    """TF1's ``Probability(value)`` of each of ``classes`` (float32)."""
    classes = np.asarray(classes, np.int64)
    kind, range_max = attrs["sampler"], attrs["range_max"]
    if kind == "uniform":
        return np.full(classes.shape, np.float32(1.0 / range_max), np.float32)
    if kind == "log_uniform":
        c = classes.astype(np.float64)
        return (np.log((c + 2.0) / (c + 1.0)) / np.log1p(range_max)).astype(np.float32)
    weights = np.asarray(attrs["weights"], np.float32)
    total = np.cumsum(weights, dtype=np.float32)[-1]      # float total_weight_ += w
    inside = (classes >= 0) & (classes < weights.size)
    p = weights[np.where(inside, classes, 0)] / total
    return np.where(inside, p, np.float32(0.0)).astype(np.float32)


def expected_counts(p, num_sampled, num_tries):
    """TF1's ``ExpectedCountHelper`` (float32)."""
    p = np.asarray(p, np.float32)
    if num_tries == num_sampled:
        return (p * np.float32(num_sampled)).astype(np.float32)
    with np.errstate(divide="ignore"):           # p == 1: log1p(-1) = -inf, count 1
        return (-np.expm1(np.float32(num_tries) * np.log1p(-p))).astype(np.float32)


def _sampler(attrs):
    """``draw(first, second) -> classes`` from the 64 bits of each draw."""
    kind, range_max = attrs["sampler"], attrs["range_max"]
    if kind == "uniform":
        return lambda f, s: (bits64(f, s) % np.uint64(range_max)).astype(np.int64)
    if kind == "log_uniform":
        log_range = np.log1p(range_max)
        return lambda f, s: (np.exp(unit64(f, s) * log_range).astype(np.int64) - 1) % range_max
    weights = np.asarray(attrs["weights"], np.float32).astype(np.float64)
    cdf = np.cumsum(weights)
    last = int(np.flatnonzero(weights > 0)[-1])

    def unigram(f, s):          # the first class whose cumulative weight exceeds u * sum
        found = np.searchsorted(cdf, unit64(f, s) * cdf[-1], side="right")
        return np.minimum(found, last).astype(np.int64)
    return unigram


def sample(attrs, key, run, generator=None):
    """``(candidates, num_tries)`` of one run: TF1's loop, draws taken in order; with
    ``unique`` a repeat is rejected (and counted), chunk ``k`` of the draws coming from
    the Philox blocks of attempt ``k``."""
    n, draw = attrs["num_sampled"], _sampler(attrs)
    if not attrs["unique"]:
        return draw(*words64(key, run, n, 0, generator)), n
    picked, used, tries, attempt = [], set(), 0, 0
    chunk = max(2 * n, 64)
    while len(picked) < n:
        for value in draw(*words64(key, run, chunk, attempt, generator)).tolist():
            tries += 1
            if value not in used:
                used.add(value)
                picked.append(value)
                if len(picked) == n:
                    break
        attempt += 1
    return np.array(picked, np.int64), tries


# --- the primitive ---------------------------------------------------------------------

def _infer(op):
    true = op.inputs[0]
    num_true = op.attrs["num_true"]
    if true.dtype != dtypes.int64:
        raise DTypeError(f"expected int64 true_classes, found {true.name} "
                         f"({true.dtype.name})")
    if true.shape is not None and (len(true.shape) != 2 or true.shape[1] not in (None,
                                                                              num_true)):
        raise ShapeError(f"expected true_classes of shape [batch_size, num_true="
                         f"{num_true}], found {true.name} of shape {S.fmt(true.shape)}")
    batch = None if true.shape is None else true.shape[0]
    n = op.attrs["num_sampled"]
    return [((n,), dtypes.int64), ((batch, num_true), dtypes.float32),
            ((n,), dtypes.float32)]


def _ref(op, true_classes, counter=(0, 0), generator=None):
    true_classes = np.asarray(true_classes)
    if true_classes.ndim != 2 or true_classes.shape[1] != op.attrs["num_true"]:
        raise InvalidArgumentError(f"expected true_classes of shape [batch_size, "
                                   f"{op.attrs['num_true']}], found {true_classes.shape}")
    candidates, tries = sample(op.attrs, random_key(op, counter), counter[0], generator)
    n = op.attrs["num_sampled"]
    return (candidates,
            expected_counts(probabilities(op.attrs, true_classes), n, tries),
            expected_counts(probabilities(op.attrs, candidates), n, tries))


defprim("CandidateSampler", _infer, None, _ref, "random")


def _candidate_sampler(what, true_classes, num_true, num_sampled, unique, range_max, seed,
                       name, **extra):
    where = location_suffix("called")
    for arg, value, low in (("num_true", num_true, 1), ("num_sampled", num_sampled, 1),
                            ("range_max", range_max, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{what}: expected {arg} an int >= {low}, found {value!r}{where}")
    if unique and num_sampled > range_max:
        raise ValueError(f"{what}: unique=True needs num_sampled <= range_max, found "
                         f"{num_sampled} > {range_max}{where}")
    true_classes = api.convert_to_tensor(true_classes)
    if dtypes.is_integer(true_classes.dtype) and true_classes.dtype != dtypes.int64:
        true_classes = api.cast(true_classes, dtypes.int64)
    graph = get_default_graph()
    attrs = {"num_true": int(num_true), "num_sampled": int(num_sampled),
             "unique": bool(unique), "range_max": int(range_max),
             "seeds": _op_seeds(seed, graph), **extra}
    op = graph.create_op("CandidateSampler", [true_classes], attrs, name or what)
    return tuple(op.outputs)


def uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max,
                              seed=None, name=None):
    """TF1's ``tf.nn.uniform_candidate_sampler``: classes drawn uniformly from
    ``[0, range_max)``; ``(sampled_candidates, true_expected_count,
    sampled_expected_count)`` (the module's docstring gives TF1's formulas).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     s, _, _ = fg.nn.uniform_candidate_sampler([[1]], 1, 5, True, 5, seed=3)
    ...     print(sorted(fg.Session().run(s).tolist()))
    [0, 1, 2, 3, 4]
    """
    return _candidate_sampler("uniform_candidate_sampler", true_classes, num_true,
                              num_sampled, unique, range_max, seed, name, sampler="uniform")


def log_uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max,
                                  seed=None, name=None):
    """TF1's ``tf.nn.log_uniform_candidate_sampler``: classes from the log-uniform
    (Zipfian) distribution ``P(c) = log((c + 2) / (c + 1)) / log(range_max + 1)``, for
    vocabularies sorted by decreasing frequency (word2vec's default).

    >>> import flowgraph as fg
    >>> import numpy as np
    >>> with fg.Graph().as_default():
    ...     s, t, e = fg.nn.log_uniform_candidate_sampler([[0]], 1, 3, False, 9, seed=1)
    ...     t = fg.Session().run(t)
    >>> float(t[0, 0]) == float(np.float32(3 * np.log(2.0) / np.log(10.0)))
    True
    """
    return _candidate_sampler("log_uniform_candidate_sampler", true_classes, num_true,
                              num_sampled, unique, range_max, seed, name,
                              sampler="log_uniform")


def fixed_unigram_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max,
                                    vocab_file="", distortion=1.0, num_reserved_ids=0,
                                    num_shards=1, shard=0, unigrams=(), seed=None, name=None):
    """TF1's ``tf.nn.fixed_unigram_candidate_sampler`` with ``unigrams=`` (counts or
    probabilities per class): class ``c`` drawn with probability proportional to
    ``unigrams[c] ** distortion``; ``range_max`` must equal the number of weights
    (``num_reserved_ids`` zeros first, then the shard's unigrams). ``vocab_file`` is
    not supported (NotImplementedError): read the counts and pass ``unigrams=``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     s, t, e = fg.nn.fixed_unigram_candidate_sampler(
    ...         [[2]], 1, 4, False, 3, unigrams=[0.0, 1.0, 3.0], seed=1)
    ...     s, t = fg.Session().run([s, t])
    >>> 0 in s.tolist(), t.tolist()
    (False, [[3.0]])
    """
    where = location_suffix("called")
    what = "fixed_unigram_candidate_sampler"
    if vocab_file:
        raise NotImplementedError(f"{what}: vocab_file is not supported; read the counts "
                                  f"and pass them as unigrams={where}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"{what}: expected 0 <= shard < num_shards, found shard={shard}, "
                         f"num_shards={num_shards}{where}")
    weights = [np.float32(0.0) for i in range(num_reserved_ids) if i % num_shards == shard]
    distortion = np.float32(distortion)
    for word_id, w in enumerate(np.asarray(unigrams, np.float32).ravel().tolist(),
                                start=len(weights)):     # TF1 counts from here (sic)
        if word_id % num_shards == shard:
            weights.append(np.power(np.float32(w), distortion))
    weights = np.asarray(weights, np.float32)
    if weights.size != range_max:
        raise ValueError(f"{what}: range_max is {range_max} but there are {weights.size} "
                         f"weights (num_reserved_ids and unigrams of this shard){where}")
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError(f"{what}: expected unigrams >= 0 and finite{where}")
    positive = int((weights > 0).sum())
    if positive == 0 or (unique and positive < num_sampled):
        raise ValueError(f"{what}: {positive} classes have a weight > 0, too few to draw "
                         f"{num_sampled}{' distinct' if unique else ''}{where}")
    return _candidate_sampler(what, true_classes, num_true, num_sampled, unique, range_max,
                              seed, name, sampler="fixed_unigram",
                              weights=tuple(float(w) for w in weights))


__all__ = ["uniform_candidate_sampler", "log_uniform_candidate_sampler",
           "fixed_unigram_candidate_sampler"]
