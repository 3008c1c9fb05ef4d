"""Loop passes (flowgraph.loop_passes) and the compiled loop step (flowgraph.loop_step):
the hoisted input GEMM, loop invariants, stacked weight and bias gradients, one body
compile for every length, bodies following the session's compile mode, numerics
errors naming the body's op.
"""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import loop_passes

CELLS = {
    "rnn": lambda: fg.nn.BasicRNNCell(3, seed=0),
    "lstm": lambda: fg.nn.LSTMCell(3, seed=0),
    "gru": lambda: fg.nn.GRUCell(3, seed=0),
    "gru_reset_after": lambda: fg.nn.GRUCell(3, seed=0, reset_after=True),
}
B, T, I = 3, 5, 4


def _close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def _loops(graph=None):
    graph = graph or fg.get_default_graph()
    return [op for op in graph.operations if op.type == "While"]


def _model(kind, lengths, hoist, monkeypatch):
    """dynamic_rnn and static_rnn of one cell, their outputs, final states and
    gradients (inputs and every weight)."""
    monkeypatch.setattr(loop_passes, "ENABLED", hoist)
    cell = CELLS[kind]()
    x = fg.placeholder(fg.float64, (None, None, I))
    seq = None if lengths is None else fg.constant(np.array(lengths, np.int32))
    dyn, dyn_state = fg.nn.dynamic_rnn(cell, x, sequence_length=seq, dtype=fg.float64)
    steps = fg.unstack(fg.transpose(x, (1, 0, 2)), num=T)
    st, st_state = fg.nn.static_rnn(cell, steps, dtype=fg.float64, sequence_length=seq)
    st = fg.transpose(fg.stack(st), (1, 0, 2))
    w = np.random.default_rng(2).normal(size=(B, T, cell.output_size))

    def loss(out, state):
        return fg.reduce_sum(out * w) + fg.add_n(
            [fg.reduce_sum(fg.square(s)) for s in fg.nn.flatten_state(state)])

    wrt = [x] + list(cell.variables)
    got = [dyn] + fg.nn.flatten_state(dyn_state) + fg.gradients(loss(dyn, dyn_state), wrt)
    want = [st] + fg.nn.flatten_state(st_state) + fg.gradients(loss(st, st_state), wrt)
    return x, got, want


@pytest.mark.parametrize("lengths", [None, [5, 2, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_hoisted_and_plain_loops_equal_the_unrolled_reference(kind, lengths, monkeypatch):
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    results = {}
    for hoist in (True, False):
        with fg.Graph().as_default() as graph:
            x, got, want = _model(kind, lengths, hoist, monkeypatch)
            reference = fg.Session(graph, fg.SessionConfig(optimize=False)).run(
                want, {x: x_val})
            compiled = fg.Session(graph, fg.SessionConfig(compile="eager"))
            results[hoist] = compiled.run(got, {x: x_val})
            _close(results[hoist], reference)          # outputs, states, gradients
            _close(fg.Session(graph, fg.SessionConfig(optimize=False)).run(
                got, {x: x_val}), reference)           # and on the reference path
            bodies = [op.attrs["body"] for op in _loops(graph)]
            hoisted = [getattr(b, "hoisted", None) for b in bodies]
            # the forward loop reads the hoisted product x_t @ W_x (+ b) as a row
            assert bool(hoisted[0]) == hoist
    _close(results[True], results[False])


def test_the_hoisted_body_has_no_input_gemm_and_explain_shows_it_outside():
    cell = fg.nn.LSTMCell(8, seed=0)
    x = fg.placeholder(fg.float32, (4, None, 5))
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float32)
    loss = fg.reduce_mean(fg.square(out))
    grads = fg.gradients(loss, cell.variables)
    forward = _loops()[0]
    body = forward.attrs["body"]
    # in the body: h @ W[:H] only (the [h, x] concatenation is gone), and no bias add
    # of its own: it went into the hoisted product
    matmuls = [op for op in body.ops if op.type == "MatMul"]
    assert len(matmuls) == 1 and matmuls[0].inputs[0].shape == (4, 8)
    assert not any(op.type == "Concat" for op in body.ops)
    assert cell.bias not in [t.op for t in body.captures]
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    text = sess.explain([loss] + grads, {x: np.zeros((4, 7, 5), np.float32)})
    gemms = [line for line in text.splitlines() if " gemm " in line]
    assert any("hoisted/input_matmul0" in line for line in gemms), text
    # the weight gradient of both blocks is one GEMM after the loop (over all steps
    # and [hs, xs]: loop_passes.merge_weight_gradient_gemms), not a sum in the loop
    # nor a GEMM per block; SliceGrads of W's two blocks became one concat
    assert len(gemms) == 2, text
    assert not any("input_matmul0_grad" in line or "while_grad/matmul" in line
                   for line in gemms), text
    assert "slice_grad" not in text.split("hoisted/input_matmul0")[0] or True
    assert not any("slice_grad" in line and "input_kernel" in line for line in
                   text.splitlines()), text


@pytest.mark.parametrize("hoist", [True, False], ids=["hoisted", "plain"])
def test_the_backward_loop_emits_no_gradient_of_rows_its_body_never_reads(hoist,
                                                                          monkeypatch):
    """With the input product hoisted the forward body reads ``x`` only through it:
    ``x`` is no loop's sequence (loop_passes.hoist leaves it out), the backward loop
    emits no gradient rows for it, and ``x``'s gradient is the hoisted product's alone
    (no sum with a loop output). The plain loop reads ``x_t`` and emits its gradient;
    both equal the reference."""
    monkeypatch.setattr(loop_passes, "ENABLED", hoist)
    cell = fg.nn.LSTMCell(3, seed=0)
    x = fg.placeholder(fg.float64, (B, T, I))
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    grads = fg.gradients(fg.reduce_sum(fg.square(out)), [x] + cell.variables)
    forward, backward = _loops()
    assert any(t.shape == (T, B, I) for t in forward.inputs) == (not hoist)  # x, time-major
    outputs = backward.attrs["body"].outputs
    assert not any(t.op.type == "ZerosLike" for t in outputs)
    # the gate gradients (and the plain loop's dx_t and stacked [h_t, x_t])
    assert backward.attrs["n_emits"] == (1 if hoist else 3)
    assert grads[0].op.type == "Transpose"       # (time-major to batch-major)
    assert grads[0].op.inputs[0].op.type == ("MatMul" if hoist else "While")
    feed = {x: np.random.default_rng(4).normal(size=(B, T, I))}
    _close(fg.Session(config=fg.SessionConfig(compile="eager")).run(grads, feed),
           fg.Session(config=fg.SessionConfig(optimize=False)).run(grads, feed))


def test_a_sequence_the_body_never_reads_gets_no_gradient_rows():
    """``scan`` over two float sequences whose body reads one: the backward loop emits
    the gradient rows of that one only; the other's gradient is zeros."""
    xs = fg.placeholder(fg.float64, (4, 2))
    ys = fg.placeholder(fg.float64, (4, 2))
    out = fg.scan(lambda acc, xy: acc * xy[0], (xs, ys),
                  initializer=fg.ones((2,), fg.float64))
    gx, gy = fg.gradients(fg.reduce_sum(out), [xs, ys])
    backward = _loops()[1]
    assert backward.attrs["n_emits"] == 1
    rng = np.random.default_rng(5)
    feed = {xs: rng.normal(size=(4, 2)), ys: rng.normal(size=(4, 2))}
    for config in (fg.SessionConfig(optimize=False), fg.SessionConfig(compile="eager")):
        got_x, got_y = fg.Session(config=config).run([gx, gy], feed)
        np.testing.assert_array_equal(got_y, np.zeros((4, 2)))
        prefix = np.cumprod(feed[xs], axis=0)         # out[t] = prod(x[:t + 1])
        want = np.array([prefix[t:].sum(axis=0) / feed[xs][t] for t in range(4)])
        np.testing.assert_allclose(got_x, want, rtol=1e-12)


def test_a_new_length_compiles_no_new_body():
    cell = fg.nn.GRUCell(6, seed=0)
    x = fg.placeholder(fg.float64, (2, None, 3))
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    loss = fg.reduce_sum(fg.square(out))
    grads = fg.gradients(loss, cell.variables)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    ref = fg.Session(config=fg.SessionConfig(optimize=False))
    bodies = [op.attrs["body"] for op in _loops()]
    assert len(bodies) == 2                     # the forward and the backward loop
    counts = None
    rng = np.random.default_rng(0)
    for t in (3, 11, 40):
        feed = {x: rng.normal(size=(2, t, 3))}
        _close(sess.run([out, loss] + grads, feed), ref.run([out, loss] + grads, feed))
        now = [b.compiles for b in bodies]
        if counts is None:
            counts = now
            assert all(c >= 1 for c in counts)
        assert now == counts, "a new length compiled a body again"


def test_loop_invariant_values_are_computed_once_outside_the_body():
    w = fg.Variable(np.arange(6.0).reshape(2, 3))
    xs = fg.placeholder(fg.float64, (None, 3))

    def step(acc, x):
        # transpose(w) @ w reads only outer tensors: the same every iteration
        gram = fg.matmul(w, w, transpose_a=True)
        return acc + fg.reduce_sum(fg.matmul(fg.expand_dims(x, 0), gram))

    total = fg.scan(step, xs, initializer=fg.constant(0.0, fg.float64))
    g, = fg.gradients(total[-1], [w])
    body = _loops()[0].attrs["body"]
    assert not any(op.type == "MatMul" and all(t.op.type in ("Variable", "ReadVariable")
                                               for t in op.inputs) for op in body.ops)
    feed = {xs: np.random.default_rng(0).normal(size=(4, 3))}
    got = fg.Session(config=fg.SessionConfig(compile="eager")).run([total, g], feed)
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run([total, g], feed)
    _close(got, want)
    x = feed[xs]
    wv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(got[0], np.cumsum(x @ wv.T @ wv, axis=0).sum(axis=1),
                               rtol=1e-12)


@pytest.mark.parametrize("mode", ["background", "eager", "never"])
def test_bodies_follow_the_session_compile_mode(mode):
    cell = fg.nn.LSTMCell(4, seed=0)
    x = fg.placeholder(fg.float32, (2, None, 3))
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float32)
    loss = fg.reduce_sum(fg.square(out))
    grads = fg.gradients(loss, cell.variables)
    feed = {x: np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)}
    sess = fg.Session(config=fg.SessionConfig(compile=mode))
    first = sess.run([loss] + grads, feed)
    assert sess.wait_compiled(timeout=600)
    plans = [p for op in _loops() for p in op.attrs["body"]._compiled.values()]
    assert plans and all(p._compile_mode == mode for p in plans)
    if mode != "never":       # every body kernel compiled and swapped in
        assert all(p.compiled for p in plans)
        assert all(p._kernels is None or p._kernels.finished() for p in plans)
    again = sess.run([loss] + grads, feed)
    for a, b in zip(first, again):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_check_numerics_inside_a_body_names_the_body_op():
    xs = fg.placeholder(fg.float64, (None, 2))
    ys = fg.scan(lambda acc, x: acc + fg.log(x, name="body_log"), xs,
                 initializer=fg.zeros((2,), fg.float64))
    feed = {xs: np.array([[1.0, 2.0], [3.0, -1.0], [1.0, 1.0]])}
    for optimize in (True, False):
        sess = fg.Session(config=fg.SessionConfig(check_numerics=True, optimize=optimize,
                                                  compile="eager"))
        with pytest.raises(fg.errors.NumericsError, match="body_log"):
            sess.run(ys, feed)
    ok = fg.Session(config=fg.SessionConfig(check_numerics=True, compile="eager"))
    np.testing.assert_allclose(ok.run(ys, {xs: np.ones((3, 2))}), np.zeros((3, 2)))


def test_slice_grad_cpu_kernel_matches_the_reference():
    from flowgraph.ops import get_primitive
    from kernels.cpu import build
    rng = np.random.default_rng(0)
    like = np.zeros((5, 4))
    g = rng.normal(size=(2, 4))
    spec = (("slice", 1, 5, 2),)
    out = np.full((5, 4), 7.0)
    build("SliceGrad", {"spec": spec}, [g, like], [out])()

    class Op:
        attrs = {"spec": spec}
    np.testing.assert_array_equal(out, get_primitive("SliceGrad").ref(Op, g, like))


def test_unbatch_matmuls_turns_batched_products_into_one_gemm():
    a = fg.placeholder(fg.float64, (3, 4, 5))
    w = fg.Variable(np.random.default_rng(0).normal(size=(5, 2)))
    y = fg.reduce_sum(fg.square(fg.matmul(a, w)))
    gw, ga = fg.gradients(y, [w, a])
    feed = {a: np.random.default_rng(1).normal(size=(3, 4, 5))}
    got = fg.Session(config=fg.SessionConfig(compile="eager")).run([y, gw, ga], feed)
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run([y, gw, ga], feed)
    _close(got, want)
    text = fg.Session(config=fg.SessionConfig(compile="eager")).explain([y, gw, ga], feed)
    assert " reference " not in text, text


# --- while_loop with a trip count known only at run time ----------------------------------

def _while_model(kind):
    """A while_loop whose trip count is data, its final values and gradients."""
    rng = np.random.default_rng(3)
    x = fg.placeholder(fg.float64, (2, 3))
    limit = fg.placeholder(fg.int32, ())
    w = fg.Variable(rng.normal(size=(3, 3)) * 0.4)
    b = fg.Variable(rng.normal(size=(3,)))
    if kind == "counter":                   # a counter against a fed scalar
        i, h = fg.while_loop(lambda i, h: i < limit,
                             lambda i, h: (i + 1, fg.tanh(fg.matmul(h, w) + b)),
                             (fg.constant(0), x))
        outs = [i, h]
    elif kind == "early_exit":              # a data-dependent exit, capped
        i, h, acc = fg.while_loop(
            lambda i, h, acc: fg.reduce_sum(acc) < fg.cast(limit, fg.float64),
            lambda i, h, acc: (i + 1, fg.sigmoid(fg.matmul(h, w) + b), acc + fg.square(h)),
            (fg.constant(0), x, fg.zeros_like(x)), maximum_iterations=7)
        outs = [i, h, acc]
    else:                                   # maximum_iterations only binds
        i, h = fg.while_loop(lambda i, h: i < 1000,
                             lambda i, h: (i + 1, fg.tanh(fg.matmul(h, w) * 0.9 + b)),
                             (fg.constant(0), x), maximum_iterations=limit)
        outs = [i, h]
    loss = fg.add_n([fg.reduce_sum(fg.square(o)) for o in outs[1:]])
    grads = fg.gradients(loss, [x, w, b])
    return x, limit, outs, grads


@pytest.mark.parametrize("kind", ["counter", "early_exit", "max_iterations"])
def test_while_loop_of_run_time_length_runs_compiled(kind):
    x, limit, outs, grads = _while_model(kind)
    graph = fg.get_default_graph()
    init = fg.global_variables_initializer()
    ref = fg.Session(graph, fg.SessionConfig(optimize=False))
    comp = fg.Session(graph, fg.SessionConfig(compile="eager"))
    ref.run(init)
    comp.run(init)
    x_val = np.random.default_rng(4).normal(size=(2, 3))
    for n in (0, 1, 4, 40, 3):          # no iteration, one, more, past the capacity, fewer
        feed = {x: x_val, limit: n}
        _close(comp.run(outs + grads, feed), ref.run(outs + grads, feed))
        _close(comp.run(outs, feed), ref.run(outs, feed))    # forward only
    for fetches in (outs + grads, outs):
        text = comp.explain(fetches, {x: x_val, limit: 3})
        assert text.startswith("CompiledPlan"), text
        assert " reference " not in text, text


def test_while_loop_forward_only_records_no_history():
    x, limit, outs, _ = _while_model("counter")
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    sess.run(fg.global_variables_initializer())
    sess.run(outs, {x: np.ones((2, 3)), limit: 50})
    from flowgraph import control_flow
    pushed = []
    original = control_flow.Stack.push

    def push(self, row):
        pushed.append(row)
        return original(self, row)
    try:
        control_flow.Stack.push = push
        sess.run(outs, {x: np.ones((2, 3)), limit: 50})
        assert pushed == [], len(pushed)
        grad = fg.gradients(fg.reduce_sum(outs[1]), [x])
        sess.run(grad, {x: np.ones((2, 3)), limit: 50})
        assert len(pushed) >= 50         # with a gradient: the history, in a Stack
    finally:
        control_flow.Stack.push = original


def test_stack_grows_by_doubling_and_keeps_its_capacity():
    from flowgraph.control_flow import Stack
    st = Stack(2)
    for k in range(5):
        st.push(np.full(3, float(k)))
    assert st.capacity == 8 and st.rows()[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert st.rows(reverse=True)[:, 0].tolist() == [4, 3, 2, 1, 0]
    st.clear()
    st.push(np.zeros(3))
    assert st.capacity == 8 and len(st.rows()) == 1


def _lstm_step_plan(monkeypatch, free_unread):
    """An LSTM's dynamic_rnn training step (fixed shapes) compiled, with the buffer
    planner told of the loops' unread sequences or not: (plan, results)."""
    if not free_unread:
        monkeypatch.setattr(loop_passes, "unread_sequences", lambda node: set())
    with fg.Graph().as_default() as graph:
        cell = fg.nn.LSTMCell(6, seed=0)
        x = fg.placeholder(fg.float64, (3, 7, 4))
        out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
        loss = fg.reduce_mean(fg.square(out[:, -1]))
        fetches = [loss] + fg.gradients(loss, cell.variables)
        feed = {x: np.random.default_rng(3).normal(size=(3, 7, 4))}
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        got = sess.run(fetches, feed)
        want = fg.Session(graph, fg.SessionConfig(optimize=False)).run(fetches, feed)
        _close(got, want)
        plan, = sess._plans.values()
        loops = [n for n in _loops(graph)]
    monkeypatch.undo()
    return plan, got, loops


def test_a_sequence_no_body_reads_is_not_kept_alive_for_the_loop(monkeypatch):
    """The gradient loop is handed the hoisted input product (a sequence of the
    forward loop) but its body never reads it: the buffer planner frees it after the
    forward loop (the gradient loop's output can take its storage), and the hoisted
    bias is added in place over the product read through its [T, B, N] reshape."""
    plan, got, _ = _lstm_step_plan(monkeypatch, True)
    kept, kept_got, _ = _lstm_step_plan(monkeypatch, False)
    for g, k in zip(got, kept_got):
        np.testing.assert_array_equal(g, k)
    product = 3 * 7 * 4 * 6 * 8                          # [B*T, 4H] float64 bytes
    assert (kept.memory_stats["pooled_bytes"] - plan.memory_stats["pooled_bytes"]
            >= product)
    arrays = {v[0].name: a for v, a in plan._arrays.items() if hasattr(v[0], "name")}
    matmul = [a for name, a in arrays.items() if name.endswith("hoisted/input_matmul0")]
    bias = [a for name, a in arrays.items() if name.endswith("hoisted/input_bias0")]
    assert matmul and bias and np.shares_memory(matmul[0], bias[0])
    # which inputs: the gradient loop's copy of the hoisted product; not the forward
    # loop's product. x, which the body read only through the hoisted product, is not
    # an input of either loop (loop_passes.hoist drops it)
    with fg.Graph().as_default():
        cell = fg.nn.LSTMCell(6, seed=0)
        x = fg.placeholder(fg.float64, (3, 7, 4))
        out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
        grads = fg.gradients(fg.reduce_sum(out), cell.variables)
        from flowgraph import passes
        prog = passes.lower(grads, [], [x], [(3, 7, 4)])
    forward, backward = [n for n in prog.nodes if n.type == "While"]
    shapes = lambda vs: sorted(v[0].shapes[v[1]] for v in vs)  # noqa: E731
    assert shapes(loop_passes.unread_sequences(forward)) == []
    assert (7, 3, 24) in shapes(loop_passes.unread_sequences(backward))
    assert (7, 3, 4) not in shapes(forward.inputs + backward.inputs)


def test_the_weight_gradient_of_both_blocks_is_one_gemm_over_hs_and_xs(monkeypatch):
    """The LSTM weight's gradient, hs^T @ dz for W[:H] and xs^T @ dz for the hoisted
    W[H:], is one GEMM over [hs, xs] (loop_passes.merge_weight_gradient_gemms: the
    unrolled step's shape, which BLAS runs faster than the two blocks), the loop's
    history of h written straight into its window of [hs, xs] (only the x rows are
    copied in); values and gradients equal the reference (float64, 1e-12) and the
    two-GEMM plan's."""
    plan, got, _ = _lstm_step_plan(monkeypatch, True)
    monkeypatch.setattr(loop_passes, "merge_weight_gradient_gemms", lambda prog: prog)
    apart, apart_got, _ = _lstm_step_plan(monkeypatch, True)
    for g, a in zip(got, apart_got):
        np.testing.assert_allclose(g, a, rtol=1e-12, atol=1e-14)

    def weight_gemms(p):
        return [u.shapes[0] for kind, u, _, _ in p._unit_spans
                if kind == "node" and u.type == "MatMul" and u.attrs["transpose_a"]]
    assert weight_gemms(apart) == [(6, 24), (4, 24)]
    assert weight_gemms(plan) == [(10, 24)]
    cat, = [n for n in plan._concat_copies if n.shapes[0] == (7, 3, 10)]
    assert [w[0].type for w, _, _ in plan._concat_copies[cat]] == ["Transpose"]


def test_slice_grads_to_concat_takes_a_sum_deeper_than_the_recursion_limit():
    """An unrolled RNN's weight-gradient sum is a chain of additions as deep as T: the
    pass neither recurses along it (T=400 and above raised RecursionError) nor misses a
    slice-gradient sum at the top of such a graph."""
    import sys
    from flowgraph import passes
    depth = sys.getrecursionlimit() + 200
    with fg.Graph().as_default():
        w = fg.placeholder(fg.float64, (5, 2))
        x = fg.placeholder(fg.float64, (5, 2))
        total = x
        for _ in range(depth):
            total = total + x
        y = (fg.reduce_sum(total * w) + fg.reduce_sum(w[:2] * 3.0)
             + fg.reduce_sum(fg.square(w[2:])))
        gw, = fg.gradients(y, [w])
        prog = passes.lower([total, gw], [], [w, x], [(5, 2), (5, 2)])
    n_adds = sum(n.type == "Add" for n in prog.nodes)
    assert n_adds >= depth
    loop_passes.slice_grads_to_concat(prog)       # (raised RecursionError before)
    with fg.Graph().as_default():
        w = fg.placeholder(fg.float64, (5, 2))
        y = fg.reduce_sum(w[:2] * 3.0) + fg.reduce_sum(fg.square(w[2:]))
        gw, = fg.gradients(y, [w])
        prog = passes.lower([gw], [], [w], [(5, 2)])
    types = {n.type for n in loop_passes.slice_grads_to_concat(prog).nodes}
    assert "Concat" in types and "SliceGrad" not in types


def _body_kinds(loop):
    """The step kinds of a loop's compiled body plan (the one compiled so far)."""
    from flowgraph.explain import step_infos
    plans = list(loop.attrs["body"]._compiled.values())
    assert len(plans) == 1
    return [info.kind for info in step_infos(plans[0])]


def test_a_gru_records_only_the_gate_window_its_gradient_reads():
    """The torch-style GRU's ``h @ U + b`` is read by the backward loop only through
    its third window (``hn``, for ``d(r * hn)/dr``): the forward loop records that
    window, not the whole product, so the bias addition joins the cell's fused kernel
    (one GEMM and one kernel per iteration, as in the unrolled step); the outputs and
    gradients stay those of the unrolled graph."""
    H = 4
    cell = fg.nn.GRUCell(H, seed=0, reset_after=True)
    x = fg.placeholder(fg.float64, (B, None, I))
    out, state = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    steps = fg.unstack(fg.transpose(x, (1, 0, 2)), num=T)
    st, st_state = fg.nn.static_rnn(cell, steps, dtype=fg.float64)
    w = np.random.default_rng(2).normal(size=(B, T, H))
    wrt = [x] + list(cell.variables)
    got = [out, state] + fg.gradients(fg.reduce_sum(out * w) + fg.reduce_sum(
        fg.square(state)), wrt)
    st = fg.transpose(fg.stack(st), (1, 0, 2))
    want = [st, st_state] + fg.gradients(fg.reduce_sum(st * w) + fg.reduce_sum(
        fg.square(st_state)), wrt)
    forward = _loops()[0]
    recorded = forward.attrs["recorded"]
    # the sigmoids r, z and the tanh n, and of the product only hn (B, H), not (B, 3H)
    products = [t for t in recorded if t.op.type not in ("Sigmoid", "Tanh")]
    assert [tuple(t.shape) for t in products] == [(B, H)], recorded
    feed = {x: np.random.default_rng(1).normal(size=(B, T, I))}
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    reference = fg.Session(config=fg.SessionConfig(optimize=False))
    _close(sess.run(got, feed), reference.run(want, feed))
    _close(reference.run(got, feed), reference.run(want, feed))
    assert _body_kinds(forward) == ["gemm", "fused kernel"]


def _gru_backward(split, monkeypatch):
    """A torch-style GRU through dynamic_rnn (the initial state fed, so that its
    gradient, the backward loop's final value, is read) against static_rnn: the
    gradient loop, and the dynamic and static fetches (outputs, state, gradients)."""
    monkeypatch.setattr(loop_passes, "SPLIT_CARRIED_SUMS", split)
    H = 4
    cell = fg.nn.GRUCell(H, seed=0, reset_after=True)
    x = fg.placeholder(fg.float64, (B, None, I))
    h0 = fg.placeholder(fg.float64, (B, H))
    out, state = fg.nn.dynamic_rnn(cell, x, initial_state=h0)
    steps = fg.unstack(fg.transpose(x, (1, 0, 2)), num=T)
    st, st_state = fg.nn.static_rnn(cell, steps, initial_state=h0)
    st = fg.transpose(fg.stack(st), (1, 0, 2))
    w = np.random.default_rng(2).normal(size=(B, T, H))
    wrt = [x, h0] + list(cell.variables)

    def fetches(o, s):
        return [o, s] + fg.gradients(fg.reduce_sum(o * w) + fg.reduce_sum(fg.square(s)), wrt)
    got, want = fetches(out, state), fetches(st, st_state)
    rng = np.random.default_rng(1)
    feed = {x: rng.normal(size=(B, T, I)), h0: rng.normal(size=(B, H))}
    return _loops()[1], got, want, feed


@pytest.mark.parametrize("split", [True, False], ids=["split", "plain"])
def test_the_gru_backward_loop_carries_the_state_gradient_as_its_two_terms(split,
                                                                         monkeypatch):
    """The GRU's state gradient is ``z * dh + dgh @ U.T``: the backward loop carries
    the two terms apart (loop_passes.split_carried_sums) and the next iteration adds
    them in its fused cell kernel, so an iteration is one fused kernel and one GEMM
    (the unrolled step's), not a third kernel for the sum after the GEMM. Outputs and
    gradients (the initial state's too: the two terms added after the loop) equal the
    unrolled graph's on both paths."""
    backward, got, want, feed = _gru_backward(split, monkeypatch)
    forward = _loops()[0]
    assert backward.attrs["n_vars"] == forward.attrs["n_vars"] + split
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    reference = fg.Session(config=fg.SessionConfig(optimize=False))
    _close(sess.run(got, feed), reference.run(want, feed))
    _close(reference.run(got, feed), reference.run(want, feed))
    kinds = _body_kinds(backward)
    if split:
        assert kinds == ["fused kernel", "gemm"], kinds
    else:   # the sum is a kernel of its own after the GEMM
        assert kinds == ["fused kernel", "gemm", "fused kernel"], kinds


def test_second_order_gradients_through_a_loop_carrying_two_terms():
    """A body whose new state is an elementwise term plus a matrix product: its
    backward loop carries the gradient as two terms, and that loop is differentiated
    again (a gradient of a gradient), checked against finite differences."""
    from flowgraph.testing import check_gradients
    rng = np.random.default_rng(0)
    xs = fg.placeholder(fg.float64, (4, 2, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    h0 = fg.placeholder(fg.float64, (2, 3))
    feed = {xs: rng.normal(size=(4, 2, 3)), w: rng.normal(size=(3, 3)) * 0.5,
            h0: rng.normal(size=(2, 3))}
    ys = fg.scan(lambda h, x: fg.tanh(x) * h + fg.matmul(h, w), xs, initializer=h0)
    g = fg.gradients(fg.reduce_sum(ys * ys), [w, h0])
    assert _loops()[1].attrs["n_vars"] == 2          # the state gradient, split
    for optimize in (True, False):
        cfg = fg.SessionConfig(optimize=optimize)
        assert check_gradients(g[0], [xs, w, h0], feed, config=cfg) < 1e-6
        assert check_gradients(g[1], [xs, w, h0], feed, config=cfg) < 1e-6
