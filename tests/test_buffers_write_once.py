"""Constant parts of a concatenation are written on a plan's first run only
(:attr:`flowgraph.buffers.BufferLayout._write_once`): the buffer they live in has
storage nothing else writes, so later runs find them in place."""
import numpy as np
import pytest

import flowgraph as fg

REF = fg.SessionConfig(optimize=False)


def _plan(sess):
    plan, = sess._plans.values()
    return plan


@pytest.mark.parametrize("compile_mode", ["eager", "never"])
def test_constant_parts_survive_the_runs_in_between(compile_mode):
    """[tanh(x), 0, 1] read after other temporaries of its size came and went: with a
    pooled buffer they would reuse its storage between runs."""
    x = fg.placeholder(fg.float32, (16, 8))
    y = fg.placeholder(fg.float32, (16, 12))
    # temporaries the size of the concatenation, made before it and dead after
    # (GEMM outputs: buffers, where a fused region's values may stay in its loop)
    square = fg.constant(np.eye(12, dtype=np.float32))
    scratch = [fg.matmul(fg.sigmoid(y * float(k)), square) for k in range(1, 4)]
    early = fg.add_n([fg.reduce_sum(s) for s in scratch])
    with fg.control_dependencies([early]):
        cat = fg.concat([fg.tanh(x), fg.zeros((16, 3)), fg.ones((16, 1))], axis=1)
    out = fg.matmul(cat, fg.constant(np.arange(48, dtype=np.float32).reshape(12, 4)))
    with fg.control_dependencies([out]):
        late = [fg.matmul(fg.exp(y * float(k)), square) for k in range(1, 4)]
    fetches = [out, fg.add_n([fg.reduce_sum(t) for t in late]), early]
    sess = fg.Session(config=fg.SessionConfig(optimize=True, compile=compile_mode))
    ref = fg.Session(config=REF)
    rng = np.random.default_rng(0)
    for _ in range(4):
        feed = {x: rng.standard_normal((16, 8)).astype(np.float32),
                y: rng.standard_normal((16, 12)).astype(np.float32)}
        for got, want in zip(sess.run(fetches, feed), ref.run(fetches, feed)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert _plan(sess)._write_once


def test_an_lstm_step_keeps_its_column_of_ones():
    """The row-LSTM's [h, x, 1] stacking (fold_column_sums_into_matmuls): bias
    gradients over several training steps equal the reference path's."""
    rng = np.random.default_rng(1)
    x = fg.placeholder(fg.float32, (4, 6, 5))
    cell = fg.nn.rnn_cell.LSTMCell(8)
    outputs, _ = fg.nn.static_rnn(cell, fg.unstack(x, axis=1), dtype=fg.float32)
    loss = fg.reduce_sum(fg.square(outputs[-1]))
    train = fg.train.GradientDescentOptimizer(0.1).minimize(loss)
    results = []
    feed = {x: rng.standard_normal((4, 6, 5)).astype(np.float32)}
    for config in (REF, fg.SessionConfig(optimize=True)):
        sess = fg.Session(config=config)
        losses = [sess.run([loss, train], feed)[0] for _ in range(4)]
        results.append((losses, [sess.variable_value(v) for v in fg.trainable_variables()]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4)
    for got, want in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
