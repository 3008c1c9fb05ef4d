"""dynamic_rnn and the bidirectional networks: outputs and gradients equal to the
unrolled graph (float64, 1e-12) for every cell, with and without sequence_length, on
both paths; one compiled body for every sequence length.
"""
import numpy as np
import pytest

import flowgraph as fg

CELLS = {
    "basic": lambda s: fg.nn.BasicRNNCell(3, seed=s),
    "lstm": lambda s: fg.nn.LSTMCell(3, seed=s),
    "gru": lambda s: fg.nn.GRUCell(3, seed=s),
    "multi": lambda s: fg.nn.MultiRNNCell([fg.nn.GRUCell(3, seed=s),
                                           fg.nn.LSTMCell(2, seed=s + 1)]),
}
B, T, I = 3, 5, 4


def _flat(state):
    return fg.nn.flatten_state(state)


def _assert_close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def _session(optimize):
    return fg.Session(config=fg.SessionConfig(optimize=optimize))


@pytest.mark.parametrize("optimize", [False, True], ids=["reference", "compiled"])
@pytest.mark.parametrize("lengths", [None, [5, 2, 0]], ids=["full", "lengths"])
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_dynamic_rnn_equals_static_rnn_outputs_and_gradients(kind, lengths, optimize):
    rng = np.random.default_rng(1)
    x_val = rng.normal(size=(B, T, I))
    cell = CELLS[kind](0)
    x = fg.placeholder(fg.float64, (None, None, I))
    seq = None if lengths is None else fg.constant(np.array(lengths, np.int32))
    dyn_out, dyn_state = fg.nn.dynamic_rnn(cell, x, sequence_length=seq, dtype=fg.float64)
    steps = fg.unstack(fg.transpose(x, (1, 0, 2)), num=T)
    st_out, st_state = fg.nn.static_rnn(cell, steps, dtype=fg.float64, sequence_length=seq)
    st_out = fg.transpose(fg.stack(st_out), (1, 0, 2))
    assert len({v.name for v in fg.trainable_variables()}) == len(cell.variables)
    w = rng.normal(size=(B, T, cell.output_size))

    def loss(out, state):
        return fg.reduce_sum(out * w) + fg.add_n([fg.reduce_sum(fg.square(s))
                                                   for s in _flat(state)])

    wrt = [x] + list(cell.variables)
    g_dyn = fg.gradients(loss(dyn_out, dyn_state), wrt)
    g_st = fg.gradients(loss(st_out, st_state), wrt)
    sess = _session(optimize)
    got = sess.run([dyn_out] + _flat(dyn_state) + g_dyn, {x: x_val})
    want = sess.run([st_out] + _flat(st_state) + g_st, {x: x_val})
    _assert_close(got, want)
    if lengths is not None:   # past a row's length: zero outputs
        assert np.all(got[0][1, 2:] == 0) and np.all(got[0][2] == 0)


@pytest.mark.parametrize("optimize", [False, True], ids=["reference", "compiled"])
@pytest.mark.parametrize("lengths", [None, [5, 3, 1]], ids=["full", "lengths"])
def test_bidirectional_dynamic_rnn_equals_static_bidirectional_rnn(lengths, optimize):
    rng = np.random.default_rng(2)
    x_val = rng.normal(size=(B, T, I))
    fw, bw = fg.nn.LSTMCell(3, seed=0), fg.nn.GRUCell(2, seed=1)
    x = fg.placeholder(fg.float64, (B, T, I))
    seq = None if lengths is None else fg.constant(np.array(lengths, np.int64))
    (o_fw, o_bw), (s_fw, s_bw) = fg.nn.bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=seq, dtype=fg.float64)
    steps = fg.unstack(fg.transpose(x, (1, 0, 2)), num=T)
    outs, t_fw, t_bw = fg.nn.static_bidirectional_rnn(fw, bw, steps, dtype=fg.float64,
                                                      sequence_length=seq)
    dyn = fg.concat([o_fw, o_bw], 2)
    st = fg.transpose(fg.stack(outs), (1, 0, 2))
    wrt = [x] + fw.variables + bw.variables
    g_dyn = fg.gradients(fg.reduce_sum(fg.tanh(dyn)) + fg.reduce_sum(s_bw), wrt)
    g_st = fg.gradients(fg.reduce_sum(fg.tanh(st)) + fg.reduce_sum(t_bw), wrt)
    sess = _session(optimize)
    got = sess.run([dyn] + _flat((s_fw, s_bw)) + g_dyn, {x: x_val})
    want = sess.run([st] + _flat((t_fw, t_bw)) + g_st, {x: x_val})
    _assert_close(got, want)
    if lengths is not None:
        # the backward direction of row 2 (length 1) sees only its first step
        single = sess.run(fg.nn.dynamic_rnn(bw, x[2:3, :1], dtype=fg.float64)[0],
                          {x: x_val})
        np.testing.assert_allclose(got[0][2, 0, 3:], single[0, 0], rtol=1e-12)


def test_time_major_equals_batch_major():
    rng = np.random.default_rng(3)
    x_val = rng.normal(size=(B, T, I))
    cell = fg.nn.LSTMCell(3, seed=0)
    x = fg.placeholder(fg.float64, (B, T, I))
    a, sa = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    b, sb = fg.nn.dynamic_rnn(cell, fg.transpose(x, (1, 0, 2)), dtype=fg.float64,
                              time_major=True)
    got = fg.Session().run([a, fg.transpose(b, (1, 0, 2))] + _flat(sa) + _flat(sb),
                           {x: x_val})
    _assert_close(got[:1] + got[2:3], got[1:2] + got[4:5])


def test_sequence_length_changes_between_runs_with_one_compiled_body():
    rng = np.random.default_rng(4)
    cell = fg.nn.GRUCell(3, seed=0)
    x = fg.placeholder(fg.float64, (2, None, I))
    out, state = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
    loss = fg.reduce_sum(fg.square(out))
    grads = fg.gradients(loss, cell.variables)
    sess = _session(True)
    ref = _session(False)
    loops = [op for op in fg.get_default_graph().operations if op.type == "While"]
    for t in (1, 7, 30):
        x_val = rng.normal(size=(2, t, I))
        got = sess.run([out, loss] + grads, {x: x_val})
        _assert_close(got, ref.run([out, loss] + grads, {x: x_val}))
        assert got[0].shape == (2, t, 3)
    # every loop's body was compiled once, for all three lengths
    assert loops and all(len(op.attrs["body"]._compiled) == 1 for op in loops)


def test_dynamic_rnn_errors_are_clear():
    cell = fg.nn.LSTMCell(3, seed=0)
    with pytest.raises(fg.errors.ShapeError, match="rank 3"):
        fg.nn.dynamic_rnn(cell, fg.placeholder(fg.float64, (2, 4)), dtype=fg.float64)
    with pytest.raises(fg.errors.ShapeError, match="sequence_length"):
        fg.nn.dynamic_rnn(cell, fg.placeholder(fg.float64, (2, 3, 4)), dtype=fg.float64,
                          sequence_length=fg.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match="dtype"):
        fg.nn.dynamic_rnn(cell, fg.placeholder(fg.float64, (2, 3, 4)))


@pytest.mark.usefixtures("needs_gpu")
def test_a_loop_placed_on_the_gpu_runs_on_the_host_in_the_placed_plan():
    from flowgraph.placed_plan import PlacedPlan
    x = fg.placeholder(fg.float64, (2, 4, 3))
    cell = fg.nn.GRUCell(3, seed=0)
    with fg.device("/gpu:0"):
        out, _ = fg.nn.dynamic_rnn(cell, x, dtype=fg.float64)
        loss = fg.reduce_sum(out * out)
    grads = fg.gradients(loss, cell.variables)
    value = np.random.default_rng(0).normal(size=(2, 4, 3))
    sess = _session(True)
    got = sess.run([out] + grads, {x: value})
    assert isinstance(next(iter(sess._plans.values())), PlacedPlan)
    _assert_close(got, _session(False).run([out] + grads, {x: value}))


def test_variables_are_named_as_in_tf1():
    """TF1 checkpoints name a dynamic network's variables by its variable scope."""
    x = fg.placeholder(fg.float32, (2, 4, 3))
    fg.nn.dynamic_rnn(fg.nn.LSTMCell(5), x, dtype=fg.float32)
    fg.nn.bidirectional_dynamic_rnn(fg.nn.GRUCell(5), fg.nn.BasicRNNCell(5), x,
                                    dtype=fg.float32)
    with fg.variable_scope("encoder"):
        fg.nn.dynamic_rnn(fg.nn.LSTMCell(5), x, dtype=fg.float32, scope="layer")
    names = [v.op.name for v in fg.global_variables()]
    assert names == [
        "rnn/lstm_cell/kernel", "rnn/lstm_cell/bias",
        "bidirectional_rnn/fw/gru_cell/gate_kernel", "bidirectional_rnn/fw/gru_cell/gate_bias",
        "bidirectional_rnn/fw/gru_cell/candidate_kernel",
        "bidirectional_rnn/fw/gru_cell/candidate_bias",
        "bidirectional_rnn/bw/basic_rnn_cell/kernel", "bidirectional_rnn/bw/basic_rnn_cell/bias",
        "encoder/layer/lstm_cell/kernel", "encoder/layer/lstm_cell/bias"]
