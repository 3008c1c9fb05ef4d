"""TF1's tf.nn.top_k and tf.boolean_mask (flowgraph.selection_ops): values against
NumPy on the reference and the compiled path (float32/float64/int32, ties, k = 0 and
k = the last dimension, batch dimensions; all-false, all-true and rank-2 masks,
``axis``, constant masks), gradients against finite differences (first and second
order), run-time and build errors naming the op and the user's line, the CUDA
simulator."""
import os

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, InvalidArgumentError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(11)
HERE = os.path.basename(__file__)


def _session(optimize):
    return fg.Session(config=fg.SessionConfig(optimize=optimize, compile="eager"))


def _top_k_np(x, k):
    """The specification, written out: per row, a Python sort on (-value, position)."""
    rows = x.reshape(-1, x.shape[-1])
    idx = np.array([sorted(range(len(r)), key=lambda j: (-float(r[j]), j))[:k]
                    for r in rows], np.int64).reshape(x.shape[:-1] + (k,))
    return np.take_along_axis(x, idx, -1), idx.astype(np.int32)


# --- top_k: values ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("optimize", [True, False])
def test_top_k_equals_numpy_with_ties_and_batch_dims(optimize, dtype):
    data = RNG.integers(-3, 4, size=(2, 3, 6)).astype(dtype)     # many ties
    data[0, 0] = 5                                               # a row all equal
    x = fg.placeholder(dtype, [None, 3, 6])
    outs = {k: fg.nn.top_k(x, k) for k in (0, 1, 4, 6)}
    for k, (v, i) in outs.items():
        assert v.shape == (None, 3, k) and v.dtype == dtype and i.dtype == np.int32
    with _session(optimize) as sess:
        got = sess.run(outs, {x: data})
    for k, (v, i) in got.items():
        want_v, want_i = _top_k_np(data, k)
        np.testing.assert_array_equal(i, want_i)
        np.testing.assert_array_equal(v, want_v)
        assert v.dtype == dtype and i.dtype == np.int32 and v.shape == (2, 3, k)
    np.testing.assert_array_equal(got[6][1][0, 0], np.arange(6))    # ties: lower first


@pytest.mark.parametrize("optimize", [True, False])
def test_top_k_of_a_vector_unknown_rank_and_sorted_false(optimize):
    data = np.array([0.5, -1.0, 2.5, 2.5, 0.0])
    x = fg.placeholder(fg.float64, None)
    v, i = fg.nn.top_k(x, k=3, sorted=False)       # returned sorted all the same
    d1, _ = fg.nn.top_k(fg.constant(data))         # k = 1 by default
    with _session(optimize) as sess:
        got_v, got_i, got_d = sess.run([v, i, d1], {x: data})
        with pytest.raises(InvalidArgumentError, match=rf"top_k.*{HERE}.*k <= 2"):
            sess.run(v, {x: data[:2]})
        with pytest.raises(InvalidArgumentError, match=r"top_k.*rank 1 or more"):
            sess.run(v, {x: np.float64(1.0)})
        np.testing.assert_array_equal(sess.run(i, {x: data}), [2, 3, 0])   # usable
    np.testing.assert_array_equal(got_v, [2.5, 2.5, 0.5])
    np.testing.assert_array_equal(got_i, [2, 3, 0])
    np.testing.assert_array_equal(got_d, [2.5])
    assert fg.nn.top_k is fg.nn.top_k and not hasattr(fg, "top_k")


def test_top_k_build_errors_are_clear():
    x = fg.placeholder(fg.float32, [2, 4])
    with pytest.raises(ShapeError, match=rf"top_k \(created at {HERE}.*k <= 4.*found k = 5"):
        fg.nn.top_k(x, 5)
    with pytest.raises(ShapeError, match=rf"top_k \(created at {HERE}.*k >= 0, found k = -1"):
        fg.nn.top_k(x, -1)
    with pytest.raises(TypeError, match=r"top_k.*tensor k is not supported"):
        fg.nn.top_k(x, fg.constant(2))
    with pytest.raises(TypeError, match=r"top_k.*Python int k, found 1.5"):
        fg.nn.top_k(x, 1.5)
    with pytest.raises(ShapeError, match=r"top_k.*rank 1 or more.*scalar"):
        fg.nn.top_k(fg.constant(1.0))
    with pytest.raises(DTypeError, match=r"top_k.*numeric input.*bool"):
        fg.nn.top_k(x > 0.0)


# --- top_k: gradients -------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_top_k_gradients_first_and_second_order(optimize):
    # distinct values (no ties within the finite-difference step)
    xv = (RNG.permutation(24).reshape(2, 3, 4) * 0.25 - 3.0)
    config = fg.SessionConfig(optimize=optimize)
    x = fg.placeholder(fg.float64, [None, 3, 4])
    v, i = fg.nn.top_k(x * fg.exp(x * 0.1), 3)     # increasing: no new ties
    y = fg.square(v) * fg.constant(np.arange(1.0, 4.0))
    assert check_gradients(y, [x], {x: xv}, config=config) < 1e-6
    (g,) = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], {x: xv}, config=config) < 1e-4
    # g back at the indices, zeros elsewhere; no gradient through the indices
    (dx,) = fg.gradients(fg.reduce_sum(fg.nn.top_k(x, 2)[0] * fg.constant([10.0, 1.0])),
                         [x])
    (none,) = fg.gradients(fg.reduce_sum(fg.cast(i, fg.float64)), [x])
    with fg.Session(config=config) as sess:
        got, zeros = sess.run([dx, none], {x: xv})
    np.testing.assert_array_equal(zeros, np.zeros_like(xv))     # as TF1's zeros
    want = np.zeros_like(xv)
    order = np.argsort(-xv, axis=-1)
    np.put_along_axis(want, order[..., :1], 10.0, -1)
    np.put_along_axis(want, order[..., 1:2], 1.0, -1)
    np.testing.assert_array_equal(got, want)


# --- boolean_mask ------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_boolean_mask_equals_numpy(optimize):
    data = RNG.normal(size=(4, 3, 2)).astype(np.float32)
    t = fg.placeholder(fg.float32, [None, 3, 2])
    m1 = fg.placeholder(fg.bool_, [None])
    m2 = fg.placeholder(fg.bool_, [None, 3])
    y1, y2 = fg.boolean_mask(t, m1), fg.boolean_mask(t, m2)
    y_axis = fg.boolean_mask(t, fg.placeholder_with_default(
        np.array([[True, False], [False, False], [True, True]]), [3, 2]), axis=1)
    assert y1.shape == (None, 3, 2) and y2.shape == (None, 2) and y_axis.shape == (None, None)
    mask1 = np.array([True, False, True, True])
    mask2 = RNG.random((4, 3)) < 0.5
    with _session(optimize) as sess:
        got1, got2, got_axis = sess.run([y1, y2, y_axis], {t: data, m1: mask1, m2: mask2})
        none = sess.run(y2, {t: data, m2: np.zeros((4, 3), bool)})
        every = sess.run(y1, {t: data, m1: np.ones(4, bool)})
    np.testing.assert_array_equal(got1, data[mask1])
    np.testing.assert_array_equal(got2, data[mask2])
    np.testing.assert_array_equal(got_axis, data[:, [[True, False], [False, False],
                                                     [True, True]]])
    assert none.shape == (0, 2) and none.dtype == np.float32
    np.testing.assert_array_equal(every, data)


@pytest.mark.parametrize("optimize", [True, False])
def test_boolean_mask_constant_mask_negative_axis_and_int_data(optimize):
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    mask = np.array([False, True, True, False])
    y = fg.boolean_mask(fg.constant(data), mask, axis=-1)   # a constant mask: static
    z = fg.boolean_mask(data, np.array([[True, False, True], [False, False, True]]))
    assert y.shape == (2, 3, 2) and z.shape == (3, 4)
    with _session(optimize) as sess:
        got_y, got_z = sess.run([y, z])
    np.testing.assert_array_equal(got_y, data[..., mask])
    np.testing.assert_array_equal(got_z, data[[0, 0, 1], [0, 2, 2]])
    assert got_y.dtype == np.int32


@pytest.mark.parametrize("optimize", [True, False])
def test_boolean_mask_gradients_first_and_second_order(optimize):
    xv = RNG.normal(size=(3, 2, 2)) * 0.5
    config = fg.SessionConfig(optimize=optimize)
    x = fg.placeholder(fg.float64, [None, 2, 2])
    m = fg.placeholder(fg.bool_, [None, 2])
    mask = np.array([[True, False], [True, True], [False, True]])
    y = fg.square(fg.boolean_mask(fg.tanh(x) * x, m)) * fg.constant([1.0, 2.0])
    feed = {x: xv, m: mask}
    assert check_gradients(y, [x], feed, config=config) < 1e-6
    (g,) = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], feed, config=config) < 1e-4
    (dx,) = fg.gradients(fg.reduce_sum(fg.boolean_mask(x, m, axis=0) * 3.0), [x])
    with fg.Session(config=config) as sess:
        got = sess.run(dx, feed)
    np.testing.assert_array_equal(got, np.where(mask[..., None], 3.0, 0.0) + 0 * xv)


@pytest.mark.parametrize("optimize", [True, False])
def test_boolean_mask_run_time_shape_mismatch_names_the_op(optimize):
    t = fg.placeholder(fg.float32, [None, 2])
    m = fg.placeholder(fg.bool_, [None])
    y = fg.boolean_mask(t, m)
    data = np.ones((3, 2), np.float32)
    with _session(optimize) as sess:
        with pytest.raises(InvalidArgumentError, match=rf"boolean_mask.*{HERE}.*"
                           r"mask of shape \(3,\).*found \(2,\)"):
            sess.run(y, {t: data, m: [True, False]})
        assert sess.run(y, {t: data, m: [True, False, True]}).shape == (2, 2)


def test_boolean_mask_build_errors_are_clear():
    t = fg.placeholder(fg.float32, [4, 3])
    with pytest.raises(ShapeError, match=rf"boolean_mask \(created at {HERE}.*mask of "
                       r"shape \(4,\).*found \(3,\)"):
        fg.boolean_mask(t, fg.placeholder(fg.bool_, [3]))
    with pytest.raises(ShapeError, match=r"boolean_mask.*axis \+ rank\(mask\) <= "
                       r"rank\(tensor\).*axis 1, a mask of rank 2"):
        fg.boolean_mask(t, fg.placeholder(fg.bool_, [3, 1]), axis=1)
    with pytest.raises(ShapeError, match=r"boolean_mask.*rank 1 or more.*scalar"):
        fg.boolean_mask(t, True)
    with pytest.raises(ShapeError, match=r"boolean_mask.*mask of known rank"):
        fg.boolean_mask(t, fg.placeholder(fg.bool_, None))
    with pytest.raises(ShapeError, match=r"boolean_mask.*tensor of known rank"):
        fg.boolean_mask(fg.placeholder(fg.float32, None), [True])
    with pytest.raises(TypeError, match=r"boolean_mask.*Python int axis.*tensor axis is not"):
        fg.boolean_mask(t, [True, False, True, True], axis=fg.constant(0))
    with pytest.raises(DTypeError, match=rf"boolean_mask \(created at {HERE}.*bool mask, "
                       r"found .* int32"):
        fg.boolean_mask(t, [1, 0, 1, 1])


# --- GPU (the numba.cuda simulator when no GPU is present; tests/conftest.py) ------------

@pytest.mark.usefixtures("needs_gpu")
def test_top_k_and_boolean_mask_on_the_gpu_equal_the_cpu():
    from flowgraph.testing import compare_devices
    data = RNG.permutation(8).reshape(2, 4).astype(np.float32)
    mask = np.array([[True, False, False, True], [False, True, True, True]])

    def build(run_time_mask):
        x = fg.placeholder(fg.float32, (2, 4))
        m = fg.placeholder(fg.bool_, (2, 4))
        v, i = fg.nn.top_k(x, 2)
        kept = fg.boolean_mask(x, m if run_time_mask else mask)
        loss = fg.reduce_sum(v * v) + fg.reduce_sum(fg.tanh(kept))
        return [v, i, kept, *fg.gradients(loss, [x])], {x: data, m: mask}
    # a constant mask: a compiled GPU plan (TopK's host fallback, the gather on the
    # device); a run-time mask: a length known at run time only, the reference path
    for run_time_mask in (False, True):
        results = compare_devices(lambda: build(run_time_mask), devices=("/cpu:0", "/gpu:0"))
        assert set(results) == {"/cpu:0", "/gpu:0"}
        gpu = results["/gpu:0"]
        np.testing.assert_array_equal(gpu[1], _top_k_np(data, 2)[1])
        np.testing.assert_array_equal(gpu[2], data[mask])


@pytest.mark.parametrize("optimize", [True, False])
def test_top_k_with_k_0_of_an_empty_last_dimension_and_its_gradient(optimize):
    x = fg.placeholder(fg.float64, [None, None])
    v, i = fg.nn.top_k(x, 0)
    (g,) = fg.gradients(fg.reduce_sum(v), [x])
    with _session(optimize) as sess:
        for cols in (3, 0):
            got_v, got_i, got_g = sess.run([v, i, g], {x: np.ones((2, cols))})
            assert got_v.shape == got_i.shape == (2, 0) and got_i.dtype == np.int32
            np.testing.assert_array_equal(got_g, np.zeros((2, cols)))
