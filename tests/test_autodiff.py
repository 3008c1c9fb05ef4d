"""Semantics of fg.gradients (README: "A first graph", "Gradients of gradients", "Concepts")."""
import numpy as np
import pytest

import flowgraph as fg


def run(fetches, feed=None):
    with fg.Session() as sess:
        return sess.run(fetches, feed)


def test_only_the_path_from_ys_to_xs_is_walked(fresh_graph):
    x = fg.placeholder(fg.float64, (3,), name="x")
    w = fg.placeholder(fg.float64, (3,), name="w")
    side = fg.sigmoid(x, name="side_branch")          # from x, but not into y
    unrelated = fg.exp(w, name="unrelated")           # into y, but not from x
    y = fg.reduce_sum(fg.tanh(x, name="on_path") * fg.stop_gradient(unrelated))
    before = len(fresh_graph.operations)
    (dx,) = fg.gradients(y, [x])
    new_names = [op.name for op in fresh_graph.operations[before:]]
    assert any("on_path_grad" in n for n in new_names)
    assert not any("side_branch" in n or "unrelated_grad" in n for n in new_names), new_names
    xv, wv = np.array([0.1, -0.4, 1.2]), np.array([0.3, 0.0, -1.0])
    np.testing.assert_allclose(run(dx, {x: xv, w: wv}), (1 - np.tanh(xv) ** 2) * np.exp(wv),
                               rtol=1e-14)
    assert side.op.type == "Sigmoid"


def test_contributions_that_meet_are_summed():
    x = fg.placeholder(fg.float64, (4,))
    y = x * x + x * 3.0 + fg.tanh(x) + fg.reduce_sum(x) * x
    (dx,) = fg.gradients(y, [x])
    v = np.array([0.5, -1.0, 2.0, 0.0])
    # d/dx_i sum_j (sum(x) * x_j) = sum(x) + sum_j x_j
    want = 2 * v + 3 + (1 - np.tanh(v) ** 2) + v.sum() + v.sum()
    np.testing.assert_allclose(run(dx, {x: v}), want, rtol=1e-14)


def test_grad_ys_weights_the_output_and_nonscalar_ys_are_summed():
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.square(x)
    gy = np.arange(6.0).reshape(2, 3)
    weighted, summed = fg.gradients(y, [x], grad_ys=gy)[0], fg.gradients(y, [x])[0]
    v = np.linspace(-1, 1, 6).reshape(2, 3)
    a, b = run([weighted, summed], {x: v})
    np.testing.assert_allclose(a, 2 * v * gy)
    np.testing.assert_allclose(b, 2 * v)
    with pytest.raises(ValueError, match="grad_ys"):
        fg.gradients([y, y], [x], grad_ys=[gy])


def test_list_ys_add_and_grad_ys_may_be_tensors():
    x = fg.placeholder(fg.float64, ())
    y1, y2 = x * x, fg.exp(x)
    seed = fg.placeholder(fg.float64, ())
    (both,) = fg.gradients([y1, y2], [x])
    (seeded,) = fg.gradients([y1, y2], [x], grad_ys=[seed, None])
    a, b = run([both, seeded], {x: 0.7, seed: 3.0})
    assert a == pytest.approx(2 * 0.7 + np.exp(0.7), rel=1e-15)
    assert b == pytest.approx(3 * 2 * 0.7 + np.exp(0.7), rel=1e-15)


def test_stop_gradient_blocks_the_flow():
    x = fg.placeholder(fg.float64, (2,))
    y = fg.reduce_sum(x * fg.stop_gradient(x * x))
    (dx,) = fg.gradients(y, [x])
    v = np.array([1.5, -2.0])
    np.testing.assert_allclose(run(dx, {x: v}), v * v)  # not 3 * v * v
    (blocked,) = fg.gradients(fg.stop_gradient(x), [x])
    np.testing.assert_array_equal(run(blocked, {x: v}), [0.0, 0.0])


def test_unconnected_xs_get_zeros_of_their_shape_and_int_xs_get_none():
    x = fg.placeholder(fg.float32, (None, 3))
    other = fg.placeholder(fg.float32, (2, 5))
    ints = fg.placeholder(fg.int32, (4,))
    y = fg.reduce_sum(fg.tanh(x)) + fg.reduce_sum(fg.cast(ints, fg.float32))
    dx, dother, dints = fg.gradients(y, [x, other, ints])
    assert dints is None
    a, b = run([dx, dother], {x: np.ones((2, 3), np.float32), other: np.ones((2, 5)),
                              ints: np.arange(4, dtype=np.int32)})
    assert b.shape == (2, 5) and b.dtype == np.float32 and not b.any()
    assert a.shape == (2, 3)
    assert fg.gradients(y, []) == []


def test_variables_are_valid_xs():
    w = fg.Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), name="w")
    b = fg.Variable(np.array([0.5, -0.5]), name="b")
    x = fg.placeholder(fg.float64, (None, 2))
    loss = fg.reduce_sum(fg.square(x @ w + b))
    dw, db = fg.gradients(loss, [w, b])
    xv = np.array([[1.0, 0.0], [0.5, 2.0], [-1.0, 1.0]])
    r = xv @ w.initial_value + b.initial_value
    gw, gb = run([dw, db], {x: xv})
    np.testing.assert_allclose(gw, xv.T @ (2 * r))
    np.testing.assert_allclose(gb, (2 * r).sum(0))
    err = fg.testing.check_gradients(loss, [w, b], {x: xv})
    assert err < 1e-5


@pytest.mark.parametrize("shape_a, shape_b", [((3, 1), (1, 4)), ((2, 3), (3,)), ((), (2, 2)),
                                              ((None, 1), (1, 4)), ((None, 3), (None, 3))])
def test_broadcasting_is_undone(shape_a, shape_b):
    a = fg.placeholder(fg.float64, shape_a)
    b = fg.placeholder(fg.float64, shape_b)
    y = a * b + a
    da, db = fg.gradients(y, [a, b])
    va = np.full([d or 2 for d in shape_a], 1.5)
    vb = np.arange(np.prod([d or 2 for d in shape_b]), dtype=np.float64).reshape(
        [d or 2 for d in shape_b])
    ga, gb = run([da, db], {a: va, b: vb})
    assert ga.shape == va.shape and gb.shape == vb.shape
    out = np.broadcast_shapes(va.shape, vb.shape)
    np.testing.assert_allclose(ga.sum(), (np.broadcast_to(vb, out) + 1).sum())
    np.testing.assert_allclose(gb.sum(), np.broadcast_to(va, out).sum())
    fg.testing.check_gradients(y, [a, b], {a: va, b: vb})


def test_gradients_are_ordinary_graph_ops_that_differentiate_again():
    x = fg.placeholder(fg.float64, (3,))
    y = fg.reduce_sum(fg.sigmoid(x) * x)
    (g,) = fg.gradients(y, [x])
    (h,) = fg.gradients(fg.reduce_sum(g), [x])
    (k,) = fg.gradients(fg.reduce_sum(h), [x])
    assert isinstance(g, fg.Tensor) and g.graph is x.graph
    v = np.array([-0.5, 0.0, 1.0])
    values = run([g, h, k], {x: v})
    s = 1 / (1 + np.exp(-v))
    np.testing.assert_allclose(values[0], s + v * s * (1 - s), rtol=1e-14)
    fg.testing.check_gradients(fg.reduce_sum(h), [x], {x: v})


def test_float32_cast_round_trip_keeps_the_input_dtype():
    x = fg.placeholder(fg.float32, (2,))
    y = fg.reduce_sum(fg.cast(x, fg.float64) ** 2)
    (dx,) = fg.gradients(y, [x])
    assert dx.dtype == np.float32
    np.testing.assert_allclose(run(dx, {x: [1.0, -2.0]}), [2.0, -4.0])


def test_gradient_ops_go_on_the_forward_ops_device():
    x = fg.placeholder(fg.float32, (2,))
    with fg.device("/cpu:0"):
        y = fg.tanh(x, name="t")
    (dx,) = fg.gradients(y, [x])
    grad_ops = [op for op in x.graph.operations if "t_grad" in op.name]
    assert grad_ops and all(op.device == "/cpu:0" for op in grad_ops)
    assert dx.shape == (2,)


def test_gradients_reject_non_tensors_and_other_graphs():
    x = fg.placeholder(fg.float32, ())
    with pytest.raises(TypeError, match="gradients"):
        fg.gradients(x * 2.0, ["x"])
    other = fg.Graph()
    with other.as_default():
        z = fg.placeholder(fg.float32, ())
    with pytest.raises(ValueError, match="another graph"):
        fg.gradients(x * 2.0, [z])


def test_reduce_max_shares_the_gradient_among_ties():
    x = fg.placeholder(fg.float64, (4,))
    (dx,) = fg.gradients(fg.reduce_max(x), [x])
    np.testing.assert_allclose(run(dx, {x: [1.0, 3.0, 3.0, 0.0]}), [0, 0.5, 0.5, 0])


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_and_expand_dims_of_unknown_rank_inputs_differentiate(axis, keepdims):
    x = fg.placeholder(fg.float64, None)
    y = fg.reduce_sum(fg.square(x), axis, keepdims) * fg.reduce_max(x, axis, keepdims)
    z = fg.expand_dims(x, -1) * 2.0
    v = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    fg.testing.check_gradients(y, [x], {x: v})
    fg.testing.check_gradients(z, [x], {x: v})
    (g,) = fg.gradients(y, [x])
    fg.testing.check_gradients(g, [x], {x: v})
