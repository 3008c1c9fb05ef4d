"""fold_column_sums_into_matmuls: a bias gradient ``sum(dz, 0)`` beside its weight
gradient ``a.T @ dz`` is the last row of ``[a, 1].T @ dz``."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import passes as P

REF = fg.SessionConfig(optimize=False)
OPT = fg.SessionConfig(optimize=True, compile="eager")


def lowered(fetches, feeds):
    return P.lower(list(fetches), [], list(feeds), [f.shape for f in feeds])


def types(prog):
    return [n.type for n in prog.nodes]


def _feeds(tensors, seed=0):
    rng = np.random.default_rng(seed)
    return {t: rng.standard_normal(t.shape).astype(t.dtype.name) for t in tensors}


def test_the_column_sum_is_the_last_row_of_the_widened_product():
    x = fg.placeholder(fg.float64, (6, 3))
    dz = fg.placeholder(fg.float64, (6, 5))
    a = fg.tanh(x)                                   # computed: it can be a window
    weight = fg.matmul(a, dz, transpose_a=True)
    bias = fg.reduce_sum(dz, axis=0)
    prog = P.fold_column_sums_into_matmuls(lowered([weight, bias], [x, dz]))
    assert "ReduceSum" not in types(prog)
    product, = [n for n in prog.nodes if n.type == "MatMul"]
    assert product.shapes == [(4, 5)] and product.attrs["transpose_a"]
    widened = product.inputs[0][0]
    assert widened.type == "Concat" and widened.attrs["axis"] == 1
    assert widened.inputs[0][0].type == "Tanh" and widened.inputs[1][0].type == "Const"
    assert (widened.inputs[1][0].attrs["value"] == 1.0).all()
    slices = [prog.fetches[k][0] for k in range(2)]
    assert [s.type for s in slices] == ["StridedSlice", "StridedSlice"]
    assert [s.shapes for s in slices] == [[(3, 5)], [(5,)]]

    feed = _feeds([x, dz])
    with fg.Session(config=REF) as sess:
        want = sess.run([weight, bias], feed)
    with fg.Session(config=OPT) as sess:
        got = sess.run([weight, bias], feed)
        plan = next(iter(sess._plans.values()))
        # tanh(x) is written straight into its columns; only the ones are copied in
        (cat, copied), = plan._concat_copies.items()
        assert [w[0].type for w, _, _ in copied] == ["Const"]
        assert plan._kinds[cat.inputs[0]] == "window"
        # both results are views of the product's buffer
        assert [kind for v, kind in plan._kinds.items()
                if v[0].type == "StridedSlice"] == ["view", "view"]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_left_alone_where_it_would_cost_a_copy_or_does_not_apply():
    x = fg.placeholder(fg.float64, (6, 3))
    dz = fg.placeholder(fg.float64, (6, 5))
    bias = fg.reduce_sum(dz, axis=0)
    a = fg.tanh(x)
    cases = [
        [fg.matmul(x, dz, transpose_a=True), bias],               # a feed: copied in
        [fg.matmul(a, dz, transpose_a=True), bias, fg.reshape(a, (-1,))],   # a viewed
        [fg.matmul(a, dz, transpose_a=True), fg.reduce_sum(dz, axis=1)],    # rows' sums
        [fg.matmul(a, dz, transpose_a=True), bias, a],             # a fetched
        [fg.matmul(fg.transpose(a), dz), bias],                    # not transpose_a
    ]
    wide = fg.placeholder(fg.float64, (6, 2 * P.FOLD_ROW_BLOCK))
    cases.append([fg.matmul(fg.tanh(wide), dz, transpose_a=True), bias])  # a new row block
    for fetches in cases:
        prog = P.fold_column_sums_into_matmuls(lowered(fetches, [x, dz, wide]))
        assert "ReduceSum" in types(prog) and "StridedSlice" not in types(prog)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_lstm_training_step_with_folded_bias_gradients_matches_reference(dtype):
    """The recurrent cell's stacked gate gradients and a dense readout over the
    stacked outputs: both bias gradients ride in their weight gradient's GEMM, the
    cells' kernels write ``h`` through a column window of the widened stack (a window
    of a window), and the step equals the reference."""
    steps, batch, inputs, units = 5, 4, 3, 6
    xs = [fg.placeholder(dtype, (batch, inputs), name=f"x{t}") for t in range(steps)]
    cell = fg.nn.LSTMCell(units, seed=1)
    outputs, _ = fg.nn.static_rnn(cell, xs, dtype=dtype)
    dense = fg.nn.Dense(7, seed=2)
    logits = dense(fg.concat(outputs, axis=0))
    loss = fg.reduce_mean(fg.square(logits)) + fg.reduce_sum(fg.tanh(outputs[-1]))
    variables = [cell.kernel, cell.bias, dense.kernel, dense.bias]
    fetches = [loss] + fg.gradients(loss, variables)
    feed = _feeds(xs, seed=3)
    with fg.Session(config=REF) as sess:
        want = sess.run(fetches, feed)
    with fg.Session(config=OPT) as sess:
        got = sess.run(fetches, feed)
        again = sess.run(fetches, feed)
        plan = next(iter(sess._plans.values()))
        sums = [o for _, _, o in plan._checked_steps if o.type == "ReduceSum"
                and len(o.inputs[0][0].shapes[o.inputs[0][1]]) == 2]
        widened = [o for _, _, o in plan._checked_steps
                   if o.type == "Concat" and o.attrs["axis"] == 1 and o.shapes[0][1] in (
                       units + inputs + 1, units + 1)]
    assert not sums and len(widened) == 2
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for run in (got, again):
        for g, w in zip(run, want):
            np.testing.assert_allclose(g, w, **tol)
