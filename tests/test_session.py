"""Sessions: fetch and feed structures, make_callable, per-session variable state, the
assignment-ordering rule, initializers, and concurrent runs.
"""
import collections
import threading

import numpy as np
import pytest

import flowgraph as fg

Pair = collections.namedtuple("Pair", ["first", "second"])


# --- fetch structures ------------------------------------------------------------------

def test_nested_fetches_keep_their_structure():
    x = fg.placeholder(fg.float32, (2,), name="x")
    a, b = x * 2.0, x + 1.0
    noop = fg.no_op()
    fetches = {"list": [a, (b, noop)], "pair": Pair(a, {"inner": [b]}), "op": noop,
               "tuple": (), "name": "x:0"}
    with fg.Session() as sess:
        out = sess.run(fetches, {x: [1.0, 2.0]})
    assert set(out) == {"list", "pair", "op", "tuple", "name"}
    assert isinstance(out["list"], list) and isinstance(out["list"][1], tuple)
    np.testing.assert_array_equal(out["list"][0], [2.0, 4.0])
    np.testing.assert_array_equal(out["list"][1][0], [2.0, 3.0])
    assert out["list"][1][1] is None and out["op"] is None
    assert isinstance(out["pair"], Pair)
    np.testing.assert_array_equal(out["pair"].first, [2.0, 4.0])
    np.testing.assert_array_equal(out["pair"].second["inner"][0], [2.0, 3.0])
    assert out["tuple"] == ()
    np.testing.assert_array_equal(out["name"], [1.0, 2.0])


def test_fetch_results_are_numpy_and_owned_by_the_caller():
    c = fg.constant([1.0, 2.0])
    s = fg.reduce_sum(c)
    v = fg.Variable([3.0, 4.0])
    with fg.Session() as sess:
        got, total, value = sess.run([c, s, v])
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert np.ndim(total) == 0 and float(total) == 3.0
        got[0] = 100.0  # writable, and does not change the constant
        value[0] = 100.0  # nor the variable
        np.testing.assert_array_equal(sess.run(c), [1.0, 2.0])
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])


def test_the_same_tensor_fetched_twice_and_by_name():
    x = fg.placeholder(fg.float64, (), name="inp")
    y = fg.square(x, name="sq")
    with fg.Session() as sess:
        a, b, c, d = sess.run([y, y, "sq:0", "sq"], {"inp:0": 3.0})
        assert a == b == c == 9.0 and d is None
        assert sess.run(y, {"inp": 2.0}) == 4.0  # a name without ":0" means output 0


def test_any_tensor_can_be_fed():
    x = fg.placeholder(fg.float64, (2,))
    h = fg.tanh(x)
    y = h * 2.0
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {h: [1.0, 5.0]}), [2.0, 10.0])


def test_make_callable_with_structure_and_feed_list():
    x = fg.placeholder(fg.float64, (None,), name="x")
    k = fg.placeholder(fg.float64, (), name="k")
    v = fg.Variable(0.0, dtype=fg.float64)
    step = v.assign_add(fg.reduce_sum(x))
    with fg.Session() as sess:
        f = sess.make_callable({"scaled": x * k, "pair": Pair(fg.reduce_sum(x), step)},
                               feed_list=[x, "k:0"])
        out = f([1.0, 2.0], 3.0)
        assert isinstance(out["pair"], Pair) and out["pair"].second is None
        np.testing.assert_array_equal(out["scaled"], [3.0, 6.0])
        out = f(np.arange(4.0), 0.5)  # another batch size: another plan, same callable
        np.testing.assert_array_equal(out["scaled"], [0.0, 0.5, 1.0, 1.5])
        assert sess.run(v) == 3.0 + 6.0
        with pytest.raises(fg.errors.FeedError, match="expected 2 feed values"):
            f([1.0])
        g = sess.make_callable(x * 2.0, [x])
        np.testing.assert_array_equal(g([1.0]), [2.0])


def test_a_closed_session_refuses_to_run():
    c = fg.constant(1.0)
    sess = fg.Session()
    f = sess.make_callable(c)
    sess.close()
    with pytest.raises(fg.errors.FlowgraphError, match="closed"):
        sess.run(c)
    with pytest.raises(fg.errors.FlowgraphError, match="closed"):
        f()


def test_session_graph_defaults_to_the_default_graph_and_rejects_others():
    g = fg.Graph()
    with g.as_default():
        other = fg.constant(1.0)
    c = fg.constant(2.0)
    with fg.Session() as sess:
        assert sess.graph is fg.get_default_graph() and sess.run(c) == 2.0
        with pytest.raises(fg.errors.FlowgraphError, match="another graph"):
            sess.run(other)
    with fg.Session(graph=g) as sess:
        assert sess.run(other) == 1.0


# --- variable state --------------------------------------------------------------------

def test_each_session_holds_its_own_variable_values():
    v = fg.Variable(np.array([1.0, 2.0]), name="v")
    bump = v.assign_add(np.array([10.0, 10.0]))
    s1, s2 = fg.Session(), fg.Session()
    s1.run(bump)
    s1.run(bump)
    np.testing.assert_array_equal(s1.run(v), [21.0, 22.0])
    np.testing.assert_array_equal(s2.run(v), [1.0, 2.0])
    s2.run(bump)
    np.testing.assert_array_equal(s1.run(v), [21.0, 22.0])
    np.testing.assert_array_equal(s2.run(v), [11.0, 12.0])
    np.testing.assert_array_equal(fg.Session().run(v), [1.0, 2.0])


def test_global_variables_initializer_resets_values():
    a = fg.Variable(1.0, name="a")
    b = fg.Variable(lambda: np.full((2,), 5.0, np.float32), name="b", trainable=False)
    assert fg.global_variables() == [a, b] and fg.trainable_variables() == [a]
    with fg.Session() as sess:
        sess.run([a.assign(7.0), b.assign_sub([1.0, 2.0])])
        assert sess.run(a) == 7.0
        np.testing.assert_array_equal(sess.run(b), [4.0, 3.0])
        assert sess.run(fg.global_variables_initializer()) is None
        assert sess.run(a) == 1.0
        np.testing.assert_array_equal(sess.run(b), [5.0, 5.0])


CONFIGS = [pytest.param(fg.SessionConfig(optimize=False), id="reference"),
           pytest.param(fg.SessionConfig(optimize=True), id="optimized")]


@pytest.mark.parametrize("config", CONFIGS)
def test_run_loss_and_train_op_returns_the_loss_before_the_step(config):
    w = fg.Variable(np.array([1.0, -2.0]), name="w")
    x = fg.placeholder(fg.float64, (None, 2))
    loss = fg.reduce_mean(fg.square(x @ fg.reshape(w, [2, 1])))
    (grad,) = fg.gradients(loss, [w])
    train = w.assign_sub(grad * 0.1)
    xv = np.array([[1.0, 0.5], [0.0, 2.0]])

    def loss_of(wv):
        return np.mean((xv @ wv) ** 2)

    with fg.Session(config=config) as sess:
        w0 = sess.run(w)
        loss0, _ = sess.run([loss, train], {x: xv})
        assert loss0 == pytest.approx(loss_of(w0), rel=1e-14)
        w1 = sess.run(w)
        assert not np.allclose(w0, w1)
        loss1, _ = sess.run([loss, train], {x: xv})
        assert loss1 == pytest.approx(loss_of(w1), rel=1e-14)
        assert loss1 < loss0
        # the order of fetches does not matter
        w2 = sess.run(w)
        _, loss2 = sess.run([train, loss], {x: xv})
        assert loss2 == pytest.approx(loss_of(w2), rel=1e-14)


@pytest.mark.parametrize("config", CONFIGS)
def test_reads_after_an_assignment_under_control_dependencies_see_it(config):
    v = fg.Variable(1.0, name="v")
    assign = v.assign(5.0)
    with fg.control_dependencies([assign]):
        after = v.read_value() * 1.0
    before = v * 1.0
    with fg.Session(config=config) as sess:
        b, a = sess.run([before, after])
        assert (b, a) == (1.0, 5.0)
        assert sess.run(v) == 5.0


def test_assign_accepts_tensors_and_array_likes():
    v = fg.Variable(np.zeros((2, 2), np.float32))
    x = fg.placeholder(fg.float32, (2, 2))
    with fg.Session() as sess:
        sess.run(v.assign(x), {x: np.ones((2, 2))})
        np.testing.assert_array_equal(sess.run(v), np.ones((2, 2)))
        sess.run(v.assign([[1, 2], [3, 4]]))
        np.testing.assert_array_equal(sess.run(v), [[1, 2], [3, 4]])
        assert sess.run(v).dtype == np.float32


def test_a_variable_initial_value_may_be_a_constant_tensor():
    v = fg.Variable(fg.constant([1.0, 2.0]) * 3.0)
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(v), [3.0, 6.0])


# --- threads ---------------------------------------------------------------------------

def test_concurrent_runs_on_a_graph_without_assignments_are_safe():
    x = fg.placeholder(fg.float64, (None, 3))
    w = fg.Variable(np.arange(6.0).reshape(3, 2))
    y = fg.tanh(x @ w) * 2.0 + fg.reduce_sum(x, 1, keepdims=True)
    errors = []
    with fg.Session() as sess:
        def worker(seed):
            rng = np.random.default_rng(seed)
            try:
                for i in range(30):
                    xv = rng.normal(size=(1 + (seed + i) % 4, 3))
                    want = np.tanh(xv @ np.arange(6.0).reshape(3, 2)) * 2 + xv.sum(
                        1, keepdims=True)
                    np.testing.assert_allclose(sess.run(y, {x: xv}), want, rtol=1e-12)
            except Exception as exc:  # reported from the main thread
                errors.append(exc)
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_concurrent_assign_adds_are_each_committed_whole():
    v = fg.Variable(0.0, dtype=fg.float64)
    inc = v.assign_add(1.0)
    with fg.Session() as sess:
        threads = [threading.Thread(target=lambda: [sess.run(inc) for _ in range(25)])
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        value = sess.run(v)
    # Runs overlap, so an increment may be based on a snapshot another run has already
    # moved past (as in TF1 without locking), but every committed value is a whole
    # run's result: a snapshot plus exactly one.
    assert 1 <= value <= 100 and value == int(value)


@pytest.mark.parametrize("optimize", [False, True])
def test_session_config_fields_and_both_paths_agree(optimize):
    config = fg.SessionConfig(optimize=optimize)
    assert (config.allow_soft_placement, config.log_device_placement,
            config.check_numerics) == (False, False, False)
    x = fg.placeholder(fg.float32, (None, 2))
    y = fg.nn.softmax(x @ np.eye(2, dtype=np.float32))
    with fg.Session(config=config) as sess:
        got = sess.run(y, {x: [[0.0, 1.0]]})
    e = np.exp([0.0, 1.0])
    np.testing.assert_allclose(got, [e / e.sum()], rtol=1e-6)


def test_log_device_placement_prints_each_op(capsys):
    y = fg.tanh(fg.constant(1.0, name="c"), name="t")
    with fg.Session(config=fg.SessionConfig(log_device_placement=True)) as sess:
        sess.run(y)
    err = capsys.readouterr().err
    assert "t: (Tanh): /cpu:0" in err and "c: (Const): /cpu:0" in err
