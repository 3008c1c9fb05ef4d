"""Random ops, dropout and initializers: TF1 seed rules, Philox known answers, runs that
draw new numbers, sessions that repeat them, failed runs that give their number back,
and the reference and compiled paths drawing bit-identical numbers."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import philox
from flowgraph.errors import FlowgraphError

REF = fg.SessionConfig(optimize=False)
OPT = fg.SessionConfig(optimize=True)


# --- the generator ----------------------------------------------------------------------

@pytest.mark.parametrize("counter, key, expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff, 0xffffffff),
     (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
])
def test_philox_matches_the_random123_known_answers(counter, key, expected):
    words = philox.philox4x32(np.array(counter, np.uint32).reshape(4, 1), key)
    assert tuple(int(w) for w in words[:, 0]) == expected


def test_unit_floats_are_in_zero_one_and_use_24_or_53_bits():
    top = np.array([0xFFFFFFFF], np.uint32)
    assert philox.unit_float(top, np.float32)[0] == np.float32(1 - 2.0 ** -24)
    assert philox.unit_float(top, np.float64, top)[0] == 1 - 2.0 ** -53
    assert philox.unit_float(np.array([0], np.uint32), np.float32)[0] == 0.0


# --- seed rules -------------------------------------------------------------------------

def test_tf1_seed_rules():
    assert fg.get_seed(None) == (None, None)
    assert fg.get_seed(5) == (fg.random_ops.DEFAULT_GRAPH_SEED, 5)
    fg.set_random_seed(3)
    n = len(fg.get_default_graph().operations)
    assert fg.get_seed(None) == (3, n)
    fg.constant(1.0)
    assert fg.get_seed(None) == (3, n + 1)
    assert fg.get_seed(9) == (3, 9)
    fg.set_random_seed(0)
    assert fg.get_seed(0) == (0, 2 ** 31 - 1)   # (0, 0) is avoided, as TF1


def _draws(build, config, runs=3):
    with fg.Graph().as_default():
        fetches = build()
        with fg.Session(config=config) as sess:
            return [sess.run(fetches) for _ in range(runs)]


def test_graph_seed_alone_makes_a_rebuilt_graph_repeat_itself():
    def build():
        fg.set_random_seed(42)
        return [fg.random_uniform((3,)), fg.random_normal((3,))]
    a, b = _draws(build, OPT), _draws(build, OPT)
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0][0], a[1][0])            # every run draws anew


def test_no_seed_differs_between_sessions():
    u = fg.random_uniform((8,))
    with fg.Session() as s1, fg.Session() as s2:
        assert not np.array_equal(s1.run(u), s2.run(u))


def test_op_seed_alone_and_equal_seeds_give_equal_numbers():
    a = fg.random_uniform((5,), seed=7)
    b = fg.random_uniform((5,), seed=7)
    c = fg.random_uniform((5,), seed=8)
    with fg.Session() as sess:
        va, vb, vc = sess.run([a, b, c])
    np.testing.assert_array_equal(va, vb)                   # TF1: same seeds, same stream
    assert not np.array_equal(va, vc)


# --- runs and sessions ------------------------------------------------------------------

def _seeded_graph():
    fg.set_random_seed(1)
    return {"u": fg.random_uniform((4, 3), -2.0, 3.0, seed=1),
            "n": fg.random_normal((4, 3), 1.0, 2.0, dtype=fg.float64, seed=2),
            "t": fg.truncated_normal((50,), seed=3),
            "i": fg.random_uniform((6,), 3, 9, dtype=fg.int32, seed=4)}


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_same_seeds_same_sequence_in_a_new_session_and_new_numbers_each_run(config):
    first, second = _draws(_seeded_graph, config), _draws(_seeded_graph, config)
    for run_a, run_b in zip(first, second):
        for k in run_a:
            np.testing.assert_array_equal(run_a[k], run_b[k])
    for k in ("u", "n", "t"):
        assert not np.array_equal(first[0][k], first[1][k])
        assert not np.array_equal(first[1][k], first[2][k])


def test_reference_and_compiled_paths_draw_bit_identical_numbers():
    def build():
        fg.set_random_seed(5)
        x = fg.placeholder(fg.float32, (None, 6))
        d = fg.nn.dropout(x, 0.7)
        h = fg.tanh(d @ fg.constant(np.ones((6, 2), np.float32)))
        return x, [h, d, fg.random_normal((3, 2), seed=1), fg.truncated_normal((7,), 2.0, 0.5),
                   fg.random_uniform((2, 2), dtype=fg.float64)]
    xv = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    results = {}
    for label, config in (("ref", REF), ("opt", OPT)):
        with fg.Graph().as_default():
            x, fetches = build()
            with fg.Session(config=config) as sess:
                results[label] = [sess.run(fetches, {x: xv}) for _ in range(3)]
    for ra, rb in zip(results["ref"], results["opt"]):
        np.testing.assert_allclose(ra[0], rb[0], rtol=1e-6)  # tanh: vmath vs NumPy
        for a, b in zip(ra[1:], rb[1:]):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_a_failed_run_does_not_advance_the_counter(config):
    def build():
        u = fg.random_uniform((5,), seed=11)
        idx = fg.placeholder(fg.int32, (1,))
        bad = fg.gather(fg.constant([1.0, 2.0]), idx)        # fails for an index >= 2
        return u, idx, bad
    with fg.Graph().as_default():
        u, idx, bad = build()
        with fg.Session(config=config) as sess:
            r0 = sess.run(u)
            with pytest.raises(FlowgraphError):
                sess.run([u, bad], {idx: [7]})
            r1 = sess.run(u)
        with fg.Session(config=config) as fresh:
            f0, f1 = fresh.run(u), fresh.run(u)
    np.testing.assert_array_equal(r0, f0)
    np.testing.assert_array_equal(r1, f1)


def test_runs_without_random_ops_do_not_advance_the_counter():
    u = fg.random_uniform((3,), seed=2)
    c = fg.constant(1.0) + 1.0
    with fg.Session() as a, fg.Session() as b:
        a.run(u)
        a.run(c)
        b.run(u)
        np.testing.assert_array_equal(a.run(u), b.run(u))


# --- distributions ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_distribution_moments(dtype):
    n = 200_000
    u = fg.random_uniform((n,), 2.0, 4.0, dtype=dtype, seed=1)
    z = fg.random_normal((n,), -1.0, 3.0, dtype=dtype, seed=2)
    t = fg.truncated_normal((n,), 0.5, 2.0, dtype=dtype, seed=3)
    with fg.Session() as sess:
        vu, vz, vt = sess.run([u, z, t])
    assert vu.dtype == dtype and vu.min() >= 2.0 and vu.max() < 4.0
    assert abs(vu.mean() - 3.0) < 0.01 and abs(vu.var() - 4 / 12) < 0.01
    assert abs(vz.mean() + 1.0) < 0.05 and abs(vz.std() - 3.0) < 0.05
    assert np.all(np.abs(vt - 0.5) < 2 * 2.0)                # within two stddevs
    assert abs(vt.mean() - 0.5) < 0.05
    assert abs(vt.std() - 2.0 * 0.8796) < 0.03               # std of N(0,1) cut at +-2


def test_integer_uniform_covers_its_range():
    v = fg.Session().run(fg.random_uniform((5000,), -3, 4, dtype=fg.int64, seed=1))
    assert v.dtype == np.int64 and set(v.tolist()) == set(range(-3, 4))
    with pytest.raises(ValueError, match="maxval is required"):
        fg.random_uniform((2,), dtype=fg.int32)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_shape_may_be_a_tensor(config):
    dims = fg.placeholder(fg.int32, (2,))
    u = fg.random_uniform(dims, seed=1)
    assert u.shape == (None, None)
    mixed = fg.random_normal([fg.placeholder(fg.int32, ()), 3], seed=2)
    assert mixed.shape == (None, 3)
    with fg.Session(config=config) as sess:
        assert sess.run(u, {dims: [2, 5]}).shape == (2, 5)
        assert sess.run(mixed, {"Placeholder_1:0": 4}).shape == (4, 3)


def test_tensor_mean_stddev_and_bounds():
    lo = fg.placeholder(fg.float32, ())
    u = fg.random_uniform((1000,), lo, lo + 1.0, seed=1)
    z = fg.random_normal((1000,), mean=lo, stddev=0.0, seed=1)
    with fg.Session() as sess:
        vu, vz = sess.run([u, z], {lo: 10.0})
    assert vu.min() >= 10.0 and vu.max() < 11.0
    np.testing.assert_array_equal(vz, np.full(1000, 10.0, np.float32))


def test_random_ops_are_not_folded_or_merged_by_the_compiler():
    from flowgraph import passes
    a = fg.random_uniform((4,), seed=1) * 1.0
    b = fg.random_uniform((4,), seed=1) * 1.0      # equal seeds: CSE must keep both ops
    prog = passes.run_pipeline(passes.lower([a, b], [], [], []))
    assert [n.type for n in prog.nodes].count("RandomUniform") == 2
    assert all(n.type != "Const" for n in prog.nodes if n.origin in (a.op, b.op))
    with fg.Session() as sess:
        first, second = sess.run(a), sess.run(a)
    assert not np.array_equal(first, second)


def test_random_ops_have_no_gradient():
    x = fg.placeholder(fg.float32, (3,))
    u = fg.random_uniform((3,), seed=1)
    g, = fg.gradients(fg.reduce_sum(u * x), [x])
    with fg.Session() as sess:
        vu, vg = sess.run([u, g], {x: np.ones(3)})
    np.testing.assert_array_equal(vg, vu)


# --- dropout ----------------------------------------------------------------------------

@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_dropout_keeps_and_scales(config):
    x = fg.placeholder(fg.float32, (None, 400))
    y = fg.nn.dropout(x, keep_prob=0.25, seed=3)
    xv = np.random.default_rng(0).uniform(0.5, 1.5, (50, 400)).astype(np.float32)
    with fg.Session(config=config) as sess:
        yv = sess.run(y, {x: xv})
    kept = yv != 0
    assert abs(kept.mean() - 0.25) < 0.01
    np.testing.assert_allclose(yv[kept], xv[kept] / np.float32(0.25), rtol=1e-6)


def test_dropout_keep_prob_placeholder_fed_one_is_the_identity():
    x = fg.placeholder(fg.float32, (4, 5))
    keep = fg.placeholder(fg.float32, ())
    y = fg.nn.dropout(x, keep)
    xv = np.arange(20, dtype=np.float32).reshape(4, 5)
    with fg.Session() as sess:
        np.testing.assert_array_equal(sess.run(y, {x: xv, keep: 1.0}), xv)
        assert (sess.run(y, {x: xv + 1, keep: 0.5}) == 0).any()


def test_dropout_rate_noise_shape_and_errors():
    x = fg.ones((6, 300))
    shared = fg.nn.dropout(x, rate=0.5, noise_shape=[6, 1], seed=1)
    by_column = fg.nn.dropout(x, rate=0.5, noise_shape=[None, 1], seed=2)
    with fg.Session() as sess:
        a, b = sess.run([shared, by_column])
    for v in (a, b):
        assert set(np.unique(v).tolist()) <= {0.0, 2.0}
        assert all(len(set(row.tolist())) == 1 for row in v)  # one mask value per row
    assert fg.nn.dropout(x, 1.0) is x
    with pytest.raises(ValueError, match="exactly one of keep_prob and rate"):
        fg.nn.dropout(x, 0.5, rate=0.5)
    with pytest.raises(ValueError, match=r"keep_prob in \(0, 1\]"):
        fg.nn.dropout(x, 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        fg.nn.dropout(x, 0.5, noise_shape=[3, 1])
    with pytest.raises(ValueError, match="expected a float tensor"):
        fg.nn.dropout(fg.constant([1, 2]), 0.5)


def test_dropout_gradient_is_mask_over_keep_and_matches_finite_differences():
    rng = np.random.default_rng(1)
    xv = rng.uniform(-1, 1, (3, 4))
    keep_v = 0.6

    def build():
        fg.set_random_seed(9)
        x = fg.placeholder(fg.float64, (3, 4))
        keep = fg.placeholder(fg.float64, ())
        y = fg.nn.dropout(x, keep)
        loss = fg.reduce_sum(y * y * x)
        gx, gk = fg.gradients(loss, [x, keep])
        gg, = fg.gradients(fg.reduce_sum(fg.gradients(fg.reduce_sum(y), [x])[0]), [x])
        return x, keep, y, loss, gx, gk, gg

    def value(xval, kval):
        # a fresh session: run number 0, so every evaluation has the same mask
        with fg.Graph().as_default():
            x, keep, y, loss, *_ = build()
            return fg.Session().run(loss, {x: xval, keep: kval})

    with fg.Graph().as_default():
        x, keep, y, loss, gx, gk, gg = build()
        yv, gxv, gkv, ggv = fg.Session().run([y, gx, gk, gg], {x: xv, keep: keep_v})
    mask = (yv != 0).astype(np.float64)
    np.testing.assert_allclose(gxv, 3 * mask / keep_v ** 2 * xv ** 2, rtol=1e-12)
    np.testing.assert_array_equal(ggv, np.zeros_like(xv))    # linear in x
    eps = 1e-6
    for idx in [(0, 0), (1, 2), (2, 3)]:
        d = np.zeros_like(xv)
        d[idx] = eps
        fd = (value(xv + d, keep_v) - value(xv - d, keep_v)) / (2 * eps)
        np.testing.assert_allclose(gxv[idx], fd, rtol=1e-6, atol=1e-8)
    fd_k = (value(xv, keep_v + eps) - value(xv, keep_v - eps)) / (2 * eps)
    np.testing.assert_allclose(gkv, fd_k, rtol=1e-5)


# --- DropoutWrapper ---------------------------------------------------------------------

def _unrolled(cell, steps=4, batch=3, dim=5):
    xs = [fg.constant(np.random.default_rng(t).uniform(0.5, 1, (batch, dim)).astype(np.float32))
          for t in range(steps)]
    return fg.nn.static_rnn(cell, xs, dtype=fg.float32)


def test_variational_dropout_uses_one_mask_for_every_step_and_row():
    cell = fg.nn.DropoutWrapper(fg.nn.BasicRNNCell(40, seed=0), output_keep_prob=0.5,
                                variational_recurrent=True, dtype=fg.float32, seed=3)
    outputs, _ = _unrolled(cell)
    with fg.Session() as sess:
        first = sess.run(outputs)
        again = sess.run(outputs)
    masks = [o == 0 for o in first]
    assert 0 < masks[0].mean() < 1
    for m in masks:
        np.testing.assert_array_equal(m, np.broadcast_to(masks[0][:1], m.shape))
    assert not np.array_equal(masks[0], again[0] == 0)         # a new mask per run


def test_plain_dropout_wrapper_draws_a_mask_per_step_and_spares_lstm_c():
    cell = fg.nn.DropoutWrapper(fg.nn.LSTMCell(40, seed=0), output_keep_prob=0.5,
                                state_keep_prob=0.5)
    outputs, state = _unrolled(cell)
    with fg.Session() as sess:
        outs, (c, h) = sess.run([outputs, state])
    masks = [o == 0 for o in outs]
    assert not np.array_equal(masks[0], masks[1])
    assert (h == 0).mean() > 0.3 and (c == 0).mean() == 0.0
    with pytest.raises(ValueError, match="input_size must be provided"):
        fg.nn.DropoutWrapper(fg.nn.LSTMCell(3), input_keep_prob=0.5,
                             variational_recurrent=True, dtype=fg.float32)
    with pytest.raises(ValueError, match="dtype must be provided"):
        fg.nn.DropoutWrapper(fg.nn.LSTMCell(3), variational_recurrent=True)


def test_dropout_wrapper_input_dropout_and_keep_one_adds_nothing():
    inner = fg.nn.GRUCell(4, seed=0)
    cell = fg.nn.DropoutWrapper(inner, input_keep_prob=0.5, variational_recurrent=True,
                                input_size=5, dtype=fg.float32, seed=1)
    before = len(fg.get_default_graph().operations)
    plain = fg.nn.DropoutWrapper(fg.nn.GRUCell(4, seed=0))
    assert len(fg.get_default_graph().operations) == before   # keep 1.0: nothing
    outputs, _ = _unrolled(cell)
    assert cell.variables == inner.variables and outputs[0].shape == (3, 4)
    assert plain.state_size == 4


# --- initializers -----------------------------------------------------------------------

def test_initializers_are_deterministic_given_seeds_and_have_their_distribution():
    shape = (300, 200)
    for make in (lambda: fg.random_uniform_initializer(-0.1, 0.1, seed=1),
                 lambda: fg.random_normal_initializer(0.0, 0.5, seed=1),
                 lambda: fg.truncated_normal_initializer(0.0, 0.5, seed=1),
                 lambda: fg.glorot_uniform_initializer(seed=1)):
        a, b = make()(shape, fg.float32), make()(shape, fg.float32)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32 and a.shape == shape
    u = fg.random_uniform_initializer(-0.1, 0.1, seed=1)(shape)
    assert u.min() >= -0.1 and u.max() < 0.1 and abs(u.mean()) < 0.005
    t = fg.truncated_normal_initializer(0.0, 0.5, seed=2)(shape)
    assert np.abs(t).max() < 1.0
    limit = np.sqrt(6 / 500)
    g = fg.glorot_uniform_initializer(seed=3)(shape)
    assert np.abs(g).max() <= limit and g.std() > 0.9 * limit / np.sqrt(3)
    q = fg.orthogonal_initializer(gain=2.0, seed=1)((4, 6), fg.float64)
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(4), atol=1e-12)
    assert fg.zeros_initializer()((2,)).tolist() == [0.0, 0.0]
    assert fg.ones_initializer()((2,), fg.int32).tolist() == [1, 1]
    assert fg.constant_initializer(3.5)((2,)).tolist() == [3.5, 3.5]
    with pytest.raises(ValueError, match="expected 1 or 4 values"):
        fg.constant_initializer([1, 2])((2, 2))


def test_unseeded_initializers_follow_the_graph_seed():
    def draw():
        with fg.Graph().as_default():
            fg.set_random_seed(4)
            return fg.get_variable("w", (3, 3),
                                   initializer=fg.random_normal_initializer()).initial_value
    np.testing.assert_array_equal(draw(), draw())
    fresh = fg.random_normal_initializer()
    assert not np.array_equal(fresh((5,)), fresh((5,)))


def test_the_compiled_plans_philox_loop_makes_the_reference_words():
    from kernels.cpu.philox import contiguous_blocks
    for key, run, n, attempt in [((0, 0), 0, 3, 0), ((2 ** 31 - 2, 5), 2 ** 40 + 7, 1000, 3),
                                 ((87654321, 12), 12345, 17, 0)]:
        want = philox.blocks(key, run, np.arange(n, dtype=np.uint64), attempt)
        np.testing.assert_array_equal(contiguous_blocks(key, run, n, attempt), want)
    for dtype, lo, hi in [(np.float32, 0.0, 1.0), (np.float32, -2.0, 3.0),
                          (np.float64, -1.0, 1.0), (np.int32, -5, 9)]:
        np.testing.assert_array_equal(
            philox.uniform((33, 3), dtype, (4, 5), 6, lo, hi, generator=contiguous_blocks),
            philox.uniform((33, 3), dtype, (4, 5), 6, lo, hi))
    np.testing.assert_array_equal(
        philox.truncated_normal((99,), np.float32, (4, 5), 6, 0.0, 1.0, contiguous_blocks),
        philox.truncated_normal((99,), np.float32, (4, 5), 6, 0.0, 1.0))


def test_bad_shapes_raise_clear_errors_naming_the_op():
    with pytest.raises(fg.errors.DTypeError, match=r"random_uniform.*1-D integer shape"):
        fg.random_uniform(fg.placeholder(fg.float32, (2,)))
    with pytest.raises(ValueError, match="sizes >= 0"):
        fg.random_normal((2, -1))
    dims = fg.placeholder(fg.int32, (None,))
    u = fg.random_uniform(dims, seed=1)
    with fg.Session() as sess:
        with pytest.raises(fg.errors.InvalidArgumentError,
                           match=r"random_uniform.*test_random.py:\d+.*1-D shape of sizes"):
            sess.run(u, {dims: [2, -3]})
        assert sess.run(u, {dims: [2, 3]}).shape == (2, 3)     # the session still works


def test_check_gradients_holds_the_dropout_mask_still():
    x = fg.placeholder(fg.float64, (3, 4))
    keep = fg.placeholder(fg.float64, ())
    y = fg.tanh(fg.nn.dropout(x, keep, seed=5)) * x
    xv = np.random.default_rng(2).uniform(-1, 1, (3, 4))
    assert fg.testing.check_gradients(y, [x, keep], {x: xv, keep: 0.6}) < 1e-6
