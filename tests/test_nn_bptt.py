"""Truncated BPTT: the final state fed back as the next initial state continues the
sequence exactly as one long unroll would.
"""
import numpy as np
import pytest

import flowgraph as fg


@pytest.mark.parametrize("make_cell", [
    lambda: fg.nn.LSTMCell(3, seed=0),
    lambda: fg.nn.MultiRNNCell([fg.nn.GRUCell(3, seed=1), fg.nn.LSTMCell(2, seed=2)]),
], ids=["lstm", "multi_gru_lstm"])
def test_state_carried_through_feeds_equals_one_long_unroll(make_cell):
    rng = np.random.default_rng(0)
    batch, chunk, dim = 2, 3, 4
    xs = rng.normal(size=(2 * chunk, batch, dim))
    cell = make_cell()
    # the truncated graph: chunk steps from a fed state
    state_in = fg.nn.state_placeholders(cell, None, fg.float64)
    short_in = [fg.placeholder(fg.float64, (None, dim)) for _ in range(chunk)]
    short_out, short_final = fg.nn.static_rnn(cell, short_in, initial_state=state_in)
    # the same cell (same variables) unrolled over both chunks at once
    long_in = [fg.placeholder(fg.float64, (None, dim)) for _ in range(2 * chunk)]
    long_out, long_final = fg.nn.static_rnn(cell, long_in, dtype=fg.float64)
    sess = fg.Session()
    step = sess.make_callable([short_out, fg.nn.flatten_state(short_final)],
                              short_in + fg.nn.flatten_state(state_in))
    state = [np.zeros((batch, p.shape[1])) for p in fg.nn.flatten_state(state_in)]
    outputs = []
    for k in range(2):
        out, state = step(*xs[k * chunk:(k + 1) * chunk], *state)
        outputs.extend(out)
    ref_out, ref_final = sess.run([long_out, fg.nn.flatten_state(long_final)],
                                  dict(zip(long_in, xs)))
    np.testing.assert_allclose(np.stack(outputs), np.stack(ref_out), rtol=1e-12, atol=1e-14)
    for got, want in zip(state, ref_final):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # and a zero state gives different outputs for the second chunk: the carry matters
    fresh, _ = step(*xs[chunk:], *[np.zeros_like(s) for s in state])
    assert not np.allclose(fresh[0], outputs[chunk])


def test_sequence_length_stops_each_row_at_its_own_length():
    rng = np.random.default_rng(1)
    steps, dim = 4, 3
    lengths = np.array([4, 2, 0, 1], np.int32)
    xs_value = rng.normal(size=(steps, len(lengths), dim))
    cell = fg.nn.LSTMCell(2, seed=0)
    xs = [fg.placeholder(fg.float64, (None, dim)) for _ in range(steps)]
    seq_len = fg.placeholder(fg.int32, (None,))
    outputs, final = fg.nn.static_rnn(cell, xs, dtype=fg.float64, sequence_length=seq_len)
    # reference: each row alone, unrolled over exactly its own length
    ref_xs = [fg.placeholder(fg.float64, (1, dim)) for _ in range(steps)]
    ref_states = [fg.nn.static_rnn(cell, ref_xs[:n], dtype=fg.float64)[1] if n else None
                  for n in range(steps + 1)]
    sess = fg.Session()
    feed = {**dict(zip(xs, xs_value)), seq_len: lengths}
    out_v, final_v = sess.run([outputs, final], feed)
    for b, n in enumerate(lengths):
        for t in range(steps):
            if t >= n:
                np.testing.assert_array_equal(out_v[t][b], 0.0)
        if n == 0:
            np.testing.assert_array_equal(final_v.c[b], 0.0)
            continue
        ref = sess.run(ref_states[n], {x: xs_value[t, b:b + 1] for t, x in
                                       enumerate(ref_xs[:n])})
        np.testing.assert_allclose(final_v.h[b], ref.h[0], rtol=1e-12)
        np.testing.assert_allclose(final_v.c[b], ref.c[0], rtol=1e-12)
        np.testing.assert_allclose(out_v[n - 1][b], ref.h[0], rtol=1e-12)
    loss = fg.reduce_sum(fg.square(final.h)) + fg.add_n([fg.reduce_sum(o) for o in outputs])
    fg.testing.check_gradients(loss, [xs[0], xs[2], cell.kernel], feed)
