"""TF1's tf.math.polyval, scalar_mul, zero_fraction and reduce_euclidean_norm against
NumPy on both paths; gradients against finite differences; errors naming the call site."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.testing import check_gradients

from reference_runs import run_both


def test_values_match_numpy():
    value = np.array([[0.0, 1.5, -2.0], [0.0, 0.0, 3.0]])
    x = fg.placeholder(fg.float64, (2, 3))
    c = fg.placeholder(fg.float64, ())
    outs = [fg.math.polyval([2.0, c, -1.0, 0.5], x), fg.math.polyval([], x),
            fg.math.scalar_mul(c, x), fg.math.scalar_mul(3, x), fg.math.zero_fraction(x),
            fg.math.reduce_euclidean_norm(x), fg.math.reduce_euclidean_norm(x, 1, True)]
    want = [np.polyval([2.0, 0.7, -1.0, 0.5], value), np.zeros_like(value), 0.7 * value,
            3 * value, 0.5, np.linalg.norm(value), np.linalg.norm(value, axis=1, keepdims=True)]
    for got in run_both(outs, {x: value, c: 0.7}):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-14)
        assert got[4].dtype == np.float32


def test_gradients():
    value = np.array([[0.3, 1.5, -2.0], [0.7, -0.4, 3.0]])
    x = fg.placeholder(fg.float64, (2, 3))
    c = fg.placeholder(fg.float64, ())
    y = fg.math.polyval([2.0, c, -1.0], x) * fg.math.reduce_euclidean_norm(x, 0)
    assert check_gradients(fg.math.scalar_mul(c, y), [x, c], {x: value, c: 0.7}) < 1e-6
    g, = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: value, c: 0.7}) < 1e-5


def test_errors_name_the_call_site():
    with pytest.raises(fg.errors.ShapeError, match=r"scalar_mul \(called at "
                                                   r".*test_math_helpers.py:\d+\): expected a scalar"):
        fg.math.scalar_mul(fg.ones([2]), fg.ones([2]))
    with pytest.raises(ValueError, match=r"polyval \(called at .*expected coeffs as a list"):
        fg.math.polyval(fg.ones([2]), 1.0)
    with pytest.raises(fg.errors.DTypeError, match=r"reduce_euclidean_norm \(called at "):
        fg.math.reduce_euclidean_norm(fg.constant([1, 2]))
