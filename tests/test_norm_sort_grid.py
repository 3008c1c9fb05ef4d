"""TF1's tf.norm, tf.sort / tf.argsort, tf.linspace / tf.lin_space and tf.meshgrid
against NumPy (np.linalg.norm, a stable np.sort/np.argsort, np.linspace, np.meshgrid) on
the reference and the compiled path; gradients first and second order against finite
differences; errors naming the function and the user's line."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both

rng = np.random.default_rng(11)

# --- norm ---------------------------------------------------------------------------------

NORMS = [("euclidean", None), ("euclidean", 0), ("euclidean", -1), (2, 1), (1, 1),
         (1, None), (np.inf, None), (np.inf, 0), (3, 1), (0.5, -1), (1.5, None),
         ("fro", (1, 2)), ("euclidean", (0, 1)), (1, (1, 2)), (1, (2, 1)), (np.inf, (1, 2)),
         (np.inf, (-1, -3)), ("fro", [-2, -1])]


def numpy_norm(x, ord, axis, keepdims):
    if axis is None:
        flat = x.reshape(-1)
        want = np.linalg.norm(flat, 2 if ord == "euclidean" else ord)
        return want.reshape((1,) * x.ndim) if keepdims else want
    if isinstance(axis, int):
        return np.linalg.norm(x, 2 if ord == "euclidean" else ord, axis=axis, keepdims=keepdims)
    return np.linalg.norm(x, "fro" if ord == "euclidean" else ord, axis=tuple(axis),
                          keepdims=keepdims)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ord,axis", NORMS, ids=[f"{o}-{a}" for o, a in NORMS])
def test_norm_matches_numpy(ord, axis, keepdims):
    value = rng.normal(size=(2, 3, 4))
    x = fg.placeholder(fg.float64, (2, 3, 4))
    y = fg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    want = numpy_norm(value, ord, axis, keepdims)
    assert y.shape == np.shape(want)
    for got in run_both(y, {x: value}):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_norm_keep_dims_spelling_float32_and_unknown_dimensions():
    x = fg.placeholder(fg.float32, (None, 3))
    y = fg.norm(x, axis=1, keep_dims=True)
    assert y.shape == (None, 1) and y.dtype == fg.float32
    value = rng.normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(fg.Session().run(y, {x: value}),
                               np.linalg.norm(value, axis=1, keepdims=True), rtol=1e-6)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
@pytest.mark.parametrize("ord,axis", [("euclidean", None), (1, 1), (3, -1), (np.inf, 0),
                                      ("fro", (0, 1)), (1, (0, 1)), (np.inf, (0, 1))])
def test_norm_gradients_first_and_second_order(ord, axis, config):
    value = np.array([[0.7, -1.3, 2.1], [-0.4, 1.9, 0.9]])      # no ties, no zeros
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.norm(x, ord=ord, axis=axis)
    assert check_gradients(y, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(ord="fro"), ValueError, "'fro' is for matrices"),
    (dict(ord=2, axis=(0, 1)), ValueError, "matrix norm ord"),
    (dict(ord=0), ValueError, "a real > 0"),
    (dict(ord=-1, axis=1), ValueError, "a real > 0"),
    (dict(axis=(0, 1, 1)), ValueError, "a pair of ints"),
    (dict(axis=(1, -1)), ValueError, "two different axes"),
    (dict(axis=2), ValueError, "out of range"),
])
def test_norm_errors_name_norm_and_the_call_site(kwargs, error, message):
    with pytest.raises(error, match=r"norm \(called at .*test_norm_sort_grid.py:\d+\): .*"
                                    + message):
        fg.norm(fg.ones([2, 3]), **kwargs)
    with pytest.raises(DTypeError, match=r"norm \(called at .*expected a float tensor"):
        fg.norm(fg.constant([1, 2]))


# --- sort and argsort ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_sort_and_argsort_match_a_stable_numpy_sort(dtype, axis):
    value = rng.integers(-3, 4, (3, 4, 5)).astype(dtype)           # many ties
    x = fg.placeholder(dtype, (3, 4, 5))
    outs = [fg.sort(x, axis), fg.argsort(x, axis), fg.sort(x, axis, "DESCENDING"),
            fg.argsort(x, axis, "DESCENDING")]
    want = [np.sort(value, axis), np.argsort(value, axis, kind="stable"),
            -np.sort(-value, axis), np.argsort(-value, axis, kind="stable")]
    for got in run_both(outs, {x: value}):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        assert got[0].dtype == dtype and got[1].dtype == np.int32


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_sort_gradients_first_and_second_order(config):
    value = rng.permutation(12).reshape(3, 4) * 0.5 - 2.0            # distinct values
    x = fg.placeholder(fg.float64, (3, 4))
    y = fg.sort(x * x * x, axis=0) * fg.constant(np.arange(12.0).reshape(3, 4))
    assert check_gradients(y, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(fg.sort(x * x * x, direction="DESCENDING")
                                    * np.arange(4.0)), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5


def test_sort_errors_name_the_function_and_the_call_site():
    with pytest.raises(ValueError, match=r"sort \(called at .*test_norm_sort_grid.py:\d+\): "
                                         r"expected direction"):
        fg.sort([1.0, 2.0], direction="UP")
    with pytest.raises(ShapeError, match=r"argsort \(called at .*size of axis 1 .* known"):
        fg.argsort(fg.placeholder(fg.float32, (2, None)))
    with pytest.raises(ShapeError, match=r"sort \(called at .*axis 2 out of range"):
        fg.sort(fg.ones([2, 2]), axis=2)


# --- linspace and meshgrid ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("start,stop,num", [(0.0, 1.0, 5), (10.0, -3.0, 7), (2.5, 2.5, 3),
                                            (1.0, 4.0, 1), (0.1, 0.7, 4), (-1.0, 1.0, 2)])
def test_linspace_matches_numpy(start, stop, num, dtype):
    s, e = fg.constant(start, dtype), fg.constant(stop, dtype)
    n = fg.placeholder(fg.int32, ())
    static, dynamic = fg.linspace(s, e, num), fg.lin_space(s, e, n)
    assert static.shape == (num,) and static.dtype == dtype
    want = np.linspace(start, stop, num).astype(dtype)
    for got in run_both([static, dynamic], {n: num}):
        for g in got:
            np.testing.assert_allclose(g, want, rtol=1e-6 if dtype == np.float32 else 1e-15)
            assert g[0] == want[0] and g[-1] == want[-1] and g.dtype == dtype


def test_linspace_gradients_and_errors():
    s, e = fg.placeholder(fg.float64, ()), fg.placeholder(fg.float64, ())
    y = fg.linspace(s, e, 5)
    feed = {s: 0.3, e: 2.0}
    assert check_gradients(y * y, [s, e], feed) < 1e-6
    gs, ge = fg.gradients(fg.reduce_sum(y), [s, e])
    np.testing.assert_allclose(fg.Session().run([gs, ge], feed), [2.5, 2.5])
    with pytest.raises(ValueError, match=r"linspace \(called at .*test_norm_sort_grid.py:\d+\)"
                                         r": expected num a positive int"):
        fg.linspace(0.0, 1.0, 0)
    with pytest.raises(DTypeError, match=r"linspace \(called at .*expected float start"):
        fg.linspace(0, 1, 3)


@pytest.mark.parametrize("indexing", ["xy", "ij"])
@pytest.mark.parametrize("sizes", [(3,), (3, 2), (2, 4, 3)])
def test_meshgrid_matches_numpy(sizes, indexing):
    values = [rng.normal(size=n) for n in sizes]
    xs = [fg.placeholder(fg.float64, (None,)) for _ in sizes]
    outs = fg.meshgrid(*xs, indexing=indexing)
    want = np.meshgrid(*values, indexing=indexing)
    for got in run_both(outs, dict(zip(xs, values))):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_meshgrid_gradients_and_errors():
    a, b = fg.placeholder(fg.float64, (3,)), fg.placeholder(fg.float64, (2,))
    x, y = fg.meshgrid(a, b)
    feed = {a: np.array([0.5, -1.0, 2.0]), b: np.array([1.5, 0.3])}
    assert check_gradients(x * y * x, [a, b], feed) < 1e-6
    ga, gb = fg.gradients(fg.reduce_sum(x * y), [a, b])
    got_a, got_b = fg.Session().run([ga, gb], feed)
    np.testing.assert_allclose(got_a, np.full(3, 1.8))
    np.testing.assert_allclose(got_b, np.full(2, 1.5))
    with pytest.raises(ValueError, match=r"meshgrid \(called at .*test_norm_sort_grid.py:\d+\)"
                                         r": expected indexing"):
        fg.meshgrid(a, b, indexing="yx")
    with pytest.raises(DTypeError, match=r"meshgrid \(called at .*one dtype"):
        fg.meshgrid(a, fg.constant([1, 2]))
