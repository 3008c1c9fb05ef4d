"""TF1's smaller ops as compositions (flowgraph.math_ops, flowgraph.slicing_ops, the
new fg.nn activations, in_top_k, clip_by_norm): values against NumPy on the compiled
and the reference path, special values, gradients against finite differences (first
and second order where smooth), TF1's derivatives at the kinks, clear errors."""
import numpy as np
import pytest
import torch

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(3)
SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e-300, 700.0])


def _run(t, feed=None, optimize=True):
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        return sess.run(t, feed)


@pytest.mark.parametrize("optimize", [True, False])
def test_math_ops_equal_numpy_with_special_values(optimize):
    x = fg.placeholder(fg.float64, [None])
    outs = [fg.is_nan(x), fg.is_inf(x), fg.is_finite(x), fg.count_nonzero(x),
            fg.squared_difference(x, 1.0)]
    got = _run(outs, {x: SPECIAL}, optimize)
    np.testing.assert_array_equal(got[0], np.isnan(SPECIAL))
    np.testing.assert_array_equal(got[1], np.isinf(SPECIAL))
    np.testing.assert_array_equal(got[2], np.isfinite(SPECIAL))
    assert got[3] == np.count_nonzero(SPECIAL) and got[3].dtype == np.int64
    np.testing.assert_array_equal(got[4], (SPECIAL - 1.0) ** 2)
    pos = np.abs(RNG.normal(size=(3, 4))) + 0.1
    p = fg.placeholder(fg.float32, [None, 4])
    r, q = _run([fg.rsqrt(p), fg.reciprocal(p)], {p: pos.astype(np.float32)}, optimize)
    np.testing.assert_allclose(r, 1 / np.sqrt(pos), rtol=1e-6)
    np.testing.assert_allclose(q, 1 / pos, rtol=1e-6)
    i = fg.constant([7, -3])
    div = fg.truediv(i, 2)
    assert div.dtype == fg.float64
    np.testing.assert_array_equal(_run(div, optimize=optimize), [3.5, -1.5])
    counts = _run(fg.count_nonzero(fg.constant([[0, 1, 2], [0, 0, 3]]), axis=1,
                                   keepdims=True), optimize=optimize)
    np.testing.assert_array_equal(counts, [[2], [1]])
    np.testing.assert_array_equal(_run(fg.count_nonzero(fg.constant([True, False, True])),
                                       optimize=optimize), 2)
    np.testing.assert_array_equal(_run(fg.eye(2, 3, batch_shape=[2], dtype=fg.float64)),
                                  np.broadcast_to(np.eye(2, 3), (2, 2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimize", [True, False])
def test_floor_ceil_round_are_exact_with_signs_halves_and_huge_values(optimize, dtype):
    """The generated kernel (optimize=True, compiled at once) against NumPy bit for bit:
    halves to even, -0.0 kept, values past 2**52 (where int() would overflow), inf, NaN."""
    with np.errstate(over="ignore"):       # 1e300 is inf in float32
        xv = np.array([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, -3.5, 0.49999999999999994,
                       -0.49999999999999994, 2.0 ** 52 + 1, -(2.0 ** 52) - 1,
                       4503599627370495.5, -4503599627370495.5, 8388607.5, -8388608.5,
                       1e300, -1e300, 1e-300, -1e-300, 3.7, -3.7, np.inf, -np.inf,
                       np.nan]).astype(dtype)
    x = fg.placeholder(dtype, [None])
    config = fg.SessionConfig(optimize=optimize, compile="eager")
    with fg.Session(config=config) as sess:
        got = sess.run([fg.floor(x), fg.ceil(x), fg.round(x)], {x: xv})
    for g, ref in zip(got, (np.floor, np.ceil, np.rint)):
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, ref(xv))
        np.testing.assert_array_equal(np.signbit(g), np.signbit(ref(xv)))
    (dx,) = fg.gradients(fg.reduce_sum(fg.floor(x) + fg.round(x) * x), [x])
    np.testing.assert_array_equal(_run(dx, {x: xv[2:8]}, optimize), np.rint(xv[2:8]))
    with pytest.raises(DTypeError):
        fg.floor(fg.constant([1, 2]))


@pytest.mark.parametrize("optimize", [True, False])
def test_reduce_logsumexp_is_stable_and_matches_torch(optimize):
    xv = np.concatenate([RNG.normal(size=(3, 5)), [[1000.0, 1000.0, -1000.0, 0.0, 1.0]],
                         [[-np.inf] * 5]])
    x = fg.placeholder(fg.float64, [None, 5])
    outs = [fg.reduce_logsumexp(x, 1), fg.reduce_logsumexp(x[:4], keepdims=True),
            fg.reduce_logsumexp(x, reduction_indices=[1], keep_dims=True)]
    row, whole, kept = _run(outs, {x: xv}, optimize)
    want = torch.logsumexp(torch.tensor(xv), 1).numpy()
    np.testing.assert_allclose(row, want, rtol=1e-12)
    assert row[-1] == -np.inf                                  # every entry -inf
    np.testing.assert_allclose(whole, torch.logsumexp(torch.tensor(xv[:4]).reshape(-1),
                                                      0).numpy().reshape(1, 1), rtol=1e-12)
    np.testing.assert_allclose(kept[:, 0], want, rtol=1e-12)


SMOOTH = {
    "reduce_logsumexp": lambda x: fg.reduce_logsumexp(x, 1),
    "rsqrt": lambda x: fg.rsqrt(fg.square(x) + 0.5),
    "reciprocal": lambda x: fg.reciprocal(fg.square(x) + 0.5),
    "log_sigmoid": fg.log_sigmoid,
    "squared_difference": lambda x: fg.squared_difference(x, fg.tanh(x)),
    "selu": fg.nn.selu,
    "swish": fg.nn.swish,
    "clip_by_norm": lambda x: fg.clip_by_norm(x, 1.5, axes=[1]),
    "pad_reflect": lambda x: fg.pad(x, [[1, 1], [2, 0]], "REFLECT") * 1.5,
    "pad_symmetric": lambda x: fg.square(fg.pad(x, [[0, 2], [1, 1]], "SYMMETRIC")),
    "pad_constant": lambda x: fg.exp(fg.pad(x, [[1, 0], [0, 2]], constant_values=0.5)),
}


@pytest.mark.parametrize("case", sorted(SMOOTH))
def test_gradients_first_and_second_order(case):
    xv = np.array([[-1.3, 0.4, 2.1], [0.7, -0.2, 1.1], [0.3, 0.9, -2.4]])
    x = fg.placeholder(fg.float64, [None, 3])
    y = SMOOTH[case](x)
    assert check_gradients(y, [x], {x: xv}) < 1e-6
    (g,) = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], {x: xv}) < 1e-4


@pytest.mark.parametrize("optimize", [True, False])
def test_activations_equal_torch_and_tf1_kinks(optimize):
    xv = np.array([-30.0, -6.0, -1.0, 0.0, 1e-3, 3.0, 6.0, 8.0, 40.0])
    x = fg.placeholder(fg.float64, [None])
    fns = [fg.nn.relu6, fg.nn.selu, fg.nn.swish, fg.nn.log_sigmoid]
    got = _run([f(x) for f in fns], {x: xv}, optimize)
    t = torch.tensor(xv)
    want = [torch.nn.functional.relu6(t), torch.selu(t), torch.nn.functional.silu(t),
            torch.nn.functional.logsigmoid(t)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-12, atol=1e-15)
    (d6,) = _run(fg.gradients(fg.reduce_sum(fg.nn.relu6(x)), [x]), {x: xv}, optimize)
    np.testing.assert_array_equal(d6, (xv > 0) & (xv < 6))     # 0 at both kinks (TF1)


@pytest.mark.parametrize("optimize", [True, False])
def test_slice_pad_and_matrix_transpose_equal_numpy(optimize):
    xv = RNG.normal(size=(3, 4, 5))
    x = fg.placeholder(fg.float64, [None, 4, 5])
    pads = [[1, 2], [0, 1], [3, 0]]
    outs = [fg.slice(x, [1, 0, 2], [2, -1, 3]), fg.matrix_transpose(x),
            fg.pad(x, pads, constant_values=-1.0), fg.pad(x, pads, "reflect"),
            fg.pad(x, pads, "SYMMETRIC"), fg.pad(x, [[0, 0], [0, 0], [0, 0]])]
    got = _run(outs, {x: xv}, optimize)
    np.testing.assert_array_equal(got[0], xv[1:3, 0:, 2:5])
    np.testing.assert_array_equal(got[1], np.swapaxes(xv, 1, 2))
    np.testing.assert_array_equal(got[2], np.pad(xv, pads, constant_values=-1.0))
    np.testing.assert_array_equal(got[3], np.pad(xv, pads, "reflect"))
    np.testing.assert_array_equal(got[4], np.pad(xv, pads, "symmetric"))
    np.testing.assert_array_equal(got[5], xv)
    assert outs[2].shape == (None, 5, 8)
    ints = _run(fg.pad(fg.constant([[1, 2]]), [[1, 0], [0, 1]], constant_values=9))
    np.testing.assert_array_equal(ints, [[9, 9, 9], [1, 2, 9]])


@pytest.mark.parametrize("optimize", [True, False])
def test_in_top_k_follows_tf1_with_ties_and_bad_targets(optimize):
    scores = np.array([[0.1, 0.7, 0.2, 0.0],
                       [0.5, 0.5, 0.5, 0.1],     # a three-way tie: all in top 1
                       [0.3, np.nan, 0.2, 0.1],
                       [0.3, np.inf, 0.2, 0.1],
                       [0.3, 0.1, 0.2, 0.4]])
    targets = np.array([2, 1, 1, 1, 7])          # NaN, inf target; out of range
    p = fg.placeholder(fg.float32, [None, 4])
    t = fg.placeholder(fg.int32, [None])
    top1, top2 = _run([fg.nn.in_top_k(p, t, 1), fg.nn.in_top_k(p, t, 2)],
                      {p: scores.astype(np.float32), t: targets}, optimize)
    np.testing.assert_array_equal(top1, [False, True, False, False, False])
    np.testing.assert_array_equal(top2, [True, True, False, False, False])
    rand = RNG.normal(size=(50, 10))
    labels = RNG.integers(0, 10, size=50)
    got = _run(fg.nn.in_top_k(fg.constant(rand), fg.constant(labels), 3), optimize=optimize)
    want = (rand > rand[np.arange(50), labels][:, None]).sum(1) < 3
    np.testing.assert_array_equal(got, want)


def test_clip_by_norm_and_global_norm():
    xv = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    x = fg.placeholder(fg.float64, [None, 2])
    rows, whole = fg.clip_by_norm(x, 1.0, axes=[1]), fg.clip_by_norm(x, 1.0)
    norm = fg.global_norm([x, None, x])
    (g,) = fg.gradients(fg.reduce_sum(fg.clip_by_norm(x, 1.0, axes=[1])), [x])
    got = _run([rows, whole, norm, g], {x: xv})
    np.testing.assert_allclose(got[0], [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(got[1], xv / np.linalg.norm(xv))
    np.testing.assert_allclose(got[2], np.sqrt(2) * np.linalg.norm(xv))
    assert np.all(np.isfinite(got[3]))                          # the zero row: no NaN


@pytest.mark.parametrize("optimize", [True, False])
def test_gather_nd_equals_numpy_indexing_and_its_gradient_checks(optimize):
    xv = RNG.normal(size=(3, 4, 2))
    x = fg.placeholder(fg.float64, [None, None, 2])           # leading sizes at run time
    i1 = np.array([[2], [0]])
    i2 = np.array([[[0, 3], [2, 1]], [[1, 1], [0, 0]]])       # [2, 2, K=2]
    i3 = np.array([[2, 3, 1], [0, 0, 0], [2, 3, 1]])          # a repeated index
    outs = [fg.gather_nd(x, i1), fg.gather_nd(x, i2), fg.gather_nd(x, i3)]
    assert outs[1].shape[:2] == (2, 2) and outs[2].shape == (3,)
    got = _run(outs, {x: xv}, optimize)
    np.testing.assert_array_equal(got[0], xv[i1[:, 0]])
    np.testing.assert_array_equal(got[1], xv[i2[..., 0], i2[..., 1]])
    np.testing.assert_array_equal(got[2], xv[i3[:, 0], i3[:, 1], i3[:, 2]])
    y = fg.gather_nd(x, i3) * fg.gather_nd(x, i2)[0, 0, 0]
    assert check_gradients(y, [x], {x: xv}) < 1e-6


@pytest.mark.parametrize("optimize", [True, False])
def test_gather_nd_out_of_range_raises_and_the_session_stays_usable(optimize):
    x = fg.placeholder(fg.float64, [3, 4])
    i = fg.placeholder(fg.int32, [None, 2])
    y = fg.gather_nd(x, i)
    xv = np.arange(12.0).reshape(3, 4)
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        with pytest.raises(fg.errors.InvalidArgumentError, match="Gather.*found -1"):
            sess.run(y, {x: xv, i: [[0, 4]]})                # [0, 4] would be row 1's 0
        np.testing.assert_array_equal(sess.run(y, {x: xv, i: [[1, 0]]}), [4.0])


def test_errors_name_the_op_and_what_was_found():
    x = fg.placeholder(fg.float32, [2, 3])
    with pytest.raises(ShapeError, match="slice: expected begin as Python ints"):
        fg.slice(x, fg.constant([0, 0]), [1, 1])
    with pytest.raises(ShapeError, match=r"begin \+ size <= 3 along axis 1"):
        fg.slice(x, [0, 2], [1, 2])
    with pytest.raises(ValueError, match="expected mode in"):
        fg.pad(x, [[0, 0], [1, 1]], "WRAP")
    with pytest.raises(ShapeError, match=r"pad \(REFLECT\): expected paddings below 3"):
        fg.pad(x, [[0, 0], [3, 0]], "REFLECT")
    with pytest.raises(ShapeError, match=r"paddings of shape \[2, 2\]"):
        fg.pad(x, [[0, 0]])
    with pytest.raises(DTypeError, match="is_nan: expected a float tensor"):
        fg.is_nan(fg.constant([1, 2]))
    with pytest.raises(DTypeError, match="in_top_k: expected integer targets"):
        fg.nn.in_top_k(x, fg.constant([0.0, 1.0]), 1)
    with pytest.raises(ShapeError, match=r"gather_nd: expected the indices' last "
                                         r"dimension K in \[1, 2\].*found 3"):
        fg.gather_nd(x, [[0, 0, 0]])
    with pytest.raises(ShapeError, match="matrix_transpose of .*rank 2 or more"):
        fg.matrix_transpose(fg.constant([1.0]))
