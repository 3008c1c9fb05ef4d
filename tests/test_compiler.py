"""The compiled path against the reference path (the specification).

Random graphs are drawn with Hypothesis from a small op vocabulary (elementwise with
broadcasting, matmul with transposes, reductions, reshapes, transposes, concat/split,
slicing), with gradients; float64 results must agree to 1e-10. Shapes are tiny and the
op vocabulary small, so the number of distinct generated kernels stays low (they are
cached on disk by structure).
"""
import re
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import FlowgraphError, InvalidArgumentError, NumericsError
from flowgraph.plan import CompiledPlan

from reference_runs import OPT, REF, run_both

RTOL, ATOL = 1e-10, 1e-12


def assert_close(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=RTOL, atol=ATOL)


def compiled_plan(sess):
    plans = list(sess._plans.values())
    assert plans and all(isinstance(p, CompiledPlan) for p in plans)
    return plans[-1]


# --- random graphs ----------------------------------------------------------------------

UNARY = [fg.tanh, fg.sigmoid, fg.negative, fg.square, fg.relu, fg.abs,
         lambda x: fg.exp(fg.tanh(x)), lambda x: fg.sqrt(fg.square(x) + 1.0),
         lambda x: fg.log(fg.sigmoid(x) + 0.5), lambda x: x ** 3]
BINARY = [fg.add, fg.subtract, fg.multiply, fg.maximum, fg.minimum,
          lambda x, y: x / (fg.square(y) + 1.0),
          lambda x, y: fg.where(x > y, x, y * 2.0)]


@st.composite
def random_graph(draw):
    """(loss, outputs, feeds, params): a graph of 2-6 ops over (2, 3) tensors."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = fg.placeholder(fg.float64, (2, 3), name="x")
    b = fg.placeholder(fg.float64, (3,), name="b")
    w = fg.placeholder(fg.float64, (3, 3), name="w")
    feeds = {x: rng.uniform(-1, 1, (2, 3)), b: rng.uniform(-1, 1, 3),
             w: rng.uniform(-1, 1, (3, 3))}
    pool = [x, x + b]
    for _ in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["unary", "binary", "matmul", "reduce", "shape",
                                     "concat"]))
        a = draw(st.sampled_from(pool))
        if kind == "unary":
            pool.append(draw(st.sampled_from(UNARY))(a))
        elif kind == "binary":
            c = draw(st.sampled_from(pool + [b, fg.constant(0.5, fg.float64)]))
            pool.append(draw(st.sampled_from(BINARY))(a, c))
        elif kind == "matmul":
            tb = draw(st.booleans())
            pool.append(fg.matmul(a, w, transpose_b=tb))
        elif kind == "reduce":
            r = draw(st.sampled_from([fg.reduce_sum, fg.reduce_max]))(a, axis=0, keepdims=True)
            pool.append(a - r)
        elif kind == "shape":
            t = fg.transpose(a)                                   # (3, 2)
            pool.append(fg.reshape(fg.reshape(t, (6,)) * 0.5, (2, 3)))
        else:
            left, right = fg.split(fg.concat([a, pool[0]], axis=1), 2, axis=1)
            pool.append(left * right + a[:, 0:3])
    outputs = pool[-2:]
    loss = fg.reduce_sum(fg.square(outputs[-1])) + fg.reduce_mean(outputs[0])
    return loss, outputs, feeds, [x, b, w]


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_random_graphs_and_gradients_match_reference(data):
    with fg.Graph().as_default() as g:
        loss, outputs, feeds, params = data.draw(random_graph())
        grads = [gr for gr in fg.gradients(loss, params) if gr is not None]
        fetches = [loss] + outputs + grads
        ref, opt = run_both(fetches, feeds, g)
        assert_close(ref, opt)


def test_second_order_gradients_match_reference():
    x = fg.placeholder(fg.float64, (2, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    y = fg.reduce_sum(fg.tanh(fg.matmul(x, w)) ** 2)
    gx, = fg.gradients(y, [x])
    hx, = fg.gradients(fg.reduce_sum(gx * gx), [x])
    rng = np.random.default_rng(0)
    feeds = {x: rng.normal(size=(2, 3)), w: rng.normal(size=(3, 3))}
    ref, opt = run_both([gx, hx], feeds)
    assert_close(ref, opt)


def test_float32_lstm_like_step_matches_reference():
    rng = np.random.default_rng(1)
    x = fg.placeholder(fg.float32, (4, 5))
    h = fg.placeholder(fg.float32, (4, 6))
    c = fg.placeholder(fg.float32, (4, 6))
    w = fg.constant(rng.normal(size=(11, 24)).astype(np.float32))
    b = fg.constant(np.zeros(24, np.float32))
    z = fg.matmul(fg.concat([x, h], 1), w) + b
    i, f, o, g = fg.split(z, 4, axis=1)
    c2 = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
    h2 = fg.sigmoid(o) * fg.tanh(c2)
    grads = fg.gradients(fg.reduce_sum(h2 * h2), [x, h, c])
    feeds = {x: rng.normal(size=(4, 5)), h: rng.normal(size=(4, 6)), c: rng.normal(size=(4, 6))}
    ref, opt = run_both([h2, c2] + grads, feeds)
    for a, b_ in zip(ref, opt):
        assert b_.dtype == np.float32
        np.testing.assert_allclose(b_, a, rtol=2e-5, atol=2e-6)


# --- plans: caching, buffers, aliasing ------------------------------------------------

def test_fetched_arrays_are_never_reused_by_later_runs():
    x = fg.placeholder(fg.float64, (3,))
    y = fg.tanh(x) * 2.0
    with fg.Session(config=OPT) as sess:
        first = sess.run(y, {x: np.zeros(3)})
        second = sess.run(y, {x: np.ones(3)})
        np.testing.assert_array_equal(first, np.zeros(3))
        assert not np.shares_memory(first, second)
        first[:] = 7.0                   # callers own fetched arrays
        np.testing.assert_allclose(sess.run(y, {x: np.ones(3)}), second)


def test_fed_arrays_are_not_modified():
    x = fg.placeholder(fg.float64, (3,))
    y = fg.exp(-x) + 1.0                 # may run in place over the feed's copy
    value = np.array([1.0, 2.0, 3.0])
    with fg.Session(config=OPT) as sess:
        sess.run(y, {x: value})
    np.testing.assert_array_equal(value, [1.0, 2.0, 3.0])


def test_repeated_runs_reuse_the_plan():
    x = fg.placeholder(fg.float64, (None, 2))
    y = fg.sigmoid(x)
    with fg.Session(config=OPT) as sess:
        sess.run(y, {x: np.zeros((1, 2))})
        plan = compiled_plan(sess)
        sess.run(y, {x: np.ones((1, 2))})
        assert compiled_plan(sess) is plan and len(sess._plans) == 1
        sess.run(y, {x: np.ones((3, 2))})     # a new feed shape: a new plan
        assert len(sess._plans) == 2


def test_buffers_are_reused_by_liveness():
    x = fg.placeholder(fg.float64, (64, 64))
    w = fg.placeholder(fg.float64, (64, 64))
    h = x
    for _ in range(8):
        h = fg.tanh(fg.matmul(h, w))
    feeds = {x: np.eye(64) * 0.1, w: np.eye(64)}
    with fg.Session(config=OPT) as sess:
        out = sess.run(h, feeds)
        plan = compiled_plan(sess)
    expected = np.eye(64) * 0.1
    for _ in range(8):
        expected = np.tanh(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    stats = plan.memory_stats
    # 8 matmuls + 8 tanh outputs would be 16 buffers without reuse: expect a few.
    assert stats["pooled_bytes"] <= 4 * 64 * 64 * 8
    assert stats["pooled_bytes"] <= 1.5 * stats["largest_live_set_bytes"]


def test_pooled_buffers_start_on_a_cache_line():
    """Every pooled buffer of a plan, a loop body's too, starts on a 64-byte boundary
    (flowgraph.buffers.ALIGNMENT): NumPy aligns its allocations to 16 bytes only (a
    large one starts 16 bytes past a page), and OpenBLAS runs a GEMM 7-13% slower
    with its operands off a cache line (Zen 4), so a plan's speed was that luck."""
    from flowgraph import buffers
    xs = fg.placeholder(fg.float32, (None, 8, 48))
    w = fg.Variable(np.full((80, 160), 0.01, np.float32))
    sizes = [fg.matmul(fg.reshape(xs, (-1, 48)), w[:48]) * float(k) for k in range(1, 4)]

    def step(h, x):
        return fg.tanh(fg.matmul(fg.concat([h, x], 1), w[:, :32]))
    hs = fg.scan(step, xs, initializer=fg.zeros((8, 32), fg.float32))
    loss = fg.reduce_sum(hs) + fg.add_n([fg.reduce_sum(s) for s in sizes])
    grad, = fg.gradients(loss, [w])
    feed = {xs: np.random.default_rng(0).standard_normal((300, 8, 48)).astype(np.float32)}
    with fg.Session(config=OPT) as sess:
        sess.run(grad, feed)
        plans = list(sess._plans.values())
        plans += [p for plan in plans for p in getattr(plan, "_subplans", [])]
        starts = [s.array.ctypes.data for plan in plans for s in plan._storages]
    assert len(plans) >= 3 and len(starts) > 10
    assert all(a % buffers.ALIGNMENT == 0 for a in starts), [a % 64 for a in starts]


def test_kernels_are_shared_across_time_steps():
    x = fg.placeholder(fg.float64, (2, 4))
    w = fg.placeholder(fg.float64, (4, 4))
    h = fg.zeros((2, 4), fg.float64) + 0.5
    for _ in range(10):
        h = fg.tanh(fg.matmul(h, w) + x) * 0.9
    with fg.Session(config=OPT) as sess:
        sess.run(h, {x: np.ones((2, 4)), w: np.eye(4)})
        plan = compiled_plan(sess)
    assert plan.n_units > 10 and len(plan.kernel_sources) <= 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log1p_fuses_into_a_generated_kernel(dtype):
    # Declared with a scalar template (and a ufunc): small regions are generated loops.
    x = fg.placeholder(dtype, (3, 4))
    y = fg.log1p(x * 0.5 + 0.25) * x
    value = np.linspace(-1.0, 2.0, 12, dtype=dtype).reshape(3, 4)
    with fg.Session(config=OPT) as sess:
        out = sess.run(y, {x: value})
        plan = compiled_plan(sess)
    assert any("math.log1p(" in src for src in plan.kernel_sources)
    assert [info.kind for info in plan.step_infos] == ["fused kernel"]
    ref, = run_both([y], {x: value})[0]
    np.testing.assert_allclose(out, ref, rtol=1e-6 if dtype == np.float32 else RTOL)


def test_make_callable_and_concurrent_runs():
    x = fg.placeholder(fg.float64, (50,))
    y = fg.tanh(x) + fg.sigmoid(x)
    with fg.Session(config=OPT) as sess:
        step = sess.make_callable(y, [x])
        values = [np.full(50, k / 10.0) for k in range(8)]
        results = [None] * 8

        def work(k):
            for _ in range(20):
                results[k] = step(values[k])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for v, r in zip(values, results):
        np.testing.assert_allclose(r, np.tanh(v) + 1 / (1 + np.exp(-v)), rtol=1e-12)


# --- state ------------------------------------------------------------------------------

def test_variables_and_assignments_follow_reference_semantics():
    results = []
    for config in (REF, OPT):
        with fg.Graph().as_default():
            v = fg.Variable(np.array([1.0, 2.0]), name="v")
            x = fg.placeholder(fg.float64, (2,))
            loss = fg.reduce_sum(fg.square(v * x))
            g, = fg.gradients(loss, [v])
            update = v.assign_sub(0.1 * g)
            with fg.control_dependencies([update]):
                after = v.read_value() * 1.0
            with fg.Session(config=config) as sess:
                r1 = sess.run([v, after, loss], {x: np.array([1.0, 3.0])})
                r2 = sess.run([v, after, loss], {x: np.array([1.0, 3.0])})
                results.append(r1 + r2 + [sess.variable_value(v)])
    assert_close(results[0], results[1])
    assert not np.allclose(results[1][0], results[1][3])   # the update committed


def test_failed_run_commits_nothing_and_names_the_op():
    v = fg.Variable(np.zeros(2), name="v")
    idx = fg.placeholder(fg.int32, (1,), name="idx")
    bump = v.assign_add(np.ones(2))
    with fg.control_dependencies([bump]):
        picked = fg.gather(fg.tanh(v.read_value()), idx, name="pick")
    with fg.Session(config=OPT) as sess:
        sess.run(picked, {idx: [1]})
        with pytest.raises(InvalidArgumentError, match="Gather 'pick'"):
            sess.run(picked, {idx: [7]})
        np.testing.assert_array_equal(sess.variable_value(v), [1.0, 1.0])
        assert sess.run(picked, {idx: [0]}).shape == (1,)     # still usable


def test_check_numerics_names_the_first_op_of_the_original_graph():
    x = fg.placeholder(fg.float64, (2,))
    bad = fg.log(x, name="the_log")            # log(-1) = NaN, fused with what follows
    y = fg.tanh(bad * 2.0) + 1.0
    with fg.Session(config=fg.SessionConfig(check_numerics=True)) as sess:
        assert np.isfinite(sess.run(y, {x: [1.0, 2.0]})).all()
        with pytest.raises(NumericsError, match="the_log"):
            sess.run(y, {x: [-1.0, 2.0]})


def test_ops_off_the_cpu_use_the_reference_plan():
    with fg.device("/gpu:0"):
        x = fg.placeholder(fg.float64, (2,))
        y = fg.tanh(x)
    config = fg.SessionConfig(allow_soft_placement=True)
    with fg.Session(config=config) as sess:
        np.testing.assert_allclose(sess.run(y, {x: [0.0, 1.0]}), np.tanh([0.0, 1.0]))
        assert not any(isinstance(p, CompiledPlan) for p in sess._plans.values())


def test_integer_and_bool_graphs_fall_back_per_op():
    a = fg.placeholder(fg.int32, (3,))
    y = a * 2 + 1
    z = fg.cast(a > 1, fg.float64) * 3.0
    ref, opt = run_both([y, z], {a: [1, 2, 3]})
    for r, o in zip(ref, opt):
        np.testing.assert_array_equal(r, o)
        assert r.dtype == o.dtype


def test_internal_errors_are_reported_not_hidden():
    x = fg.placeholder(fg.float64, (2,))
    y = fg.tanh(x)
    with fg.Session(config=OPT) as sess:
        sess.run(y, {x: [0.0, 1.0]})
        plan = compiled_plan(sess)

        def broken():
            raise RuntimeError("boom")
        plan._steps = [broken]
        with pytest.raises(FlowgraphError, match="internal error"):
            sess.run(y, {x: [0.0, 1.0]})


def test_unrolled_rnn_weight_gradients_match_reference():
    # Exercises stacking of the per-step weight-gradient matmuls into one GEMM.
    rng = np.random.default_rng(3)
    xs = [fg.placeholder(fg.float64, (3, 2)) for _ in range(5)]
    w = fg.Variable(rng.normal(size=(6, 4)) * 0.5)
    b = fg.Variable(np.zeros(4))
    h = fg.constant(np.zeros((3, 4)))
    for x in xs:
        h = fg.tanh(fg.matmul(fg.concat([h, x], 1), w) + b)
    grads = fg.gradients(fg.reduce_mean(h * h), [w, b])
    feeds = {x: rng.normal(size=(3, 2)) for x in xs}
    ref, opt = run_both(grads, feeds)
    assert_close(ref, opt)


def test_concat_writes_inputs_in_place_and_matches_reference():
    x = fg.placeholder(fg.float64, (2, 3))
    a = fg.tanh(x)
    b = x * 2.0 + 1.0
    c = fg.concat([a, b, fg.matmul(a, fg.transpose(b))[:, :1] * x], axis=0)
    both = fg.concat([c, c], axis=1)
    fetches = [c, both, a * b]
    ref, opt = run_both(fetches, {x: np.arange(6.0).reshape(2, 3) / 6})
    assert_close(ref, opt)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, {x: np.zeros((2, 3))})
        assert compiled_plan(sess)._elided


def test_unrolled_gru_like_step_with_batched_input_matmuls_matches_reference():
    rng = np.random.default_rng(4)
    xs = [fg.placeholder(fg.float64, (3, 2)) for _ in range(4)]
    w = fg.Variable(rng.normal(size=(2, 8)))
    u = fg.Variable(rng.normal(size=(4, 8)) * 0.5)
    h = fg.constant(np.zeros((3, 4)))
    for x in xs:
        gx, gh = fg.matmul(x, w), fg.matmul(h, u)
        xr, xn = fg.split(gx, 2, axis=1)
        hr, hn = fg.split(gh, 2, axis=1)
        r = fg.sigmoid(xr + hr)
        h = (1.0 - r) * fg.tanh(xn + r * hn) + r * h
    fetches = [h] + fg.gradients(fg.reduce_mean(h * h), [w, u])
    ref, opt = run_both(fetches, {x: rng.normal(size=(3, 2)) for x in xs})
    assert_close(ref, opt)


def test_concat_along_columns_writes_windows_and_copies_only_constants():
    rng = np.random.default_rng(5)
    x = fg.placeholder(fg.float64, (3, 2))
    row = fg.constant(rng.normal(size=(1, 2)))
    a = x * 2.0 + row                    # fused, written into columns 0:2
    p, q = fg.placeholder(fg.float64, (1, 2)), fg.placeholder(fg.float64, (3, 1))
    b = fg.tanh(p) + q                   # every operand broadcast: only a windowed output
    c = fg.concat([a, b, fg.constant(np.ones((3, 1)))], axis=1)
    nested = fg.concat([c, fg.concat([x, x, x[:, :1]], axis=1)], axis=0)
    reshaped = fg.reshape(x * 3.0, (2, 3))          # a reshape reads it: not a window
    d = fg.concat([x * 3.0, x], axis=1)
    fetches = [c, nested, d, reshaped]
    feeds = {x: rng.normal(size=(3, 2)), p: rng.normal(size=(1, 2)),
             q: rng.normal(size=(3, 1))}
    ref, opt = run_both(fetches, feeds)
    assert_close(ref, opt)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, feeds)
        plan = compiled_plan(sess)
        copied = {n.name: [w[0].type for w, _, _ in parts]
                  for n, parts in plan._concat_copies.items()}
        assert ["Const"] in copied.values()
        assert any(", n0, n1):" in src for src in plan.kernel_sources)   # b's kernel


def test_the_gradient_of_a_column_concat_leaves_its_inputs_windows():
    # An unrolled RNN's [h, x]: the concatenation's gradient (SplitLike) names h and x
    # for their shapes only, which does not keep them out of their windows: the
    # per-step concatenation runs no step, and the values and gradients still match.
    rng = np.random.default_rng(8)
    xs = fg.placeholder(fg.float64, (3, 4, 2))
    w = fg.Variable(rng.normal(size=(5, 3)) * 0.5)
    h = fg.constant(np.zeros((3, 3)))
    for x in fg.split(xs, 4, axis=1):          # strided steps, reshaped: copies
        h = fg.tanh(fg.matmul(fg.concat([h * 1.0, fg.reshape(x, (3, 2))], axis=1), w))
    fetches = [h] + fg.gradients(fg.reduce_sum(h * h), [w, xs])
    feeds = {xs: rng.normal(size=(3, 4, 2))}
    ref, opt = run_both(fetches, feeds)
    assert_close(ref, opt)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, feeds)
        plan = compiled_plan(sess)
        per_step = [n for n in plan._elided if n.type == "Concat" and n.shapes[0] == (3, 5)]
        assert len(per_step) == 3       # all but the first, whose h is a constant


def test_a_value_two_concatenations_read_is_stored_in_both_by_its_kernel():
    # The GRU pattern: the r and z gate gradients go into the input-weight and the
    # recurrent-weight gradient operands; the kernel computing them writes both.
    rng = np.random.default_rng(7)
    x, y = fg.placeholder(fg.float64, (3, 2)), fg.placeholder(fg.float64, (3, 2))
    r, z = x * y + 1.0, x - y * 2.0               # one fused region, two outputs
    first = fg.concat([r, z, x * 4.0], axis=1)
    second = fg.concat([r, z, y * 5.0], axis=1)   # also along rows, nested:
    stacked = fg.concat([fg.concat([z, r, x - y], axis=1), second], axis=0)
    fetches = [fg.matmul(first, fg.transpose(second)), stacked]
    feeds = {x: rng.normal(size=(3, 2)), y: rng.normal(size=(3, 2))}
    ref, opt = run_both(fetches, feeds)
    assert_close(ref, opt)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, feeds)
        plan = compiled_plan(sess)
        assert not any(parts for parts in plan._concat_copies.values())
        twice = [w for w, places in plan._also_into.items() if places]
        assert {w[0].type for w in twice} == {"Add", "Sub"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sums_match_reference(dtype):
    rng = np.random.default_rng(6)
    x = fg.placeholder(dtype, (5, 4, 3))
    b = fg.placeholder(dtype, (3,))
    y = fg.tanh(x * 2.0 + b)
    fetches = [y, fg.reduce_sum(y, axis=0), fg.reduce_sum(y * y, axis=(0, 1)),
               fg.reduce_sum(y - 1.0, axis=2, keepdims=True), fg.reduce_mean(fg.square(y)),
               fg.reduce_sum(fg.sigmoid(x), axis=1)]
    fetches += fg.gradients(fetches[-2], [b])
    feeds = {x: rng.normal(size=(5, 4, 3)).astype(dtype), b: rng.normal(size=3).astype(dtype)}
    ref, opt = run_both(fetches, feeds)
    for r, o in zip(ref, opt):
        assert o.dtype == dtype
        np.testing.assert_allclose(o, r, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, feeds)
        assert any("acc" in src for src in compiled_plan(sess).kernel_sources)


def test_gemm_with_a_row_blocked_epilogue_matches_reference(monkeypatch):
    # Off by default (it did not pay with OpenBLAS: benchmarks/epilogue.py); when on,
    # a GEMM and the region after it run block by block.
    import flowgraph.plan as plan_module
    monkeypatch.setattr(plan_module, "EPILOGUE_MIN_BYTES", 1)
    monkeypatch.setattr(plan_module, "EPILOGUE_BLOCK_BYTES", 64)
    rng = np.random.default_rng(7)
    x = fg.placeholder(fg.float64, (37, 5))
    w = fg.constant(rng.normal(size=(5, 4)))
    b = fg.constant(rng.normal(size=4))
    y = fg.relu(fg.matmul(x, w) + b) * 2.0
    fetches = [y] + fg.gradients(fg.reduce_sum(y * y), [x])
    feeds = {x: rng.normal(size=(37, 5))}
    ref, opt = run_both(fetches, feeds)
    assert_close(ref, opt)
    with fg.Session(config=OPT) as sess:
        sess.run(fetches, feeds)
        names = [s.__code__.co_name for s in compiled_plan(sess)._steps]
        assert "gemm_with_epilogue" in names


def test_state_ops_store_only_the_outputs_that_are_read():
    """An optimizer's assignments run for effect: their steps store no output, and the
    variables end as on the reference path; a fetched assignment still returns its value."""
    results = []
    for config in (REF, OPT):
        with fg.Graph().as_default():
            x = fg.placeholder(fg.float64, (4, 3), name="x")
            w = fg.Variable(np.linspace(-1, 1, 6).reshape(3, 2), name="w")
            b = fg.Variable(np.zeros(2), name="b")
            loss = fg.reduce_sum(fg.tanh(fg.matmul(x, w) + b) ** 2)
            train = fg.train.GradientDescentOptimizer(0.1).minimize(loss)
            bump = fg.assign_add(b, np.ones(2)) * 1.0
            feed = {x: np.arange(12.0).reshape(4, 3) / 10}
            with fg.Session(config=config) as sess:
                sess.run(fg.global_variables_initializer())
                for _ in range(3):
                    sess.run([loss, train], feed)
                bumped = sess.run(bump)
                results.append([sess.run(w), sess.run(b), bumped])
                if config is OPT:
                    steps = [s for plan in sess._plans.values()
                             for s in getattr(plan, "_steps", ())]
                    # the optimizer's plain assignments: direct steps told not to store
                    # (cpu_steps._direct_state_step)
                    assigns = [dict(zip(s.__code__.co_freevars,
                                        (c.cell_contents for c in s.__closure__)))
                               for s in steps if s.__name__ in ("assign", "assign_resident")]
                    assert assigns and not any(a["stored"] for a in assigns)
    assert_close(results[0], results[1])
    np.testing.assert_array_equal(results[1][2], results[1][1])


@pytest.mark.parametrize("clip", [None, 0.5])
def test_sparse_embedding_sgd_matches_the_dense_update(clip):
    """GradientDescent on a gathered table updates only the rows used (SparseRowsSGD,
    duplicates summed) and clipping takes the squared norm from those rows
    (GatherGradSq): the same training as the dense update (the gradient hidden behind
    an identity), compiled and on the reference path."""
    ids_value = np.array([[3, 0, 3], [5, 3, 1]], np.int32)        # duplicates, unused rows
    results = {}
    for sparse in (True, False):
        for config in (REF, OPT):
            with fg.Graph().as_default():
                ids = fg.placeholder(fg.int32, (2, 3), name="ids")
                rng = np.random.default_rng(0)
                table = fg.Variable(rng.uniform(-1, 1, (7, 4)), name="table")
                w = fg.Variable(rng.uniform(-1, 1, (4, 2)), name="w")
                rows = fg.reshape(fg.nn.embedding_lookup(table, ids), (6, 4))
                loss = fg.reduce_sum(fg.tanh(fg.matmul(rows, w)) ** 2)
                opt = fg.train.GradientDescentOptimizer(0.3)
                grads = [g for g, _ in opt.compute_gradients(loss, [table, w])]
                if not sparse:
                    grads = [fg.identity(g) for g in grads]
                norm = fg.constant(0.0, fg.float64)
                if clip:
                    grads, norm = fg.clip_by_global_norm(grads, clip)
                train = opt.apply_gradients(zip(grads, [table, w]))
                types = {op.type for op in fg.get_default_graph().operations}
                assert ("SparseRowsSGD" in types) == sparse
                assert ("GatherGradSq" in types) == (sparse and clip is not None)
                with fg.Session(config=config) as sess:
                    sess.run(fg.global_variables_initializer())
                    norms = [sess.run([norm, train], {ids: ids_value})[0] for _ in range(3)]
                    results[(sparse, config is OPT)] = [sess.run(table), sess.run(w), norms]
                    if sparse and config is OPT:
                        text = sess.explain(train, {ids: ids_value})
                        # no dense table of the gradient: no gather_grad step runs
                        assert not re.search(r"gather_grad(_\d+)?(,|$)", text, re.M)
                        assert "SparseRowsSGD" in text
    for key, got in results.items():
        assert_close(results[(False, False)], got)
    untouched = [2, 4, 6]
    np.testing.assert_array_equal(results[(True, True)][0][untouched],
                                  np.random.default_rng(0).uniform(-1, 1, (7, 4))[untouched])
