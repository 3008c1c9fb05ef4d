"""TF1's xlogy, xdivy, div_no_nan (divide_no_nan), reduce_variance and reduce_std against
NumPy, zeros included, broadcasting, both paths; gradients (TF1's: 0 at the selected
zeros, finite everywhere) first and second order against finite differences away from
the zeros; errors naming the function and the call site."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both

X = np.array([[0.0, 2.0, -1.5], [0.0, 0.5, 3.0]])
Y = np.array([0.0, 4.0, 0.0])


def test_values_with_zeros_and_broadcasting():
    x, y = fg.placeholder(fg.float64, (2, 3)), fg.placeholder(fg.float64, (3,))
    outs = [fg.math.xlogy(x, y), fg.math.xdivy(x, y), fg.div_no_nan(x, y),
            fg.math.divide_no_nan(y, x)]
    with np.errstate(all="ignore"):
        yb = np.broadcast_to(Y, X.shape)
        want = [np.where(X == 0, 0, X * np.log(yb)), np.where(X == 0, 0, X / yb),
                np.where(yb == 0, 0, X / yb), np.where(X == 0, 0, yb / X)]
    for got in run_both(outs, {x: X, y: Y}):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_gradients_are_tf1s_at_the_zeros_and_match_fd_elsewhere(config):
    x, y = fg.placeholder(fg.float64, (2, 3)), fg.placeholder(fg.float64, (3,))
    total = fg.reduce_sum(fg.math.xlogy(x, y) + fg.math.xdivy(x, y) + fg.div_no_nan(x, y))
    gx, gy = fg.gradients(total, [x, y])
    with fg.Session(config=config) as sess:
        got_x, got_y = sess.run([gx, gy], {x: X, y: Y})
    # finite wherever TF1's are: x == 0, or y != 0 (x / 0 and log(0) are infinite, as TF1)
    finite = (X == 0) | (Y != 0)
    assert np.isfinite(got_x[finite]).all() and np.isfinite(got_y[1])
    # at x == 0: d/dx of xlogy/xdivy is 0 (TF1), div_no_nan's 1/y where y != 0
    assert got_x[0, 0] == 0 and got_x[1, 0] == 0
    assert got_x[0, 1] == pytest.approx(np.log(4.0) + 0.25 + 0.25)
    xv = np.array([[0.7, 2.0, -1.5], [1.2, 0.5, 3.0]])
    yv = np.array([0.6, 4.0, 1.3])
    for fn in (fg.math.xlogy, fg.math.xdivy, fg.div_no_nan):
        out = fn(x, y)
        assert check_gradients(out * out, [x, y], {x: xv, y: yv}, config=config) < 1e-5
        ga, gb = fg.gradients(fg.reduce_sum(out * x), [x, y])
        assert check_gradients(fg.reduce_sum(ga * ga) + fg.reduce_sum(gb), [x, y],
                               {x: xv, y: yv}, config=config) < 1e-4


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (1, True),
                                           ([0, 1], True), (-1, False)])
def test_reduce_variance_and_std_match_numpy(axis, keepdims):
    value = np.random.default_rng(0).normal(size=(3, 4))
    x = fg.placeholder(fg.float64, (3, 4))
    outs = [fg.math.reduce_variance(x, axis, keepdims), fg.math.reduce_std(x, axis, keepdims)]
    np_axis = tuple(axis) if isinstance(axis, list) else axis
    for got in run_both(outs, {x: value}):
        np.testing.assert_allclose(got[0], np.var(value, np_axis, keepdims=keepdims), rtol=1e-13)
        np.testing.assert_allclose(got[1], np.std(value, np_axis, keepdims=keepdims), rtol=1e-13)
    assert check_gradients(outs[1], [x], {x: value}) < 1e-6


def test_errors_name_the_function_and_the_call_site():
    with pytest.raises(DTypeError, match=r"xlogy \(called at .*test_safe_math.py:\d+\): "
                                         r"expected float inputs"):
        fg.math.xlogy(fg.constant([1]), fg.constant([2]))
    with pytest.raises(DTypeError, match=r"div_no_nan \(called at .*test_safe_math.py"):
        fg.div_no_nan(fg.constant([1, 2]), 2)
    with pytest.raises(DTypeError, match=r"reduce_variance \(called at .*test_safe_math"):
        fg.math.reduce_std(fg.constant([1, 2]))
