"""while_loop, scan and cond: TF1 semantics, gradients (first and second order) by
finite differences, clear errors, on the reference and the compiled path.
"""
import collections

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

PATHS = pytest.mark.parametrize("optimize", [False, True], ids=["reference", "compiled"])


def _session(optimize):
    return fg.Session(config=fg.SessionConfig(optimize=optimize))


Pair = collections.namedtuple("Pair", "a b")


@PATHS
def test_while_loop_nested_loop_vars_and_maximum_iterations(optimize):
    x = fg.placeholder(fg.float64, (2,))
    init = {"i": fg.constant(0), "p": Pair(x, [x * 2.0])}
    out = fg.while_loop(lambda s: s["i"] < 10,
                        lambda s: {"i": s["i"] + 1, "p": Pair(s["p"].a + 1.0,
                                                              [s["p"].b[0] * s["p"].a])},
                        [init], maximum_iterations=3)[0]
    assert isinstance(out["p"], Pair) and isinstance(out["p"].b, list)
    got = _session(optimize).run(out, {x: [1.0, 2.0]})
    a, b = np.array([1.0, 2.0]), np.array([2.0, 4.0])
    for _ in range(3):
        a, b = a + 1.0, b * a
    assert got["i"] == 3
    np.testing.assert_array_equal(got["p"].a, a)
    np.testing.assert_array_equal(got["p"].b[0], b)


@PATHS
def test_while_loop_runs_zero_times_and_reads_outer_tensors(optimize):
    x = fg.placeholder(fg.float64, (3,))
    w = fg.Variable(np.array([0.5, 1.0, 2.0]))
    n = fg.placeholder(fg.int32, ())
    _, y = fg.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, v * w + 1.0),
                         (fg.constant(0), x))
    sess = _session(optimize)
    np.testing.assert_array_equal(sess.run(y, {x: [1, 2, 3], n: 0}), [1, 2, 3])
    np.testing.assert_array_equal(sess.run(y, {x: [1, 2, 3], n: 2}),
                                  (np.array([1, 2, 3]) * [0.5, 1, 2] + 1) * [0.5, 1, 2] + 1)


@PATHS
def test_shape_invariants_let_a_loop_variable_grow(optimize):
    x = fg.constant(np.ones((1, 2)))
    _, y = fg.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, fg.concat([v, v], 0)),
                         (fg.constant(0), x), shape_invariants=((), (None, 2)))
    assert y.shape == (None, 2)
    assert _session(optimize).run(y).shape == (8, 2)


def test_a_changing_shape_without_invariants_is_a_clear_error():
    x = fg.constant(np.ones((1, 2)))
    with pytest.raises(fg.errors.ShapeError, match="shape_invariants"):
        fg.while_loop(lambda v: fg.reduce_sum(v) < 5.0, lambda v: [fg.concat([v, v], 0)], [x])


def test_loop_errors_name_what_was_expected():
    x = fg.constant(1.0)
    with pytest.raises(fg.errors.ShapeError, match="bool scalar"):
        fg.while_loop(lambda v: v, lambda v: [v], [x])
    with pytest.raises(fg.errors.ShapeError, match="float32 but the body returned int32"):
        fg.while_loop(lambda v: v < 2.0, lambda v: [fg.constant(1)], [x])
    with pytest.raises(fg.errors.ShapeError, match="bool scalar"):
        fg.cond(x, lambda: x, lambda: x)
    with pytest.raises(fg.errors.ShapeError, match="same structure"):
        fg.cond(x > 0.0, lambda: x, lambda: fg.constant(1))
    v = fg.Variable(1.0)
    with pytest.raises(fg.errors.FlowgraphError, match="assignments inside a loop"):
        fg.while_loop(lambda a: a < 2.0, lambda a: [v.assign(a + 1.0).outputs[0]], [x])


def test_a_loop_may_not_span_mpi_tasks():
    x = fg.constant(1.0)

    def body(v):
        with fg.device("/job:worker/task:1/cpu:0"):
            return [v * 2.0]

    with pytest.raises(fg.errors.PlacementError, match="may not span MPI tasks"):
        fg.while_loop(lambda v: v < 10.0, body, [x])
    with fg.device("/job:worker/task:1/cpu:0"):     # all on one task: allowed
        y, = fg.while_loop(lambda v: v < 10.0, body, [x])
    assert y.op.device.startswith("/job:worker/task:1")


@PATHS
def test_scan_matches_tf_scan_semantics(optimize):
    xs = fg.placeholder(fg.float64, (None, 2))
    sess = _session(optimize)
    val = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(sess.run(fg.scan(lambda a, x: a + x, xs), {xs: val}),
                                  np.cumsum(val, 0))
    pair = fg.scan(lambda acc, x: (acc[0] + x, acc[1] * 2.0), xs,
                   initializer=(fg.zeros((2,), fg.float64), fg.ones((2,), fg.float64)))
    got = sess.run(pair, {xs: val})
    np.testing.assert_array_equal(got[0], np.cumsum(val, 0))
    np.testing.assert_array_equal(got[1], 2.0 ** np.arange(1, 5)[:, None] * np.ones(2))
    rev = fg.scan(lambda a, x: a + x, xs, reverse=True)
    np.testing.assert_array_equal(sess.run(rev, {xs: val}), np.cumsum(val[::-1], 0)[::-1])


@PATHS
def test_cond_runs_only_the_chosen_branch(optimize):
    x = fg.placeholder(fg.float64, (2,))
    # the false branch would fail on these values (log of a negative is NaN -> error)
    y = fg.cond(fg.reduce_sum(x) < 0.0, lambda: -x, lambda: fg.log(x))
    sess = fg.Session(config=fg.SessionConfig(optimize=optimize, check_numerics=True))
    np.testing.assert_array_equal(sess.run(y, {x: [-1.0, -2.0]}), [1.0, 2.0])
    np.testing.assert_allclose(sess.run(y, {x: [1.0, 2.0]}), np.log([1.0, 2.0]))


@PATHS
def test_gradients_through_while_scan_and_cond(optimize):
    cfg = fg.SessionConfig(optimize=optimize)
    rng = np.random.default_rng(0)
    xs = fg.placeholder(fg.float64, (5, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    h0 = fg.placeholder(fg.float64, (3,))
    feed = {xs: rng.normal(size=(5, 3)), w: rng.normal(size=(3, 3)) * 0.5,
            h0: rng.normal(size=3)}

    def step(h, x):
        return fg.tanh(fg.reshape(fg.matmul(fg.reshape(h, (1, 3)), w), (3,)) + x)

    ys = fg.scan(step, xs, initializer=h0)
    assert check_gradients(ys, [xs, w, h0], feed, config=cfg) < 1e-6
    # second order through scan
    g, = fg.gradients(fg.reduce_sum(ys * ys), [w])
    assert check_gradients(g, [xs, w, h0], feed, config=cfg) < 1e-6
    # a data-dependent trip count
    x = fg.placeholder(fg.float64, ())
    _, y = fg.while_loop(lambda i, v: v < 50.0, lambda i, v: (i + 1, v * v + 0.5),
                         (fg.constant(0), x))
    assert check_gradients(y, [x], {x: 1.3}, config=cfg) < 1e-4
    c = fg.cond(x > 0.0, lambda: fg.tanh(x * w), lambda: x * x * w)
    for value in (0.7, -0.7):
        assert check_gradients(c, [x, w], {x: value, w: feed[w]}, config=cfg) < 1e-6
    # second order through while_loop and cond
    gx, = fg.gradients(y, [x])
    assert check_gradients(gx, [x], {x: 1.3}, config=cfg, rtol=1e-4) < 1e-3
    gc, = fg.gradients(c, [x])
    assert check_gradients(gc, [x, w], {x: 0.7, w: feed[w]}, config=cfg) < 1e-6


def test_the_backward_loop_is_an_ordinary_while_op():
    xs = fg.placeholder(fg.float64, (4, 2))
    ys = fg.scan(lambda a, x: a * x, xs)
    g, = fg.gradients(fg.reduce_sum(ys), [xs])
    loops = [op for op in fg.get_default_graph().operations if op.type == "While"]
    assert len(loops) == 2 and loops[1].attrs["reverse"]
    val = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    # d/dx_k of sum of cumulative products
    want = np.zeros_like(val)
    for k in range(4):
        for t in range(k, 4):
            want[k] += np.prod(val[:t + 1], 0) / val[k]
    np.testing.assert_allclose(fg.Session().run(g, {xs: val}), want, rtol=1e-12)
