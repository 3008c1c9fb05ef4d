"""split_bias_adds: a gate product's bias added per gate, inside the cell's kernel."""
import numpy as np

import flowgraph as fg
from flowgraph import passes as P

REF = fg.SessionConfig(optimize=False)
OPT = fg.SessionConfig(optimize=True, compile="eager")


def lowered(fetches, feeds):
    return P.lower(list(fetches), [], list(feeds), [f.shape for f in feeds])


def test_bias_is_added_to_each_gate_piece():
    x = fg.placeholder(fg.float64, (3, 4))
    k = fg.placeholder(fg.float64, (4, 8))
    b = fg.placeholder(fg.float64, (8,))
    i, g = fg.split(fg.matmul(x, k) + b, 2, axis=1)
    prog = P.split_bias_adds(lowered([fg.sigmoid(i) * fg.tanh(g)], [x, k, b]))
    adds = [n for n in prog.nodes if n.type == "Add"]
    assert len(adds) == 2 and all(n.shapes == [(3, 4)] for n in adds)
    splits = {n.inputs[0][0].type: n for n in prog.nodes if n.type == "Split"}
    assert set(splits) == {"MatMul", "Feed"}            # the product's and the bias's
    assert splits["Feed"].attrs == {"sizes": (4, 4), "axis": 0}
    assert [n.inputs[0][0].type for n in adds] == ["Split", "Split"]


def test_left_alone_when_the_sum_is_read_whole_or_split_by_rows():
    x = fg.placeholder(fg.float64, (4, 3))
    k = fg.placeholder(fg.float64, (3, 6))
    b = fg.placeholder(fg.float64, (6,))
    z = fg.matmul(x, k) + b
    top, bottom = fg.split(z, 2, axis=0)           # rows: add_before_split's layout
    i, g = fg.split(z, 2, axis=1)
    for fetches in ([top * bottom], [i * g, z], [i * g, fg.reduce_sum(z)]):
        prog = P.split_bias_adds(lowered(fetches, [x, k, b]))
        assert any(n.type == "Add" and n.shapes == [(4, 6)] for n in prog.nodes)
    w = fg.placeholder(fg.float64, (4, 6))         # a full matrix: read whole
    prog = P.split_bias_adds(lowered([fg.matmul(x, k) + w], [x, k, w]))
    assert [n.shapes for n in prog.nodes if n.type == "Add"] == [[(4, 6)]]
    w = fg.placeholder(fg.float64, (4, 5))         # neither a bias nor the product's shape
    prog = P.split_bias_adds(lowered([fg.matmul(x, k)[:, :5] + w], [x, k, w]))
    assert [n.shapes for n in prog.nodes if n.type == "Add"] == [[(4, 5)]]


def test_an_operand_of_the_products_shape_is_split_with_it():
    """``split(h @ K + xk_t)``, a loop body's product plus its row of the hoisted input
    product: both are split into the gates' columns, each gate adds its two pieces."""
    x = fg.placeholder(fg.float64, (4, 3))
    k = fg.placeholder(fg.float64, (3, 6))
    w = fg.placeholder(fg.float64, (4, 6))
    i, g = fg.split(fg.matmul(x, k) + w, 2, axis=1)
    prog = P.split_bias_adds(lowered([fg.sigmoid(i) * fg.tanh(g)], [x, k, w]))
    assert [n.shapes for n in prog.nodes if n.type == "Add"] == [[(4, 3)], [(4, 3)]]
    split_w, = [n for n in prog.nodes if n.type == "Split" and n.inputs[0][0].type == "Feed"]
    assert split_w.attrs == {"sizes": (3, 3), "axis": 1}
    feed = {x: np.arange(12.0).reshape(4, 3) / 7, k: np.ones((3, 6)) / 3,
            w: np.arange(24.0).reshape(4, 6) / 5}
    with fg.Session(config=REF) as sess:
        want = sess.run(fg.sigmoid(i) * fg.tanh(g), feed)
    with fg.Session(config=OPT) as sess:
        np.testing.assert_allclose(sess.run(fg.sigmoid(i) * fg.tanh(g), feed), want,
                                   rtol=1e-12, atol=1e-12)


def test_lstm_step_with_split_bias_matches_reference():
    rng = np.random.default_rng(2)
    x = fg.placeholder(fg.float32, (5, 3))
    k = fg.Variable(rng.normal(size=(3 + 4, 16)).astype(np.float32))
    b = fg.Variable(rng.normal(size=(1, 16)).astype(np.float32))    # a (1, N) bias too
    h = c = fg.zeros((5, 4), fg.float32)
    for _ in range(3):
        i, f, o, g = fg.split(fg.matmul(fg.concat([h, x], 1), k) + b, 4, axis=1)
        c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
        h = fg.sigmoid(o) * fg.tanh(c)
    fetches = [h] + fg.gradients(fg.reduce_sum(h * h), [k, b])
    feed = {x: rng.normal(size=(5, 3)).astype(np.float32)}
    with fg.Session(config=REF) as sess:
        want = sess.run(fetches, feed)
    with fg.Session(config=OPT) as sess:
        got = sess.run(fetches, feed)
        plan = next(iter(sess._plans.values()))
        units = [getattr(origin, "group", None) for _, _, origin in plan._checked_steps]
    for w, g_ in zip(want, got):
        np.testing.assert_allclose(g_, w, rtol=2e-5, atol=1e-6)
    # No kernel of its own adds the bias to a whole (5, 16) product: each gate's bias
    # is added inside the cell's kernel.
    regions = [u for u in units if u is not None]
    assert regions and not any(
        all(n.type == "Add" for n in u.nodes) and u.nodes[0].shapes == [(5, 16)]
        for u in regions)


def _gru_step_graph(T=4, B=5, I=3, H=4, seed=3):
    """An unrolled GRU (rnn_step.py's equations) with its loss and weight gradients:
    ``(fetches, feed)``."""
    rng = np.random.default_rng(seed)
    xs = [fg.placeholder(fg.float32, (B, I), name=f"x{t}") for t in range(T)]
    u = lambda *s: rng.uniform(-0.5, 0.5, s).astype(np.float32)  # noqa: E731
    W, U, bw, bu = (fg.Variable(v) for v in (u(I, 3 * H), u(H, 3 * H), u(3 * H), u(3 * H)))
    h = fg.zeros((B, H), fg.float32)
    for x in xs:
        xr, xz, xn = fg.split(fg.matmul(x, W) + bw, 3, axis=1)
        hr, hz, hn = fg.split(fg.matmul(h, U) + bu, 3, axis=1)
        r, z = fg.sigmoid(xr + hr), fg.sigmoid(xz + hz)
        h = (1.0 - z) * fg.tanh(xn + r * hn) + z * h
    loss = fg.reduce_mean(fg.square(h))
    feed = {x: rng.normal(size=(B, I)).astype(np.float32) for x in xs}
    return [loss] + fg.gradients(loss, [W, U, bw, bu]), feed


def test_batched_input_bias_is_added_to_each_steps_gate_pieces():
    """After batch_input_matmuls and add_before_split, ``split(split(X @ W + b,
    rows)[t], columns)[k]`` becomes ``split(split(X @ W, rows)[t], columns)[k] +
    split(b)[k]``: no addition over the whole batched product is left."""
    T, B, H = 4, 5, 4
    fetches, feed = _gru_step_graph(T=T, B=B, H=H)
    prog = lowered(fetches, list(feed))
    for p in P.PIPELINE[:P.PIPELINE.index(P.split_bias_adds)]:
        prog = p(prog)
    assert [n.shapes for n in prog.nodes if n.type == "Add"
            and n.shapes == [(T * B, 3 * H)]] == [[(T * B, 3 * H)]]   # before
    prog = P.split_bias_adds(prog)
    assert not any(n.type == "Add" and n.shapes == [(T * B, 3 * H)] for n in prog.nodes)
    gate_adds = [n for n in prog.nodes if n.type == "Add" and n.shapes == [(B, H)]
                 and n.inputs[0][0].type == "Split"
                 and n.inputs[0][0].inputs[0][0].type == "Split"
                 and n.inputs[0][0].inputs[0][0].inputs[0][0].type == "MatMul"]
    assert len(gate_adds) == 3 * T


def test_gru_with_the_input_bias_in_its_cells_matches_reference():
    """The compiled unrolled GRU (its input bias added in each step's cell kernel, its
    recurrent bias too) gives the reference's loss and gradients, and no kernel is
    only additions: each step's bias additions run inside its cell's kernel."""
    fetches, feed = _gru_step_graph()
    with fg.Session(config=REF) as sess:
        want = sess.run(fetches, feed)
    with fg.Session(config=OPT) as sess:
        got = sess.run(fetches, feed)
        plan = next(iter(sess._plans.values()))
        regions = [getattr(origin, "group", None) for _, _, origin in plan._checked_steps]
    for w, g_ in zip(want, got):
        np.testing.assert_allclose(g_, w, rtol=2e-5, atol=1e-6)
    regions = [u for u in regions if u is not None]
    adds_only = [u for u in regions if all(n.type == "Add" for n in u.nodes)
                 and u.shape != ()]
    # (the first step's recurrent product is zero: its gates are the bias alone, one
    # broadcast addition of the whole bias, read by the first cell)
    assert [u.shape for u in adds_only] == [(5, 12)]
