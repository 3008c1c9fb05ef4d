"""push_gathers_through_matmuls: ``[h, E[ids]] @ K`` becomes ``h @ K_h + (E @ K_x)[ids]``
where the table has fewer rows than are gathered, and the compiled values stay those
of the reference path."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import loop_passes, passes as P
from reference_runs import OPT, REF, run_both


def char_inputs(vocab, embed, hidden, batch, steps, seed):
    """The char models' inputs: ids and labels ``[batch, steps]``, the embedding table,
    the LSTM cell and its fed initial state: ``(x, y, table, cell, state_in)``."""
    rng = np.random.default_rng(seed)
    x = fg.placeholder(fg.int32, (batch, steps), name="x")
    y = fg.placeholder(fg.int32, (batch, steps), name="y")
    table = fg.Variable(rng.uniform(-1, 1, (vocab, embed)), name="embedding")
    cell = fg.nn.LSTMCell(hidden, seed=seed + 1)
    state_in = fg.nn.state_placeholders(cell, batch, fg.float64, name="state_in")
    return x, y, table, cell, state_in


def char_readout_loss(vocab, rows, y, table, cell, seed):
    """The char models' readout of the time-major output ``rows`` and its mean
    cross-entropy against the labels ``y``: ``(loss, variables)``."""
    readout = fg.nn.Dense(vocab, seed=seed + 2)
    logits = readout(rows)
    ce = fg.nn.sparse_softmax_cross_entropy_with_logits(
        labels=fg.reshape(fg.transpose(y), (-1,)), logits=logits)
    loss = fg.reduce_mean(ce)
    return loss, [table, cell.kernel, cell.bias, readout.kernel, readout.bias]


def char_model(vocab, embed=3, hidden=4, batch=3, steps=4, seed=0):
    """An embedding, an unrolled LSTM (its initial state fed, as
    benchmarks/programs.py's char model), a readout: (loss, gradients, feeds (ids,
    labels, state), variables, outputs)."""
    x, y, table, cell, state_in = char_inputs(vocab, embed, hidden, batch, steps, seed)
    inputs = fg.unstack(fg.nn.embedding_lookup(table, x), axis=1)
    outputs, state = fg.nn.static_rnn(cell, inputs, initial_state=state_in)
    loss, variables = char_readout_loss(vocab, fg.concat(outputs, axis=0), y, table, cell,
                                        seed)
    return (loss, fg.gradients(loss, variables),
            (x, y) + tuple(fg.nn.flatten_state(state_in)), variables, outputs)


def optimized(fetches, feeds):
    """The program the compiler plans (flowgraph.compiler.compile_plan's passes)."""
    prog = P.lower(list(fetches), [], list(feeds), [f.shape for f in feeds])
    return loop_passes.run(P.run_pipeline(loop_passes.before(prog)))


def matmul_inner(n):
    a = n.inputs[0][0].shapes[n.inputs[0][1]]
    return a[0] if n.attrs["transpose_a"] else a[1]


def test_per_step_products_lose_the_embedding_columns():
    with fg.Graph().as_default():
        loss, grads, feeds, _, outputs = char_model(vocab=5)      # 12 rows > 5
        prog = optimized([loss] + outputs, feeds)
    forward = [n for n in prog.nodes if n.type == "MatMul" and n.shapes[0] == (3, 16)
               and not n.attrs["transpose_b"]]
    assert len(forward) == 4 and all(matmul_inner(n) == 4 for n in forward)  # h only
    table_products = [n for n in prog.nodes if n.type == "MatMul" and n.shapes[0] == (5, 16)]
    assert len(table_products) == 1 and matmul_inner(table_products[0]) == 3
    gathers = [n.shapes[0] for n in prog.nodes if n.type == "Gather"]
    # the table product's rows, gathered once, time-major (each step's rows one block)
    assert (4, 3, 16) in gathers


def test_left_alone_when_the_table_has_as_many_rows_as_are_gathered():
    for vocab in (12, 40):
        with fg.Graph().as_default():
            loss, _, feeds, _, outputs = char_model(vocab=vocab)
            prog = optimized([loss] + outputs, feeds)
        forward = [n for n in prog.nodes if n.type == "MatMul" and n.shapes[0] == (3, 16)
                   and not n.attrs["transpose_b"]]
        assert len(forward) == 4 and all(matmul_inner(n) == 7 for n in forward)
        assert not any(n.type == "MatMul" and n.shapes[0] == (vocab, 16) for n in prog.nodes)


@pytest.mark.parametrize("ids", ["duplicates", "shuffled"])
def test_values_and_gradients_equal_the_reference(ids):
    rng = np.random.default_rng(7)
    if ids == "duplicates":         # a few ids, each many times
        xv = np.array([[1, 1, 4, 1], [4, 4, 1, 1], [0, 1, 1, 4]], np.int32)
    else:                           # every id, out of order
        xv = rng.permutation(np.arange(12) % 5).reshape(3, 4).astype(np.int32)
    yv = rng.integers(0, 5, (3, 4)).astype(np.int32)
    with fg.Graph().as_default():
        loss, grads, (x, y, c, h), _, outputs = char_model(vocab=5)
        ref, opt = run_both([loss] + outputs + grads, {
            x: xv, y: yv, c: rng.normal(size=(3, 4)), h: rng.normal(size=(3, 4))})
    for a, b in zip(ref, opt):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    assert np.abs(ref[-5]).max() > 1e-3       # the embedding's gradient is not zero


def test_a_zero_initial_state_step_is_all_gathered():
    """With a zero initial state the first step's product is ``x_0 @ K[h:]`` alone
    (:func:`flowgraph.passes.drop_zero_products`): it shares the others' table
    product, and is nothing but gathered rows."""
    rng = np.random.default_rng(2)
    with fg.Graph().as_default():
        x = fg.placeholder(fg.int32, (3, 4))
        table = fg.Variable(rng.normal(size=(5, 3)))
        cell = fg.nn.LSTMCell(4, seed=1)
        outputs, _ = fg.nn.static_rnn(cell, fg.unstack(fg.nn.embedding_lookup(table, x),
                                                       axis=1), dtype=fg.float64)
        prog = optimized(outputs, [x])
        assert sorted(matmul_inner(n) for n in prog.nodes if n.type == "MatMul") == \
            [3, 4, 4, 4]
        grads = fg.gradients(fg.reduce_sum(fg.concat(outputs, 0) ** 2),
                             [table, cell.kernel, cell.bias])
        ref, opt = run_both(outputs + grads, {x: rng.integers(0, 5, (3, 4)).astype(np.int32)})
    for a, b in zip(ref, opt):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_a_plain_product_of_gathered_rows_and_a_column_slice():
    """``reshape(E[ids]) @ W`` (no concatenation: the whole product is gathered) and
    ``[E[ids][:, t], h] @ W`` (the gathered block first, a strided slice of it)."""
    rng = np.random.default_rng(3)
    with fg.Graph().as_default():
        ids = fg.placeholder(fg.int32, (4, 3))
        h = fg.placeholder(fg.float64, (4, 2))
        table = fg.Variable(rng.normal(size=(6, 5)))
        w = fg.Variable(rng.normal(size=(5, 7)))
        k = fg.Variable(rng.normal(size=(7, 3)))
        looked = fg.nn.embedding_lookup(table, ids)
        plain = fg.matmul(fg.reshape(looked, (12, 5)), w)
        # (h computed, one per step: products of a feed would be batched into one)
        steps = [fg.matmul(fg.concat([looked[:, t], fg.tanh(h * (t + 1.0))], axis=1), k)
                 for t in range(3)]
        fetches = [plain] + steps
        prog = optimized(fetches, [ids, h])
        inner = sorted(matmul_inner(n) for n in prog.nodes if n.type == "MatMul")
        assert inner == [2, 2, 2, 5, 5]       # the h blocks, the two table products
        grads = fg.gradients(fg.reduce_sum(plain ** 2) + sum(fg.reduce_sum(s ** 3)
                                                             for s in steps), [table, w, k])
        feed = {ids: np.array([[5, 0, 5], [2, 2, 0], [1, 5, 3], [0, 0, 4]], np.int32),
                h: rng.normal(size=(4, 2))}
        ref, opt = run_both(fetches + grads, feed)
    for a, b in zip(ref, opt):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_out_of_range_ids_still_raise():
    with fg.Graph().as_default():
        loss, _, (x, y, c, h), _, _ = char_model(vocab=5)
        with fg.Session(config=OPT) as sess:
            with pytest.raises(fg.errors.InvalidArgumentError):
                sess.run(loss, {x: np.full((3, 4), 5, np.int32),
                                y: np.zeros((3, 4), np.int32),
                                c: np.zeros((3, 4)), h: np.zeros((3, 4))})


def test_gradients_come_from_one_scatter_of_the_gate_gradients():
    """``push_gathers_into_gradients``: the embedding's gradient is ``S @ K_x.T`` and the
    kernel's embedding rows ``E.T @ S`` with ``S`` one scatter of the stacked gate
    gradients into the table's 5 rows; no step computes the gradient of its gathered
    rows, and the stacked weight gradient is ``h``'s rows only."""
    with fg.Graph().as_default():
        loss, grads, feeds, _, _ = char_model(vocab=5)
        prog = optimized([loss] + grads, feeds)
    scatters = [n for n in prog.nodes if n.type == "GatherGrad"]
    assert [n.shapes[0] for n in scatters] == [(5, 16)]
    per_step = [n for n in prog.nodes if n.type == "MatMul" and n.attrs["transpose_b"]
                and n.shapes[0][0] == 3]
    assert len(per_step) == 3 and all(n.shapes[0] == (3, 4) for n in per_step)  # dh only
    stacked = sorted(n.shapes[0] for n in prog.nodes if n.type == "MatMul"
                     and n.attrs["transpose_a"] and n.shapes[0][1] == 16)
    assert stacked == [(3, 16), (4, 16)]     # E.T @ S, and h's rows of the stacking
    assert not any(n.type == "ReduceSum" and n.inputs[0][0].shapes[n.inputs[0][1]]
                   == (12, 16) for n in prog.nodes)   # the bias gradient: sum(S, 0)


def test_gradients_left_alone_when_the_table_has_as_many_rows_as_are_gathered():
    with fg.Graph().as_default():
        loss, grads, feeds, _, _ = char_model(vocab=12)
        prog = optimized([loss] + grads, feeds)
    assert [n.shapes[0] for n in prog.nodes if n.type == "GatherGrad"] == [(12, 3)]
    # the kernel's gradient: all 7 rows in one GEMM (and the bias's row of ones,
    # fold_column_sums_into_matmuls)
    assert any(n.type == "MatMul" and n.attrs["transpose_a"] and n.shapes[0] == (8, 16)
               for n in prog.nodes)


@pytest.mark.parametrize("vocab", [5, 40])
def test_clipped_adam_training_equals_the_reference(vocab):
    """Training steps (gradients clipped by their global norm, Adam) give the
    reference's weights, where the passes apply (5 rows) and where the gradient stays
    sparse (40 rows: clip_by_global_norm's GatherGradSq)."""
    rng = np.random.default_rng(11)
    batches = [(rng.integers(0, vocab, (3, 4)).astype(np.int32),
                rng.integers(0, vocab, (3, 4)).astype(np.int32)) for _ in range(3)]
    finals = []
    for config in (REF, OPT):
        with fg.Graph().as_default():
            loss, grads, (x, y, c, h), variables, _ = char_model(vocab=vocab)
            clipped, _ = fg.clip_by_global_norm(grads, 0.5)
            train = fg.train.AdamOptimizer(0.05).apply_gradients(zip(clipped, variables))
            with fg.Session(config=config) as sess:
                losses = [sess.run([loss, train], {x: xv, y: yv, c: np.zeros((3, 4)),
                                                   h: np.zeros((3, 4))})[0]
                          for xv, yv in batches]
                finals.append((losses, [sess.run(v) for v in variables]))
    (ref_losses, ref_vars), (opt_losses, opt_vars) = finals
    np.testing.assert_allclose(opt_losses, ref_losses, rtol=1e-10)
    for a, b in zip(ref_vars, opt_vars):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_a_dynamic_rnns_hoisted_input_product():
    """A ``dynamic_rnn``'s hoisted ``X @ W_x`` over the time-major transpose of the
    looked-up rows (a transpose and a reshape of the whole gather): the table product
    is gathered with the indices transposed and reshaped the same way, and the weight's
    embedding rows come from the scatter; values and gradients equal the reference."""
    rng = np.random.default_rng(5)
    with fg.Graph().as_default():
        x = fg.placeholder(fg.int32, (4, 6))
        table = fg.Variable(rng.normal(size=(7, 3)))
        cell = fg.nn.LSTMCell(5, seed=0)
        out, _ = fg.nn.dynamic_rnn(cell, fg.nn.embedding_lookup(table, x),
                                   dtype=fg.float64)
        loss = fg.reduce_sum(out ** 2)
        grads = fg.gradients(loss, [table, cell.kernel, cell.bias])
        prog = optimized([loss] + grads, [x])
        assert any(n.type == "MatMul" and n.shapes[0] == (7, 20) for n in prog.nodes)
        assert any(n.type == "Gather" and n.shapes[0] == (24, 20) for n in prog.nodes)
        assert any(n.type == "GatherGrad" and n.shapes[0] == (7, 20) for n in prog.nodes)
        xv = np.array([[6, 0, 6, 1, 1, 2], [3, 3, 3, 3, 0, 6], [5, 4, 2, 0, 1, 6],
                       [0, 0, 2, 2, 6, 6]], np.int32)
        ref, opt = run_both([loss, out] + grads, {x: xv})
    for a, b in zip(ref, opt):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def char_loop_model(vocab, embed=3, hidden=4, batch=3, steps=4, seed=0, time_major=True,
                    lengths=False):
    """:func:`char_model` with ``fg.nn.dynamic_rnn`` (one symbolic loop, as
    ``examples/char_rnn.py --loop``): time-major (the example's transpose of the
    looked-up rows) or batch-major (dynamic_rnn transposes them), with a fed
    ``sequence_length`` or none. Returns (loss, gradients, feeds (ids, labels, state
    [, lengths]), variables, outputs)."""
    x, y, table, cell, state_in = char_inputs(vocab, embed, hidden, batch, steps, seed)
    lens = fg.placeholder(fg.int32, (batch,), name="lengths") if lengths else None
    looked = fg.nn.embedding_lookup(table, x)
    if time_major:
        out, _ = fg.nn.dynamic_rnn(cell, fg.transpose(looked, (1, 0, 2)),
                                   sequence_length=lens, initial_state=state_in,
                                   time_major=True)
    else:
        out, _ = fg.nn.dynamic_rnn(cell, looked, sequence_length=lens,
                                   initial_state=state_in)
        out = fg.transpose(out, (1, 0, 2))
    loss, variables = char_readout_loss(vocab, fg.reshape(out, (-1, hidden)), y, table,
                                        cell, seed)                # time-major rows
    feeds = (x, y) + tuple(fg.nn.flatten_state(state_in)) + ((lens,) if lengths else ())
    return loss, fg.gradients(loss, variables), feeds, variables, [out]


@pytest.mark.parametrize("time_major", [True, False], ids=["time_major", "batch_major"])
def test_a_dynamic_rnns_gradients_come_from_one_scatter(time_major):
    """As the unrolled model's (test_gradients_come_from_one_scatter_of_the_gate_
    gradients): the embedding's gradient is ``S @ K_x.T`` with ``S`` the one scatter
    of the backward loop's stacked gate gradients, the kernel's embedding rows
    ``E.T @ S``, the bias's ``sum(S, 0)``. The backward loop emits only the gate
    gradients: no zero gradient of the rows it never reads (the hoisted product's
    input), which left the table's gradient a sum no pass saw through, scattered
    apart (reference kernel) from the gathered rows' gradient."""
    with fg.Graph().as_default():
        loss, grads, feeds, _, _ = char_loop_model(vocab=5, time_major=time_major)
        prog = optimized([loss] + grads, feeds)
    assert [n.shapes[0] for n in prog.nodes if n.type == "GatherGrad"] == [(5, 16)]
    (scatter,) = [n for n in prog.nodes if n.type == "GatherGrad"]
    readers = [n for n in prog.nodes if any(v[0] is scatter for v in n.inputs)]
    assert sorted((n.type, n.shapes[0]) for n in readers) == [
        ("MatMul", (3, 16)), ("MatMul", (5, 3)), ("ReduceSum", (16,))]
    backward = [n for n in prog.nodes if n.type == "While" and n.attrs["reverse"]]
    assert len(backward) == 1 and backward[0].attrs["n_emits"] == 1
    assert not any(n.type == "Add" and n.shapes[0][-1:] == (3,) for n in prog.nodes)


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("time_major", [True, False], ids=["time_major", "batch_major"])
@pytest.mark.parametrize("ids", ["duplicates", "shuffled"])
def test_a_dynamic_rnns_values_and_gradients_equal_the_reference(ids, time_major, lengths):
    rng = np.random.default_rng(8)
    if ids == "duplicates":
        xv = np.array([[1, 1, 4, 1], [4, 4, 1, 1], [0, 1, 1, 4]], np.int32)
    else:
        xv = rng.permutation(np.arange(12) % 5).reshape(3, 4).astype(np.int32)
    yv = rng.integers(0, 5, (3, 4)).astype(np.int32)
    with fg.Graph().as_default():
        loss, grads, feeds, _, outputs = char_loop_model(
            vocab=5, time_major=time_major, lengths=lengths)
        feed = dict(zip(feeds, [xv, yv, rng.normal(size=(3, 4)), rng.normal(size=(3, 4)),
                                np.array([4, 1, 3], np.int32)]))
        ref, opt = run_both([loss] + outputs + grads, feed)
    for a, b in zip(ref, opt):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    assert np.abs(ref[-5]).max() > 1e-3       # the embedding's gradient is not zero


def test_the_scatters_indices_are_one_slice_of_the_ids():
    """The unrolled model's stacked gate gradients run from the last step to the
    first: the scatter's index vector is ``ids.T[::-1]`` flattened (one strided slice
    and its copy per run), not a concatenation of one slice per step."""
    with fg.Graph().as_default():
        loss, grads, feeds, _, _ = char_model(vocab=5)
        prog = optimized([loss] + grads, feeds)
    (scatter,) = [n for n in prog.nodes if n.type == "GatherGrad"]
    flat = scatter.inputs[1][0]
    assert flat.type == "Reshape" and flat.shapes[0] == (12,)
    rows = flat.inputs[0][0]
    assert rows.type == "StridedSlice" and rows.shapes[0] == (4, 3)
    assert rows.attrs["spec"][0] == ("slice", 3, None, -1)
    assert rows.inputs[0][0].type == "Transpose" and rows.inputs[0][0].inputs[0][0] is \
        next(n for n in prog.nodes if n.type == "Feed" and n.feed is feeds[0])
    assert not any(n.type == "Concat" and n.dtypes[0].kind == "i" for n in prog.nodes)


def test_a_dynamic_rnns_bias_is_added_to_the_table_product():
    """The hoisted ``X @ W_x + b`` of a ``dynamic_rnn``: ``b`` is added to the table
    product's 5 rows before they are gathered, not to the 12 gathered rows
    (values: test_a_dynamic_rnns_values_and_gradients_equal_the_reference)."""
    with fg.Graph().as_default():
        loss, grads, feeds, (_, _, bias, _, _), _ = char_loop_model(vocab=5)
        prog = optimized([loss] + grads, feeds)
    adds = [n for n in prog.nodes if n.type == "Add"
            and any(v[0].type == "Variable" and v[0].attrs["variable"] is bias
                    for v in n.inputs)]
    assert [n.shapes[0] for n in adds] == [(5, 16)]
    (gather,) = [n for n in prog.nodes if n.type == "Gather" and n.shapes[0] == (12, 16)]
    assert gather.inputs[0][0] is adds[0]
