"""TF1's "more ops" written as compositions (issue 14): forward against NumPy, gradients
against finite differences (first and second order), and that a compiled run agrees
with the reference path (and compiles rather than falling back)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.testing import strategies as fgst


def run(fetches, feed=None, optimize=None):
    config = None if optimize is None else fg.SessionConfig(optimize=optimize)
    with fg.Session(config=config) as sess:
        return sess.run(fetches, feed)


def both_paths(fetches, feed=None):
    """Run on the compiled and the reference path; they must agree exactly."""
    compiled, reference = run(fetches, feed, True), run(fetches, feed, False)
    _assert_same(compiled, reference)
    return reference


def _assert_same(a, b):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6 if a.dtype == np.float32 else 1e-12)


# --- forward ---------------------------------------------------------------------------

@settings(max_examples=10)
@given(x=fgst.arrays(np.float64, fgst.shapes(min_rank=1, max_rank=3), -3, 3), data=st.data())
def test_reductions_match_numpy(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    p = fg.placeholder(fg.float64, data.draw(fgst.static_shapes(x.shape)))
    b = fg.placeholder(fg.bool_, data.draw(fgst.static_shapes(x.shape)))
    bools = x > 0.5
    got = both_paths({"min": fg.reduce_min(p, axis, keepdims),
                      "prod": fg.reduce_prod(p, axis, keepdims),
                      "any": fg.reduce_any(b, axis, keepdims),
                      "all": fg.reduce_all(b, axis, keepdims)}, {p: x, b: bools})
    np.testing.assert_array_equal(got["min"], np.min(x, axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(got["prod"], np.prod(x, axis=axis, keepdims=keepdims),
                               rtol=1e-12)
    np.testing.assert_array_equal(got["any"], np.any(bools, axis=axis, keepdims=keepdims))
    np.testing.assert_array_equal(got["all"], np.all(bools, axis=axis, keepdims=keepdims))


def test_tf1_reduction_aliases():
    x = np.arange(6.0).reshape(2, 3)
    got = both_paths([fg.reduce_sum(x, reduction_indices=[1], keep_dims=True),
                      fg.reduce_mean(x, reduction_indices=0),
                      fg.reduce_max(x, keep_dims=True),
                      fg.reduce_min(x, reduction_indices=1),
                      fg.reduce_prod(x + 1.0, reduction_indices=[0, 1])])
    np.testing.assert_array_equal(got[0], x.sum(1, keepdims=True))
    np.testing.assert_array_equal(got[1], x.mean(0))
    np.testing.assert_array_equal(got[2], x.max(keepdims=True))
    np.testing.assert_array_equal(got[3], x.min(1))
    assert float(got[4]) == 720.0
    with pytest.raises(ValueError, match="both"):
        fg.reduce_sum(x, axis=0, reduction_indices=0)


def test_empty_reductions_of_booleans():
    empty = np.zeros((2, 0), bool)
    got = run([fg.reduce_any(empty, 1), fg.reduce_all(empty, 1)])
    np.testing.assert_array_equal(got[0], [False, False])
    np.testing.assert_array_equal(got[1], [True, True])


def test_argmax_tf1_defaults_and_errors():
    x = np.array([[1.0, 7.0, 7.0], [9.0, 0.0, 3.0]])
    got = both_paths([fg.argmax(x), fg.argmax(x, 1), fg.argmin(x, axis=-1),
                      fg.argmax(x, dimension=1)])
    np.testing.assert_array_equal(got[0], [1, 0, 0])        # axis=None means 0 (TF1)
    np.testing.assert_array_equal(got[1], [1, 0])           # the first of a tie
    np.testing.assert_array_equal(got[2], [0, 1])
    assert got[0].dtype == np.int64
    with pytest.raises(fg.errors.DTypeError, match="bool"):
        fg.argmax(fg.constant([True, False]))
    with pytest.raises(fg.errors.ShapeError, match="scalar"):
        fg.argmax(fg.constant(1.0))
    p = fg.placeholder(fg.float32, (None, None))
    with pytest.raises(fg.errors.InvalidArgumentError, match="empty axis"):
        run(fg.argmax(p, 1), {p: np.zeros((2, 0))})


def test_shape_size_rank_are_dynamic():
    p = fg.placeholder(fg.float32, (None, 3))
    q = fg.placeholder(fg.float32, None)
    for n in (1, 4):
        got = both_paths([fg.shape(p), fg.size(p), fg.rank(p), fg.shape(q), fg.rank(q),
                          fg.size(q, out_type=fg.int64)],
                         {p: np.zeros((n, 3)), q: np.zeros((n, 2, 2))})
        np.testing.assert_array_equal(got[0], [n, 3])
        assert int(got[1]) == 3 * n and int(got[2]) == 2 and int(got[4]) == 3
        np.testing.assert_array_equal(got[3], [n, 2, 2])
        assert got[5].dtype == np.int64 and int(got[5]) == 4 * n
    assert fg.shape(p).shape == (2,) and fg.shape(q).shape == (None,)


def test_dynamic_shapes_compile_once_feed_shapes_are_fixed():
    """The compiler folds shape(x) and the ranges and fills it sizes: the compiled plan
    (not the reference fallback) runs them."""
    from flowgraph.plan import CompiledPlan
    x = fg.placeholder(fg.float64, (None, 3))
    n = fg.shape(x)[0]
    y = fg.cast(fg.range(n), fg.float64)[:, None] * x + fg.fill(fg.shape(x), 0.5)
    sess = fg.Session(config=fg.SessionConfig(optimize=True))
    value = np.ones((4, 3))
    got = sess.run(y, {x: value})
    np.testing.assert_array_equal(got, np.arange(4.0)[:, None] * value + 0.5)
    assert all(isinstance(p, CompiledPlan) for p in sess._plans.values())
    np.testing.assert_array_equal(run(y, {x: value}, optimize=False), got)


def test_range_and_fill_forms():
    got = both_paths([fg.range(5), fg.range(2, 8, 3), fg.range(3, 0, -1),
                      fg.range(0.0, 1.0, 0.25), fg.range(4, dtype=fg.float64),
                      fg.fill([2, 2], 1.5), fg.fill((3,), True)])
    np.testing.assert_array_equal(got[0], np.arange(5, dtype=np.int32))
    np.testing.assert_array_equal(got[1], [2, 5])
    np.testing.assert_array_equal(got[2], [3, 2, 1])
    assert got[3].dtype == np.float32 and got[3].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert got[4].dtype == np.float64
    assert got[5].dtype == np.float32 and got[5].shape == (2, 2)
    assert got[6].dtype == np.bool_ and got[6].all()
    n = fg.placeholder(fg.int32, ())
    with pytest.raises(fg.errors.InvalidArgumentError, match="delta"):
        run(fg.range(0, n, 0 * n), {n: 3})
    with pytest.raises(ValueError, match="delta"):
        fg.range(0, 3, 0)
    batch = fg.placeholder(fg.int32, ())
    np.testing.assert_array_equal(run(fg.fill([batch, 2], 0), {batch: 3}), np.zeros((3, 2)))


@settings(max_examples=10)
@given(x=fgst.arrays(np.float64, fgst.shapes(min_rank=1, max_rank=3, max_side=3), -2, 2),
       data=st.data())
def test_tile_reverse_match_numpy(x, data):
    mult = data.draw(st.lists(st.integers(0, 3), min_size=x.ndim, max_size=x.ndim))
    axes = data.draw(st.lists(st.integers(-x.ndim, x.ndim - 1), max_size=2,
                              unique_by=lambda a: a % x.ndim))
    p = fg.placeholder(fg.float64, x.shape)
    got = both_paths([fg.tile(p, mult), fg.reverse(p, axes)], {p: x})
    np.testing.assert_array_equal(got[0], np.tile(x, mult))
    np.testing.assert_array_equal(got[1], np.flip(x, [a % x.ndim for a in axes])
                                  if axes else x)


def test_tile_with_an_unknown_dimension_and_of_booleans():
    p = fg.placeholder(fg.float32, (None, 2))
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(run(fg.tile(p, [2, 3]), {p: x}), np.tile(x, [2, 3]))
    np.testing.assert_array_equal(run(fg.tile([True, False], [2])), [True, False] * 2)
    with pytest.raises(fg.errors.ShapeError, match="multiple per dimension"):
        fg.tile(p, [2])


def test_reverse_sequence_matches_tf1s_example():
    # TF1's docstring example: batch_axis=2, seq_axis=0... here the classic (0, 1) case
    # and a time-major one.
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    lengths = np.array([3, 5])
    want = x.copy()
    for b, n in enumerate(lengths):
        want[b, :n] = x[b, :n][::-1]
    got = both_paths(fg.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0))
    np.testing.assert_array_equal(got, want)
    xt = np.transpose(x, (1, 0, 2))
    p = fg.placeholder(fg.float32, (None, None, 3))
    got = both_paths(fg.reverse_sequence(p, fg.constant(lengths, fg.int64), seq_axis=0,
                                         batch_axis=1), {p: xt})
    np.testing.assert_array_equal(got, np.transpose(want, (1, 0, 2)))


def test_reverse_sequence_rejects_lengths_outside_the_sequence():
    # TF1 raises InvalidArgumentError for seq_lengths[b] > the sequence length (or < 0).
    # The composition gathers from the flattened [batch * time] rows, so an unchecked
    # length 4 on a 3-step sequence read the next batch entry's rows.
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    for optimize in (True, False):
        for lengths in ([4, 2], [-1, 2]):
            with fg.Graph().as_default():
                y = fg.reverse_sequence(x, lengths, seq_axis=1)
                with pytest.raises(fg.errors.InvalidArgumentError,
                                   match=r"reverse_sequence/seq_lengths_in_range.*"
                                         r"test_more_ops.py.*found"):
                    run(y, optimize=optimize)
    # The full length and zero are fine.
    got = both_paths(fg.reverse_sequence(x, [3, 0], seq_axis=1))
    np.testing.assert_array_equal(got, np.stack([x[0, ::-1], x[1]]))


def test_reverse_sequence_checks_the_number_of_lengths():
    x = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(fg.errors.ShapeError, match=r"seq_lengths of shape \(2,\)"):
        fg.reverse_sequence(x, [1], seq_axis=1)
    with pytest.raises(fg.errors.DTypeError, match="integer seq_lengths"):
        fg.reverse_sequence(x, [1.0, 2.0], seq_axis=1)
    # Known only at run time: one length for two rows must not broadcast.
    p = fg.placeholder(fg.float32, (None, 3, 2))
    n = fg.placeholder(fg.int32, (None,))
    y = fg.reverse_sequence(p, n, seq_axis=1)
    with pytest.raises(fg.errors.ShapeError, match="reverse_sequence"):
        run(y, {p: x, n: [2]})


def test_sequence_mask():
    lengths = np.array([[1, 3], [0, 2]])
    got = both_paths([fg.sequence_mask(lengths, 4), fg.sequence_mask([2, 0, 1]),
                      fg.sequence_mask([1, 2], 3, dtype=fg.float32)])
    np.testing.assert_array_equal(got[0], np.arange(4) < lengths[..., None])
    np.testing.assert_array_equal(got[1], [[True, True], [False, False], [True, False]])
    assert got[2].dtype == np.float32
    n = fg.placeholder(fg.int32, (None,))
    np.testing.assert_array_equal(run(fg.sequence_mask(n), {n: [3, 1]}),
                                  [[True, True, True], [True, False, False]])


def test_logical_ops_and_pow():
    a, b = np.array([True, True, False, False]), np.array([True, False, True, False])
    got = both_paths([fg.logical_and(a, b), fg.logical_or(a, b), fg.logical_not(a),
                      fg.logical_xor(a, b)])
    np.testing.assert_array_equal(got[0], a & b)
    np.testing.assert_array_equal(got[1], a | b)
    np.testing.assert_array_equal(got[2], ~a)
    np.testing.assert_array_equal(got[3], a ^ b)
    with pytest.raises(fg.errors.DTypeError, match="bool"):
        fg.logical_and(fg.constant([1.0]), fg.constant([True]))
    base = fg.constant([-2.0, 3.0, 4.0], fg.float64)
    got = both_paths([fg.pow(base, fg.constant([3.0, 2.0, 0.5], fg.float64)),
                      fg.pow(base, 2.0), fg.pow(2, fg.constant([1, 3]))])
    np.testing.assert_allclose(got[0], [-8.0, 9.0, 2.0])
    np.testing.assert_allclose(got[1], [4.0, 9.0, 16.0])
    np.testing.assert_array_equal(got[2], [2, 8])
    with pytest.raises(fg.errors.InvalidArgumentError, match="negative"):
        run(fg.pow(fg.constant([2]), fg.constant([-1])), optimize=False)


def test_dtype_strings_float_and_double_are_tf1s():
    assert fg.placeholder("float", ()).dtype == np.float32
    assert fg.placeholder("double", ()).dtype == np.float64
    assert fg.constant(1, dtype="float").dtype == np.float32
    assert fg.cast(fg.constant(1), "float").dtype == np.float32
    assert fg.Variable(np.zeros(2), dtype="float").dtype == np.float32
    x = fg.placeholder("float", (None, 2))
    w = fg.Variable(np.ones((2, 2), np.float32))
    assert (x @ w).dtype == np.float32     # no float32 @ float64 surprise


# --- gradients --------------------------------------------------------------------------

COMPOSITES = {
    "reduce_min": lambda p: fg.reduce_min(p * p, axis=1) * 2.0,
    "tile": lambda p: fg.tile(p * p, [2, 3]),
    "reverse": lambda p: fg.reverse(p, [1]) * p,
    "reverse_sequence": lambda p: fg.reverse_sequence(p * p, [3, 1], 1, 0) * p,
    "pow_tensor_exponent": lambda p: fg.pow(fg.abs(p) + 0.5, p),
    "reduce_prod": lambda p: fg.reduce_prod(p, 1) * fg.reduce_prod(p),
    "sequence_mask": lambda p: fg.cast(fg.sequence_mask([1, 3], 3), fg.float64) * p * p,
    "l2_loss": lambda p: fg.nn.l2_loss(p) * p,
    "xw_plus_b": lambda p: fg.nn.xw_plus_b(p, fg.transpose(p), fg.reduce_sum(p, 0)[:2]),
    "sigmoid_xent": lambda p: fg.nn.sigmoid_cross_entropy_with_logits(
        labels=fg.sigmoid(p[::-1]), logits=p * 3.0),
    "sequence_loss": lambda p: fg.nn.sequence_loss(
        fg.stack([p, p * p]), [[0, 2], [1, 1]], fg.constant([[1.0, 0.5], [0.0, 2.0]],
                                                             fg.float64)),
    "sequence_loss_per_step": lambda p: fg.nn.sequence_loss(
        fg.reshape(p, (1, 2, 3)), [[2, 0]], fg.constant([[1.0, 0.5]], fg.float64),
        average_across_batch=False),
    "embedding_shards_mod": lambda p: fg.nn.embedding_lookup(
        [fg.reshape(p, (2, 3)), fg.reshape(p * p, (2, 3))], [3, 0, 1, 2]),
    "embedding_shards_div": lambda p: fg.nn.embedding_lookup(
        [p[:1], p[1:] * 2.0], [1, 0], partition_strategy="div"),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
@pytest.mark.parametrize("order", [1, 2])
@settings(max_examples=4)
@given(data=st.data())
def test_composite_gradients_match_finite_differences(name, order, data):
    grid = data.draw(fgst.arrays(np.int64, (2, 3), -4, 3))
    x = grid * 0.3 + 0.13 + np.arange(6).reshape(2, 3) * 0.011   # no ties, no zeros
    p = fg.placeholder(fg.float64, (None, 3))
    y = COMPOSITES[name](p)
    if order == 2:
        (g,) = fg.gradients(y, [p])
        y = g * np.arange(1.0, 7.0).reshape(2, 3)
    fg.testing.check_gradients(y, [p], {p: x})


# --- nn -----------------------------------------------------------------------------------

def test_losses_refuse_positional_arguments_as_tf1():
    pred, y = fg.constant([[2.0, 0.0]]), fg.constant([[0.0, 1.0]])
    for fn in (fg.nn.softmax_cross_entropy_with_logits,
               fg.nn.sigmoid_cross_entropy_with_logits,
               fg.nn.softmax_cross_entropy_with_logits_v2):
        with pytest.raises(ValueError, match=r"Only call `.*` with named arguments"):
            fn(pred, y)
        with pytest.raises(ValueError, match="labels= and logits="):
            fn(labels=y)
    with pytest.raises(ValueError, match="named arguments"):
        fg.nn.sparse_softmax_cross_entropy_with_logits([1], pred)


def test_sigmoid_cross_entropy_is_stable_and_exact():
    x = np.array([-800.0, -20.0, -1.0, 0.0, 0.5, 30.0, 800.0])
    z = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 0.5, 1.0])
    got = both_paths(fg.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x))
    want = np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    small = np.array([-3.0, 0.25, 2.0])
    sig = 1 / (1 + np.exp(-small))
    naive = -(0.5 * np.log(sig) + 0.5 * np.log(1 - sig))
    np.testing.assert_allclose(
        run(fg.nn.sigmoid_cross_entropy_with_logits(labels=np.full(3, 0.5), logits=small)),
        naive, rtol=1e-12)


def _sequence_loss_numpy(logits, targets, weights, avg_time, avg_batch):
    """tf.contrib.seq2seq.sequence_loss, written out."""
    shifted = logits - logits.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, targets[..., None], -1)[..., 0] * weights
    if avg_time and avg_batch:
        return ce.sum() / (weights.sum() + 1e-12)
    if avg_time:
        return ce.sum(1) / (weights.sum(1) + 1e-12)
    if avg_batch:
        return ce.sum(0) / (weights.sum(0) + 1e-12)
    return ce


@pytest.mark.parametrize("avg_time", [True, False])
@pytest.mark.parametrize("avg_batch", [True, False])
def test_sequence_loss_matches_contrib(avg_time, avg_batch):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5))
    targets = rng.integers(0, 5, (3, 4))
    weights = (rng.random((3, 4)) > 0.3).astype(np.float64)
    p = fg.placeholder(fg.float64, (None, None, 5))
    t = fg.placeholder(fg.int32, (None, None))
    w = fg.placeholder(fg.float64, (None, None))
    got = both_paths(fg.nn.sequence_loss(p, t, w, average_across_timesteps=avg_time,
                                         average_across_batch=avg_batch),
                     {p: logits, t: targets, w: weights})
    np.testing.assert_allclose(got, _sequence_loss_numpy(logits, targets, weights, avg_time,
                                                         avg_batch), rtol=1e-12)


def test_l2_loss_and_xw_plus_b():
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    w = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, 1.0]])
    b = np.array([0.1, 0.2, 0.3])
    got = both_paths([fg.nn.l2_loss(x), fg.nn.xw_plus_b(x, w, b)])
    assert float(got[0]) == 7.5
    np.testing.assert_allclose(got[1], x @ w + b, rtol=1e-15)


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("n_shards", [2, 3])
def test_embedding_lookup_of_shards_as_tf1(strategy, n_shards):
    rows = 7
    table = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    if strategy == "mod":
        shards = [table[k::n_shards] for k in range(n_shards)]
    else:   # contiguous blocks, the first rows % n one row longer
        sizes = [rows // n_shards + (k < rows % n_shards) for k in range(n_shards)]
        shards = np.split(table, np.cumsum(sizes)[:-1])
    variables = [fg.Variable(s) for s in shards]
    ids = np.array([[6, 0], [3, 3], [1, 5]])
    got = both_paths(fg.nn.embedding_lookup(variables, ids, partition_strategy=strategy))
    np.testing.assert_array_equal(got, table[ids])
    # the gradient reaches each shard's own rows
    grads = fg.gradients(fg.reduce_sum(fg.nn.embedding_lookup(
        variables, ids, partition_strategy=strategy)), variables)
    counts = np.zeros((rows, 2), np.float32)
    np.add.at(counts, ids.reshape(-1), 1.0)
    want = [counts[k::n_shards] for k in range(n_shards)] if strategy == "mod" else \
        np.split(counts, np.cumsum([s.shape[0] for s in shards])[:-1])
    for g, w in zip(both_paths(grads), want):
        np.testing.assert_array_equal(g, w)


def test_embedding_lookup_errors():
    a, b = fg.constant(np.zeros((3, 2))), fg.constant(np.zeros((3, 2), np.float32))
    with pytest.raises(fg.errors.DTypeError, match="one dtype"):
        fg.nn.embedding_lookup([a, b], [0])
    with pytest.raises(fg.errors.ShapeError, match="'mod' shards"):
        fg.nn.embedding_lookup([fg.constant(np.zeros((1, 2))), a], [0])
    with pytest.raises(ValueError, match="partition_strategy"):
        fg.nn.embedding_lookup([a, a], [0], partition_strategy="zigzag")
    with pytest.raises(fg.errors.InvalidArgumentError):
        run(fg.nn.embedding_lookup([a, a], [-1]), optimize=False)


def test_the_composite_ops_benchmark_runs_and_computes_the_ops(monkeypatch):
    import os
    import sys
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "benchmarks"))
    sys.modules.pop("composite_ops", None)
    import composite_ops
    x, table = composite_ops.pairs(fg, np, 3, 4)
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = run({name: pair for name, pair in table.items()}, {x: value})
    np.testing.assert_array_equal(got["reduce_min vs reduce_max"][0], value.min(1))
    np.testing.assert_array_equal(got["reverse vs copy"][0], value[:, ::-1])
    np.testing.assert_array_equal(got["tile vs concat"][0], got["tile vs concat"][1])
    assert got["reverse_sequence vs gather"][0].shape == (3, 4, 1)


@pytest.mark.parametrize("values", [[0.0, 2.0, -1.5], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.5]])
def test_reduce_prod_derivatives_at_zeros(values):
    """Slices with one, two and three zeros: first and second derivatives (the second
    one of a two-zero slice is the product of the non-zeros, not 0)."""
    x = np.array(values)
    p = fg.placeholder(fg.float64, x.shape)
    y = fg.reduce_prod(p) * 1.5
    fg.testing.check_gradients(y, [p], {p: x})
    (g,) = fg.gradients(y, [p])
    fg.testing.check_gradients(fg.reduce_sum(g * np.arange(1.0, x.size + 1)), [p], {p: x})
