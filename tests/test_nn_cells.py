"""Recurrent cells against NumPy implementations of the README's cell table (float64)."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import ShapeError

try:
    import torch
except ImportError:  # torch is an optional cross-check
    torch = None

RTOL, ATOL = 1e-12, 1e-12


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_rnn(x, h, kernel, bias):
    return np.tanh(np.concatenate([h, x], 1) @ kernel + bias)


def np_lstm(x, c, h, kernel, bias):
    z = np.concatenate([h, x], 1) @ kernel + bias
    i, f, o, g = np.split(z, 4, axis=1)
    c2 = sig(f) * c + sig(i) * np.tanh(g)
    return c2, sig(o) * np.tanh(c2)


def np_gru(x, h, gate_kernel, gate_bias, candidate_kernel, candidate_bias):
    r, z = np.split(sig(np.concatenate([h, x], 1) @ gate_kernel + gate_bias), 2, axis=1)
    n = np.tanh(np.concatenate([r * h, x], 1) @ candidate_kernel + candidate_bias)
    return (1 - z) * h + z * n


def np_gru_reset_after(x, h, kernel, recurrent_kernel, bias, recurrent_bias):
    xr, xz, xn = np.split(x @ kernel + bias, 3, axis=1)
    hr, hz, hn = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=1)
    r, z = sig(xr + hr), sig(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1 - z) * n + z * h


B, I, H, T = 3, 4, 5, 4


def _inputs(rng, steps=T, batch=B, dim=I):
    return [rng.normal(size=(batch, dim)) for _ in range(steps)]


def _randomize(sess, cell, rng):
    """Load random values into every variable (so the test is not about the init)."""
    values = {}
    for v in cell.variables:
        values[v.op.name.rsplit("/", 1)[-1]] = a = rng.normal(size=v.shape)
        sess.load(v, a)
    return values


def _run_unrolled(cell, xs, initial_state=None):
    phs = [fg.placeholder(fg.float64, (None, xs[0].shape[1])) for _ in xs]
    outputs, final = fg.nn.static_rnn(cell, phs, initial_state=initial_state)
    sess = fg.Session()
    return sess, lambda: sess.run([outputs, final], dict(zip(phs, xs)))


def test_basic_rnn_cell_matches_equation():
    rng = np.random.default_rng(0)
    cell = fg.nn.BasicRNNCell(H, seed=1)
    xs = _inputs(rng)
    sess, run = _run_unrolled(cell, xs)
    assert cell.kernel.shape == (H + I, H) and cell.bias.shape == (H,)
    w = _randomize(sess, cell, rng)
    outputs, final = run()
    h = np.zeros((B, H))
    for x, out in zip(xs, outputs):
        h = np_rnn(x, h, w["kernel"], w["bias"])
        np.testing.assert_allclose(out, h, RTOL, ATOL)
    np.testing.assert_allclose(final, h, RTOL, ATOL)


def test_lstm_cell_matches_equation_and_layout():
    rng = np.random.default_rng(1)
    cell = fg.nn.LSTMCell(H, forget_bias=0.7, seed=2)
    xs = _inputs(rng)
    c0, h0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    state = fg.nn.LSTMStateTuple(fg.constant(c0), fg.constant(h0))
    sess, run = _run_unrolled(cell, xs, state)
    assert cell.kernel.shape == (H + I, 4 * H) and cell.bias.shape == (4 * H,)
    bias0 = sess.variable_value(cell.bias)
    expected_bias = np.zeros(4 * H)
    expected_bias[H:2 * H] = 0.7  # the f block, blocks ordered i, f, o, g
    np.testing.assert_array_equal(bias0, expected_bias)
    w = _randomize(sess, cell, rng)
    outputs, final = run()
    assert isinstance(final, fg.nn.LSTMStateTuple)
    c, h = c0, h0
    for x, out in zip(xs, outputs):
        c, h = np_lstm(x, c, h, w["kernel"], w["bias"])
        np.testing.assert_allclose(out, h, RTOL, ATOL)
    np.testing.assert_allclose(final.c, c, RTOL, ATOL)
    np.testing.assert_allclose(final.h, h, RTOL, ATOL)


def test_lstm_forget_bias_is_not_added_in_the_graph():
    """With all weights zero except the bias, f = sigmoid(bias_f) exactly."""
    cell = fg.nn.LSTMCell(2, forget_bias=5.0, seed=0)
    x = fg.placeholder(fg.float64, (1, 1))
    c0 = fg.constant(np.ones((1, 2)))
    _, (c1, _) = cell(x, fg.nn.LSTMStateTuple(c0, fg.constant(np.zeros((1, 2)))))
    sess = fg.Session()
    sess.load(cell.kernel, np.zeros((3, 8)))
    bias = np.zeros(8)
    bias[2:4] = 0.3
    sess.load(cell.bias, bias)
    # c' = f*c + i*g with g = tanh(0) = 0, so c' = sigmoid(0.3), not sigmoid(5.3)
    np.testing.assert_allclose(sess.run(c1, {x: [[0.0]]}), np.full((1, 2), sig(0.3)), 1e-14)


def test_gru_cell_matches_equation():
    rng = np.random.default_rng(2)
    cell = fg.nn.GRUCell(H, seed=3)
    xs = _inputs(rng)
    h0 = rng.normal(size=(B, H))
    sess, run = _run_unrolled(cell, xs, fg.constant(h0))
    assert cell.gate_kernel.shape == (H + I, 2 * H) and cell.gate_bias.shape == (2 * H,)
    assert cell.candidate_kernel.shape == (H + I, H) and cell.candidate_bias.shape == (H,)
    w = _randomize(sess, cell, rng)
    outputs, final = run()
    h = h0
    for x, out in zip(xs, outputs):
        h = np_gru(x, h, w["gate_kernel"], w["gate_bias"], w["candidate_kernel"],
                   w["candidate_bias"])
        np.testing.assert_allclose(out, h, RTOL, ATOL)
    np.testing.assert_allclose(final, h, RTOL, ATOL)


def test_gru_reset_after_matches_equation():
    rng = np.random.default_rng(3)
    cell = fg.nn.GRUCell(H, reset_after=True, seed=4)
    xs = _inputs(rng)
    h0 = rng.normal(size=(B, H))
    sess, run = _run_unrolled(cell, xs, fg.constant(h0))
    assert cell.kernel.shape == (I, 3 * H) and cell.recurrent_kernel.shape == (H, 3 * H)
    assert cell.bias.shape == (3 * H,) and cell.recurrent_bias.shape == (3 * H,)
    w = _randomize(sess, cell, rng)
    outputs, final = run()
    h = h0
    for x, out in zip(xs, outputs):
        h = np_gru_reset_after(x, h, w["kernel"], w["recurrent_kernel"], w["bias"],
                               w["recurrent_bias"])
        np.testing.assert_allclose(out, h, RTOL, ATOL)


@pytest.mark.skipif(torch is None, reason="torch is not installed (optional cross-check; "
                    "the NumPy equations are tested above)")
def test_gru_reset_after_equals_torch_gru():
    rng = np.random.default_rng(4)
    cell = fg.nn.GRUCell(H, reset_after=True, seed=5)
    xs = _inputs(rng)
    h0 = rng.normal(size=(B, H))
    sess, run = _run_unrolled(cell, xs, fg.constant(h0))
    gru = torch.nn.GRU(I, H, dtype=torch.float64)
    with torch.no_grad():
        for p in gru.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
    sess.load(cell.kernel, gru.weight_ih_l0.detach().numpy().T)
    sess.load(cell.recurrent_kernel, gru.weight_hh_l0.detach().numpy().T)
    sess.load(cell.bias, gru.bias_ih_l0.detach().numpy())
    sess.load(cell.recurrent_bias, gru.bias_hh_l0.detach().numpy())
    outputs, final = run()
    with torch.no_grad():
        ref, ref_h = gru(torch.from_numpy(np.stack(xs)), torch.from_numpy(h0)[None])
    np.testing.assert_allclose(np.stack(outputs), ref.numpy(), 1e-12, 1e-12)
    np.testing.assert_allclose(final, ref_h[0].numpy(), 1e-12, 1e-12)


@pytest.mark.skipif(torch is None, reason="torch is not installed (optional cross-check)")
def test_lstm_equals_torch_lstm_after_reordering_gates():
    """torch orders the blocks i, f, g, o and splits the kernel into W_ih, W_hh."""
    rng = np.random.default_rng(5)
    cell = fg.nn.LSTMCell(H, forget_bias=0.0, seed=6)
    xs = _inputs(rng)
    sess, run = _run_unrolled(cell, xs)
    lstm = torch.nn.LSTM(I, H, dtype=torch.float64)
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.from_numpy(rng.normal(size=tuple(p.shape))))
    i, f, g, o = (slice(k * H, (k + 1) * H) for k in range(4))
    order = np.r_[i, f, o, g]
    w_ih, w_hh = lstm.weight_ih_l0.detach().numpy(), lstm.weight_hh_l0.detach().numpy()
    sess.load(cell.kernel, np.concatenate([w_hh, w_ih], 1)[order].T)
    sess.load(cell.bias, (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().numpy()[order])
    outputs, final = run()
    with torch.no_grad():
        ref, (ref_h, ref_c) = lstm(torch.from_numpy(np.stack(xs)))
    np.testing.assert_allclose(np.stack(outputs), ref.numpy(), 1e-12, 1e-12)
    np.testing.assert_allclose(final.c, ref_c[0].numpy(), 1e-12, 1e-12)


def test_multi_rnn_cell_stacks_layers_and_names_variables():
    rng = np.random.default_rng(6)
    lstm, gru = fg.nn.LSTMCell(H, seed=7), fg.nn.GRUCell(3, seed=8)
    cell = fg.nn.MultiRNNCell([lstm, gru])
    xs = _inputs(rng)
    sess, run = _run_unrolled(cell, xs)
    assert [v.op.name for v in cell.variables] == [
        "rnn/multi_rnn_cell/cell_0/lstm_cell/kernel", "rnn/multi_rnn_cell/cell_0/lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_1/gru_cell/gate_kernel",
        "rnn/multi_rnn_cell/cell_1/gru_cell/gate_bias",
        "rnn/multi_rnn_cell/cell_1/gru_cell/candidate_kernel",
        "rnn/multi_rnn_cell/cell_1/gru_cell/candidate_bias"]
    w1, w2 = _randomize(sess, lstm, rng), _randomize(sess, gru, rng)
    outputs, (s1, s2) = run()
    c, h, h2 = np.zeros((B, H)), np.zeros((B, H)), np.zeros((B, 3))
    for x, out in zip(xs, outputs):
        c, h = np_lstm(x, c, h, w1["kernel"], w1["bias"])
        h2 = np_gru(h, h2, w2["gate_kernel"], w2["gate_bias"], w2["candidate_kernel"],
                    w2["candidate_bias"])
        np.testing.assert_allclose(out, h2, RTOL, ATOL)
    np.testing.assert_allclose(s1.h, h, RTOL, ATOL)
    np.testing.assert_allclose(s2, h2, RTOL, ATOL)


def test_device_wrapper_places_the_cell_ops_and_variables():
    cell = fg.nn.DeviceWrapper(fg.nn.BasicRNNCell(2, seed=0), "/cpu:0")
    x = fg.placeholder(fg.float32, (1, 3))
    out, _ = cell(x, cell.zero_state(1, fg.float32))
    assert out.device == "/cpu:0" and cell.kernel.device == "/cpu:0"
    assert cell.kernel is cell.cell.kernel
    assert fg.Session().run(out, {x: np.ones((1, 3))}).shape == (1, 2)


def test_static_rnn_zero_state_follows_unknown_batch_and_reuses_variables():
    cell = fg.nn.LSTMCell(2, seed=0)
    xs = [fg.placeholder(fg.float32, (None, 3)) for _ in range(2)]
    outputs, final = fg.nn.static_rnn(cell, xs)
    n_vars = len(fg.global_variables())
    outputs2, _ = fg.nn.static_rnn(cell, xs)  # second unroll shares the weights
    assert len(fg.global_variables()) == n_vars == 2
    sess = fg.Session()
    for batch in (1, 4):
        feed = {x: np.ones((batch, 3), np.float32) for x in xs}
        a, b = sess.run([outputs[-1], outputs2[-1]], feed)
        assert a.shape == (batch, 2)
        np.testing.assert_array_equal(a, b)


def test_cell_errors_name_the_cell_and_the_shapes():
    cell = fg.nn.LSTMCell(4, seed=0)
    x = fg.placeholder(fg.float32, (2, 3))
    with pytest.raises(ShapeError, match="LSTMStateTuple"):
        cell(x, fg.zeros((2, 4)))
    cell(x, cell.zero_state(2))
    with pytest.raises(ShapeError, match="built for inputs of dimension 3"):
        cell(fg.placeholder(fg.float32, (2, 5)), cell.zero_state(2))
    with pytest.raises(ShapeError, match=r"expected a state of shape \[batch, 4\]"):
        fg.nn.BasicRNNCell(4)(x, fg.zeros((2, 5)))


def test_state_placeholders_and_feed_state_round_trip():
    cell = fg.nn.MultiRNNCell([fg.nn.LSTMCell(2, seed=0), fg.nn.GRUCell(3, seed=1)])
    phs = fg.nn.state_placeholders(cell, None)
    assert isinstance(phs[0], fg.nn.LSTMStateTuple)
    flat = fg.nn.flatten_state(phs)
    assert [p.shape for p in flat] == [(None, 2), (None, 2), (None, 3)]
    values = (fg.nn.LSTMStateTuple(np.zeros((1, 2)), np.ones((1, 2))), np.full((1, 3), 2.0))
    feed = fg.nn.feed_state(phs, values)
    assert [float(feed[p].sum()) for p in flat] == [0.0, 2.0, 6.0]


# --- TF1's BasicLSTMCell and the tf.nn.rnn_cell namespace ---

def test_basic_lstm_cell_is_tf1s_constructor_over_the_lstm_cell():
    assert fg.nn.rnn_cell.BasicLSTMCell is fg.nn.BasicLSTMCell
    for name in ["LSTMCell", "BasicRNNCell", "GRUCell", "MultiRNNCell", "DropoutWrapper",
                 "DeviceWrapper", "LSTMStateTuple", "RNNCell"]:
        assert getattr(fg.nn.rnn_cell, name) is getattr(fg.nn, name)
    rng = np.random.default_rng(3)
    cell = fg.nn.rnn_cell.BasicLSTMCell(H, 0.4, True, seed=2)   # TF1's positional order
    assert isinstance(cell, fg.nn.LSTMCell) and cell.forget_bias == 0.4
    assert cell.state_size == (H, H) and cell.output_size == H
    xs = _inputs(rng)
    sess, run = _run_unrolled(cell, xs)
    assert cell.kernel.op.name == "rnn/basic_lstm_cell/kernel"
    expected_bias = np.zeros(4 * H)
    expected_bias[H:2 * H] = 0.4
    np.testing.assert_array_equal(sess.variable_value(cell.bias), expected_bias)
    w = _randomize(sess, cell, rng)
    outputs, final = run()
    c, h = np.zeros((B, H)), np.zeros((B, H))
    for x, out in zip(xs, outputs):
        c, h = np_lstm(x, c, h, w["kernel"], w["bias"])
        np.testing.assert_allclose(out, h, RTOL, ATOL)
    assert isinstance(final, fg.nn.LSTMStateTuple)
    np.testing.assert_allclose(final.c, c, RTOL, ATOL)


def test_basic_lstm_cell_activation_dtype_and_state_is_tuple():
    rng = np.random.default_rng(4)
    cell = fg.nn.BasicLSTMCell(H, activation=fg.nn.relu, seed=0)
    xs = _inputs(rng, steps=2)
    sess, run = _run_unrolled(cell, xs)
    w = _randomize(sess, cell, rng)
    outputs, _ = run()
    c, h = np.zeros((B, H)), np.zeros((B, H))
    for x, out in zip(xs, outputs):
        z = np.concatenate([h, x], 1) @ w["kernel"] + w["bias"]
        i, f, o, g = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.maximum(g, 0)
        h = sig(o) * np.maximum(c, 0)
        np.testing.assert_allclose(out, h, RTOL, ATOL)
    with pytest.raises(ValueError, match="state_is_tuple=False"):
        fg.nn.BasicLSTMCell(4, state_is_tuple=False)
    bad = fg.nn.BasicLSTMCell(2, dtype=fg.float32)
    x = fg.placeholder(fg.float64, (1, 3))
    with pytest.raises(fg.errors.DTypeError, match="dtype=float32.*float64"):
        bad(x, bad.zero_state(1, fg.float64))
    ok = fg.nn.BasicLSTMCell(2, dtype="float")
    out, _ = ok(fg.placeholder(fg.float32, (1, 3)), ok.zero_state(1, fg.float32))
    assert out.dtype == np.float32


def test_basic_lstm_cell_gradients_and_reuse():
    rng = np.random.default_rng(5)
    x = fg.placeholder(fg.float64, (2, 3))
    with fg.variable_scope("model"):
        cell = fg.nn.BasicLSTMCell(2, seed=0)
        out, st = cell(x, cell.zero_state(2, fg.float64))
        out2, _ = cell(x, st)
    with fg.variable_scope("model", reuse=True):
        again = fg.nn.BasicLSTMCell(2)
        again(x, again.zero_state(2, fg.float64))
    assert again.kernel is cell.kernel
    assert fg.testing.check_gradients(out2, [x, cell.kernel, cell.bias],
                                      {x: rng.normal(size=(2, 3))}) < 1e-6


@pytest.mark.parametrize("optimize", [True, False])
def test_basic_lstm_cell_in_dynamic_rnn_equals_lstm_cell(optimize):
    rng = np.random.default_rng(6)
    xv = rng.normal(size=(2, 5, 3))
    x = fg.placeholder(fg.float64, (None, 5, 3))
    with fg.variable_scope("a"):
        out_a, st_a = fg.nn.dynamic_rnn(fg.nn.rnn_cell.BasicLSTMCell(4, seed=9), x,
                                        dtype=fg.float64)
    with fg.variable_scope("b"):
        out_b, st_b = fg.nn.dynamic_rnn(fg.nn.LSTMCell(4, seed=9), x, dtype=fg.float64)
    names = sorted(v.op.name.rsplit("/", 2)[-2] for v in fg.global_variables())
    assert names == ["basic_lstm_cell"] * 2 + ["lstm_cell"] * 2
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        a, b = sess.run([[out_a, st_a], [out_b, st_b]], {x: xv})
    np.testing.assert_allclose(a[0], b[0], RTOL, ATOL)
    np.testing.assert_allclose(a[1].c, b[1].c, RTOL, ATOL)
