"""Row binding (flowgraph.loop_rows): a counted loop's body reads its sequence rows and
writes its emitted rows in place, through steps built per row. Every result equals the
copying loop's and the unrolled reference's, in every compile mode; the binding is
checked to have happened (and not to, where it must not)."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import loop_rows

CELLS = {
    "rnn": lambda: fg.nn.BasicRNNCell(5, seed=0),
    "lstm": lambda: fg.nn.LSTMCell(5, seed=0),
    "gru": lambda: fg.nn.GRUCell(5, seed=0),
}
B, T, I = 3, 6, 4


def _close(got, want, tol=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _counted(sess):
    """The counted loops of the session's compiled plans."""
    return [step.counted for plan in sess._plans.values() for step in plan._steps
            if getattr(step, "counted", None) is not None]


def _model(kind):
    """dynamic_rnn's outputs, final state and gradients (input and every weight), and
    the same through static_rnn (the unrolled reference)."""
    cell = CELLS[kind]()
    x = fg.placeholder(fg.float64, (None, None, I))
    out, state = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    st, st_state = fg.nn.static_rnn(cell, fg.unstack(fg.transpose(x, (1, 0, 2)), num=T),
                                    dtype=fg.float64)
    st = fg.transpose(fg.stack(st), (1, 0, 2))
    w = np.random.default_rng(2).normal(size=(B, T, cell.output_size))

    def loss(o, s):
        return fg.reduce_sum(o * w) + fg.add_n(
            [fg.reduce_sum(fg.square(v)) for v in fg.nn.flatten_state(s)])

    wrt = [x] + list(cell.variables)
    got = [out] + fg.nn.flatten_state(state) + fg.gradients(loss(out, state), wrt)
    want = [st] + fg.nn.flatten_state(st_state) + fg.gradients(loss(st, st_state), wrt)
    return x, got, want


@pytest.mark.parametrize("mode", ["eager", "never"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_row_bound_loops_equal_the_copying_loop_and_the_reference(kind, mode, monkeypatch):
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    results = {}
    for bind in (True, False):
        monkeypatch.setattr(loop_rows, "ENABLED", bind)
        with fg.Graph().as_default() as graph:
            x, got, want = _model(kind)
            reference = fg.Session(graph, fg.SessionConfig(optimize=False)).run(
                want, {x: x_val})
            sess = fg.Session(graph, fg.SessionConfig(compile=mode))
            results[bind] = sess.run(got, {x: x_val})
            again = sess.run(got, {x: x_val})      # the bound rows, run again
            _close(results[bind], reference)
            _close(again, results[bind], 0)
            loops = _counted(sess)
            assert len(loops) == 2                   # the forward and backward loops
            bound = [c.bound for c in loops]
            if bind:
                # the forward loop reads the hoisted input product's rows in place,
                # the backward loop the forward loop's emits; the gated cells'
                # backward loops write their gate gradients' rows in place
                assert all(seqs >= 1 for seqs, _ in bound), bound
                assert kind == "rnn" or bound[1][1] >= 1, bound
                for c in loops:        # per row, its own steps (not the plan's)
                    steps = [row for _, row, _ in c._rows]
                    assert len({id(s) for s in steps}) == len(steps) == T
                    assert all(s != tuple(c.plan._steps) for s in steps)
            else:
                assert bound == [(0, 0), (0, 0)]
    _close(results[True], results[False])


def test_a_new_length_binds_new_rows_on_the_same_body():
    x = fg.placeholder(fg.float32, (None, 2, 3))
    cell = fg.nn.LSTMCell(4, seed=0)
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float32, time_major=True)
    grads = fg.gradients(fg.reduce_sum(fg.square(out)), cell.variables)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    ref = fg.Session(config=fg.SessionConfig(optimize=False))
    rng = np.random.default_rng(0)
    for t in (7, 2, 7, 1):
        feed = {x: rng.normal(size=(t, 2, 3)).astype(np.float32)}
        _close(sess.run([out] + grads, feed), ref.run([out] + grads, feed), 1e-5)
    bodies = [op.attrs["body"] for op in fg.get_default_graph().operations
              if op.type == "While"]
    assert all(len(b._compiled) == 1 for b in bodies)   # one body plan per loop
    assert all(c.bound[0] >= 1 for c in _counted(sess))


def test_background_compile_binds_rows_once_the_kernels_are_in():
    x = fg.placeholder(fg.float64, (None, 2, 3))
    cell = fg.nn.GRUCell(4, seed=0)
    out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64, time_major=True)
    grads = fg.gradients(fg.reduce_sum(fg.square(out)), cell.variables)
    feed = {x: np.random.default_rng(0).normal(size=(5, 2, 3))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run([out] + grads, feed)
    sess = fg.Session(config=fg.SessionConfig(compile="background"))
    _close(sess.run([out] + grads, feed), want)
    assert sess.wait_compiled(timeout=600)
    _close(sess.run([out] + grads, feed), want)      # with the compiled kernels
    loops = _counted(sess)
    assert loops and all(loop_rows.kernels_final(c.plan) for c in loops)
    assert all(c._rows_key[1] and c.bound[0] >= 1 for c in loops)


def test_check_numerics_and_overlong_loops_keep_the_copies(monkeypatch):
    xs = fg.placeholder(fg.float64, (None, 3))
    ys = fg.scan(lambda acc, x: fg.tanh(acc * 0.5 + x) * 2.0, xs,
                 initializer=fg.zeros((3,), fg.float64))
    feed = {xs: np.random.default_rng(0).normal(size=(4, 3))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(ys, feed)
    checked = fg.Session(config=fg.SessionConfig(check_numerics=True))
    _close(checked.run(ys, feed), want)
    assert [c.bound for c in _counted(checked)] == [(0, 0)]
    monkeypatch.setattr(loop_rows, "MAX_BOUND_STEPS", 1)
    long = fg.Session()
    _close(long.run(ys, feed), want)
    assert [c.bound for c in _counted(long)] == [(0, 0)]
    monkeypatch.setattr(loop_rows, "MAX_BOUND_STEPS", 10 ** 6)
    fresh = fg.Session()
    _close(fresh.run(ys, feed), want)
    assert [c.bound for c in _counted(fresh)] == [(1, 0)]   # xs rows read in place


def test_check_numerics_checks_only_the_loop_outputs_it_writes():
    """A loop writes only the outputs something reads (``mark_live_outputs``); what
    check_numerics checks after it must be those, not the stale contents of the
    others' buffers (their storage is pooled: a NaN left there by an earlier run or
    another value failed the run at random)."""
    xs = fg.placeholder(fg.float64, (None, 3))
    ys = fg.scan(lambda acc, x: fg.tanh(acc * 0.5 + x) * 2.0, xs,
                 initializer=fg.zeros((3,), fg.float64))
    feed = {xs: np.random.default_rng(0).normal(size=(4, 3))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(ys, feed)
    checked = fg.Session(config=fg.SessionConfig(check_numerics=True, compile="eager"))
    _close(checked.run(ys, feed), want)
    plan, = checked._plans.values()
    loop, = [n for n in plan._unit_spans if n[0] == "node" and n[1].type == "While"]
    live = loop[1].attrs["_live"]
    assert not all(live)              # (else this test checks nothing)
    for k, is_live in enumerate(live):
        v = (loop[1], k)
        if (not is_live and plan._kinds.get(v) == "buffer"
                and plan._arrays[v].dtype.kind == "f"):
            plan._arrays[v][...] = np.nan     # what an unwritten buffer may hold
    _close(checked.run(ys, feed), want)


def test_what_may_not_be_bound_is_left_to_copies():
    """An emit that is also the carried value (scan's accumulator) is not bound: its
    buffer is the one the next iteration reads. An emit with a view cut from it is
    not bound either."""
    xs = fg.placeholder(fg.float64, (None, 2, 2))

    def step(acc, x):
        y = fg.tanh(x + acc[0])
        return (y, fg.reshape(y * 3.0, (4,)))

    ys = fg.scan(step, xs, initializer=(fg.zeros((2, 2), fg.float64),
                                        fg.zeros((4,), fg.float64)))
    feed = {xs: np.random.default_rng(0).normal(size=(3, 2, 2))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(list(ys), feed)
    sess = fg.Session()
    _close(sess.run(list(ys), feed), want)
    counted, = _counted(sess)
    plan = counted.plan
    feeds, fetches = loop_rows.bindable(plan, counted.seq_feeds, counted.emit_fetch)
    assert feeds == counted.seq_feeds          # the x rows
    for k in fetches:                          # no bound emit is a carried value
        v = plan._fetch_values[k]
        assert not any(np.shares_memory(plan._arrays[v], buf)
                       for buf, _ in plan._feed_loads)
    assert counted.bound[1] == len(fetches)


def test_a_sequence_row_fetched_through_a_view_keeps_its_copy():
    """The backward loop of ``tanh(reshape(h @ w) + x)`` emits a reshaped row of its
    sequence of h's (for w's gradient): that sequence is loaded by copy, as the emit is
    copied out of the plan's buffer; everything else is bound."""
    rng = np.random.default_rng(0)
    xs = fg.placeholder(fg.float64, (5, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    h0 = fg.placeholder(fg.float64, (3,))
    feed = {xs: rng.normal(size=(5, 3)), w: rng.normal(size=(3, 3)) * 0.5,
            h0: rng.normal(size=3)}

    def step(h, x):
        return fg.tanh(fg.reshape(fg.matmul(fg.reshape(h, (1, 3)), w), (3,)) + x)

    ys = fg.scan(step, xs, initializer=h0)
    g = fg.gradients(fg.reduce_sum(ys * np.arange(15.0).reshape(5, 3)), [xs, w, h0])
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(g, feed)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess.run(g, feed), want)
    forward, backward = _counted(sess)
    plan = backward.plan
    fetched = set(plan._fetch_values)
    cut = loop_rows._cut_from(plan)
    feeds, _ = loop_rows.bindable(plan, backward.seq_feeds, backward.emit_fetch)
    viewed = [t for t in backward.seq_feeds
              if any(w in fetched for w in cut.get(plan._feed_values[t], ()))]
    assert viewed and not set(viewed) & set(feeds)
    assert forward.bound[0] == 1 and backward.bound[0] == len(feeds) >= 1


def test_scalar_rows_are_bound_as_views_of_their_sequence():
    """Rows of a 1-D sequence are 0-d: bound as views (``s[t, ...]``), not as copied
    scalars (``s[t]``), in the forward loop and in the backward loop's sequence of
    gradients."""
    xs = fg.placeholder(fg.float64, (None,))
    ys = fg.scan(lambda acc, x: acc * 0.5 + fg.tanh(x) * 2.0, xs,
                 initializer=fg.constant(0.0, fg.float64))
    weights = np.arange(1.0, 6.0)
    g, = fg.gradients(fg.reduce_sum(ys * weights), [xs])
    feed = {xs: np.random.default_rng(0).normal(size=5)}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run([ys, g], feed)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess.run([ys, g], feed), want)
    _close(sess.run([ys, g], feed), want)
    loops = _counted(sess)
    assert len(loops) == 2 and all(c.bound[0] >= 1 for c in loops), [c.bound for c in loops]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_captured_weights_are_read_in_place(kind, monkeypatch):
    """The loops' captured weights in C order (the forward loop's recurrent weight)
    are read where the outer plan keeps them: no copy per run; so is the backward
    loop's transposed one, which the outer plan copies into C order once per run
    (loop_passes.untranspose_loop_inputs: the tiled transpose kernel; its GEMM reads
    a C-order copy faster than the transposed view). Results equal the copying
    loop's bitwise and the reference; a new weight value is seen by the next run."""
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    results = {}
    for by_ref in (True, False):
        if not by_ref:
            monkeypatch.setattr(loop_rows, "bindable_captures", lambda *a: [])
        with fg.Graph().as_default() as graph:
            x, got, want = _model(kind)
            variables = graph.get_collection("variables")
            assert variables
            ref = fg.Session(graph, fg.SessionConfig(optimize=False))
            sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
            first = sess.run(got, {x: x_val})
            _close(first, ref.run(want, {x: x_val}))
            _close(sess.run(got, {x: x_val}), first, 0)     # the flat path, again
            loops = _counted(sess)
            assert len(loops) == 2 and all(c._final_n == T for c in loops)
            if by_ref:
                forward, backward = loops
                assert forward.bound_caps, forward.bound_caps
                for c in loops:     # in place: C order only
                    assert all(c.cap_loads[i][1].flags.c_contiguous
                               for i in c.bound_caps)
                # the transposed weight too: in C order, read in place
                assert all(outer.flags.c_contiguous for _, outer in backward.cap_loads)
                assert len(backward.bound_caps) == len(backward.cap_loads) > 0
            else:
                assert all(c.bound_caps == () for c in loops)
            for c in loops:     # the start copies only what is not read in place
                assert len(c._start) == c.attrs["n_vars"] + len(c.cap_loads) - len(
                    c.bound_caps)
            # new weights: read by the next run through the same bound steps
            for v in variables:
                sess.run(v.assign(v.value() * 0.5 + 0.1))
                ref.run(v.assign(v.value() * 0.5 + 0.1))
            results[by_ref] = sess.run(got, {x: x_val})
            _close(results[by_ref], ref.run(want, {x: x_val}))
    _close(results[True], results[False], 0)


def test_a_capture_laid_out_otherwise_is_copied(monkeypatch):
    """A transposed (Fortran-order) captured value read by an elementwise kernel is
    not read in place (the kernel was compiled for the buffer's C order): copied.
    (The compiler hands a loop its transposed inputs in C order,
    loop_passes.untranspose_loop_inputs: turned off here to get one.)"""
    from flowgraph import loop_passes
    monkeypatch.setattr(loop_passes, "untranspose_loop_inputs", lambda prog: prog)
    xs = fg.placeholder(fg.float64, (None, 3, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    wt = fg.transpose(w * 2.0, (1, 0))
    ys = fg.scan(lambda acc, x: fg.tanh(acc * wt + x), xs,
                 initializer=fg.zeros((3, 3), fg.float64))
    rng = np.random.default_rng(0)
    feed = {xs: rng.normal(size=(4, 3, 3)), w: rng.normal(size=(3, 3))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(ys, feed)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess.run(ys, feed), want)
    counted, = _counted(sess)
    caps = [c for _, c in counted.cap_loads]
    assert caps and not any(c.flags.c_contiguous for c in caps)   # (what is tested)
    assert counted.bound_caps == () and counted.bound[0] == 1
    feed[w] = rng.normal(size=(3, 3))
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(ys, feed)
    _close(sess.run(ys, feed), want)


def test_an_emit_written_in_place_over_its_product_is_bound_with_it(monkeypatch):
    """The GRU's ``h @ U + b`` is written in place over the product and emitted (the
    backward loop reads it): the product and the sum are bound to the same row, the
    product written there and the sum added in place, as in the plan. Equal to the
    copying loop bitwise and to the reference."""
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    results = {}
    for bind in (True, False):
        monkeypatch.setattr(loop_rows, "ENABLED", bind)
        with fg.Graph().as_default() as graph:
            x, got, want = _model("gru")
            reference = fg.Session(graph, fg.SessionConfig(optimize=False)).run(
                want, {x: x_val})
            sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
            results[bind] = sess.run(got, {x: x_val})
            _close(results[bind], reference)
            _close(sess.run(got, {x: x_val}), results[bind], 0)
            if bind:
                forward = _counted(sess)[0]
                plan = forward.plan
                _, fetches = loop_rows.bindable(plan, forward.seq_feeds, forward.emit_fetch)
                chained = [k for k in fetches
                           if loop_rows.in_place_chain(plan, plan._fetch_values[k])]
                assert chained and forward.bound[1] == len(fetches)
    _close(results[True], results[False], 0)


def test_a_capture_inside_a_sequence_keeps_its_copy():
    """A captured value that is a view of the loop's own sequence (``xs[0]``) is not
    read in place: the per-row kernel's arguments cut from the sequence are moved row
    by row, and the capture would move with them."""
    xs = fg.placeholder(fg.float64, (None, 3))
    first = xs[0]
    ys = fg.scan(lambda acc, x: fg.tanh(acc * 0.5 + x * first), xs,
                 initializer=fg.zeros((3,), fg.float64))
    feed = {xs: np.random.default_rng(0).normal(size=(5, 3))}
    want = fg.Session(config=fg.SessionConfig(optimize=False)).run(ys, feed)
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess.run(ys, feed), want)
    _close(sess.run(ys, feed), want)
    counted, = _counted(sess)
    assert counted.bound[0] == 1 and counted.bound_caps == ()


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "unbound"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_the_last_iteration_skips_what_only_unread_final_values_need(kind, bound,
                                                                   monkeypatch):
    """The gradient loop's last new dh (the gradient with respect to the initial
    state, which nothing reads) is not computed: its last row runs fewer steps (the
    GEMM ``dz @ W[:H].T`` and what only feeds it), rows bound or not. The forward
    loop, whose final state is fetched, runs every step on its last row. Results
    equal the reference, on the first run and on the flat one."""
    if not bound:
        monkeypatch.setattr(loop_rows, "bindable", lambda plan, feeds, fetches: ([], []))
        monkeypatch.setattr(loop_rows, "bindable_captures", lambda *a: [])
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    with fg.Graph().as_default() as graph:
        x, got, want = _model(kind)
        reference = fg.Session(graph, fg.SessionConfig(optimize=False)).run(
            want, {x: x_val})
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        _close(sess.run(got, {x: x_val}), reference)
        _close(sess.run(got, {x: x_val}), reference)          # the flat path
        forward, backward = _counted(sess)
        assert backward.bound[0] > 0 if bound else backward.bound == (0, 0)
        rows = [len(steps) for _, steps, _ in backward._rows]
        assert rows[-1] < rows[0] and rows[:-1] == [rows[0]] * (T - 1), rows
        assert forward.last_needed[:forward.attrs["n_vars"]] == list(
            range(forward.attrs["n_vars"]))                   # (its final state is read)
        rows = [len(steps) for _, steps, _ in forward._rows]
        assert rows == [rows[0]] * T, rows


def test_dead_units_keep_what_needed_values_read():
    """dead_units walks back from the needed fetches: the units only an unneeded
    fetch reads are dead on the last row, the others (and what they read) are not."""
    xs = fg.placeholder(fg.float64, (None, 2, 2))
    w = fg.placeholder(fg.float64, (2, 2))

    def body(acc, x):
        a, b = acc
        return fg.tanh(a + x), fg.matmul(b, w) + 1.0

    ys_a, ys_b = fg.scan(body, xs, initializer=(fg.zeros((2, 2), fg.float64),
                                                fg.ones((2, 2), fg.float64)))
    rng = np.random.default_rng(0)
    feed = {xs: rng.normal(size=(4, 2, 2)), w: rng.normal(size=(2, 2))}
    ref = fg.Session(config=fg.SessionConfig(optimize=False))
    sess = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess.run(ys_a, feed), ref.run(ys_a, feed))
    _close(sess.run(ys_a, feed), ref.run(ys_a, feed))         # the flat path
    counted, = _counted(sess)
    plan = counted.plan
    assert loop_rows.dead_units(plan, range(len(plan._fetch_values))) == set()
    # only a's rows read: b's product and its + 1 feed b's new value alone
    dead = loop_rows.dead_units(plan, counted.last_needed)
    assert dead and all(plan._unit_spans[j][0] in ("group", "node") for j in dead)
    assert any(plan._unit_spans[j][1].type == "MatMul" for j in dead
               if plan._unit_spans[j][0] == "node")
    rows = [len(steps) for _, steps, _ in counted._rows]
    assert rows[-1] < rows[0], rows
    # b's rows read too: every step runs on the last row
    sess2 = fg.Session(config=fg.SessionConfig(compile="eager"))
    _close(sess2.run([ys_a, ys_b], feed), ref.run([ys_a, ys_b], feed))
    counted, = _counted(sess2)
    rows = [len(steps) for _, steps, _ in counted._rows]
    assert rows == [rows[0]] * len(rows), rows


@pytest.mark.parametrize("stacked_overlap", [False, True])
def test_a_row_whose_arguments_overlap_unlike_the_first_rows_gets_its_own_kernel(
        stacked_overlap, monkeypatch):
    """A kernel prepared on the first row's arguments may promise LLVM that what it
    writes overlaps nothing else (kernels.cpu.noalias); a later row's moved arguments
    are bound to it only if they overlap as the first row's did. That can change only
    where two stacked arrays share memory (else no row is checked); made so here, and
    the overlaps never to match: every row prepares its own kernels, and the results
    are the reference's."""
    from kernels.cpu import codegen
    prepared, patterns = [], []
    kernel = loop_rows._kernel

    def counted(plan, group, arrays):
        prepared.append(group)
        return kernel(plan, group, arrays)

    def never_alike(args):
        patterns.append(args)
        return object()
    monkeypatch.setattr(loop_rows, "_kernel", counted)
    monkeypatch.setattr(codegen, "overlap_pattern", never_alike)
    if stacked_overlap:
        monkeypatch.setattr(loop_rows, "_stacked_overlap", lambda stacked: True)
    x_val = np.random.default_rng(1).normal(size=(B, T, I))
    with fg.Graph().as_default() as graph:
        x, got, want = _model("lstm")
        reference = fg.Session(graph, fg.SessionConfig(optimize=False)).run(
            want, {x: x_val})
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        _close(sess.run(got, {x: x_val}), reference)
        assert all(seqs >= 1 for seqs, _ in [c.bound for c in _counted(sess)])
    kinds = len(set(prepared))
    if stacked_overlap:    # every per-row kernel prepared on every row
        assert prepared and len(prepared) == T * kinds
    else:                  # once per loop, and no row checked
        assert prepared and len(prepared) == kinds and len(patterns) == kinds
