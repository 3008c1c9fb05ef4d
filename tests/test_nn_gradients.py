"""Gradients through unrolled (multi-layer) cells against finite differences (float64)."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

B, I, T = 2, 2, 3


def _unrolled_loss(cell, rng):
    xs = [fg.placeholder(fg.float64, (B, I)) for _ in range(T)]
    outputs, final = fg.nn.static_rnn(cell, xs, dtype=fg.float64)
    flat = fg.nn.flatten_state(final)
    # weight each step differently so that every output's gradient matters
    loss = fg.add_n([fg.reduce_sum(o * float(k + 1)) for k, o in enumerate(outputs)]
                    + [fg.reduce_sum(fg.square(s)) for s in flat])
    return loss, {x: rng.normal(size=(B, I)) for x in xs}, xs


@pytest.mark.parametrize("make_cell", [
    lambda: fg.nn.BasicRNNCell(3, seed=0),
    lambda: fg.nn.LSTMCell(2, seed=1),
    lambda: fg.nn.GRUCell(2, seed=2),
    lambda: fg.nn.GRUCell(2, reset_after=True, seed=3),
    lambda: fg.nn.MultiRNNCell([fg.nn.LSTMCell(2, seed=4), fg.nn.GRUCell(2, seed=5),
                                fg.nn.BasicRNNCell(2, seed=6)]),
], ids=["rnn", "lstm", "gru", "gru_reset_after", "multi_lstm_gru_rnn"])
def test_gradients_through_unrolled_cells(make_cell):
    rng = np.random.default_rng(0)
    cell = make_cell()
    loss, feed, xs = _unrolled_loss(cell, rng)
    # variables (perturbed in the session) and the first and last inputs
    check_gradients(loss, list(cell.variables) + [xs[0], xs[-1]], feed)


def test_gradient_through_carried_initial_state():
    """d loss / d initial state: the gradient truncated BPTT cuts at batch boundaries."""
    rng = np.random.default_rng(1)
    cell = fg.nn.LSTMCell(2, seed=0)
    state = fg.nn.state_placeholders(cell, B, fg.float64)
    xs = [fg.placeholder(fg.float64, (B, I)) for _ in range(T)]
    outputs, _ = fg.nn.static_rnn(cell, xs, initial_state=state)
    loss = fg.reduce_sum(fg.square(outputs[-1]))
    feed = fg.nn.feed_state(state, (rng.normal(size=(B, 2)), rng.normal(size=(B, 2))),
                            {x: rng.normal(size=(B, I)) for x in xs})
    check_gradients(loss, fg.nn.flatten_state(state), feed)


def test_dense_layer_and_embedding_gradients():
    rng = np.random.default_rng(2)
    emb = fg.Variable(rng.normal(size=(5, 3)), name="emb")
    ids = fg.placeholder(fg.int32, (4,))
    layer = fg.nn.Dense(2, activation=fg.tanh, seed=0)
    y = layer(fg.nn.embedding_lookup(emb, ids))
    loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
        labels=fg.constant([0, 1, 1, 0]), logits=y))
    check_gradients(loss, [emb, layer.kernel, layer.bias], {ids: [0, 2, 2, 4]})


@pytest.mark.parametrize("make_cell", [lambda: fg.nn.LSTMCell(2, seed=0),
                                       lambda: fg.nn.GRUCell(2, reset_after=True, seed=1)],
                         ids=["lstm", "gru_reset_after"])
def test_second_order_gradients_through_two_steps(make_cell):
    """The gradient is itself a graph: differentiate it again (d/dx of dL/dx . v)."""
    rng = np.random.default_rng(3)
    cell = make_cell()
    xs = [fg.placeholder(fg.float64, (1, I)) for _ in range(2)]
    outputs, _ = fg.nn.static_rnn(cell, xs, dtype=fg.float64)
    loss = fg.reduce_sum(fg.square(outputs[-1]))
    g = fg.gradients(loss, [xs[0]])[0]
    hvp = fg.reduce_sum(g * fg.constant(rng.normal(size=(1, I))))
    check_gradients(hvp, [xs[0], cell.variables[0]],
                    {x: rng.normal(size=(1, I)) for x in xs})
