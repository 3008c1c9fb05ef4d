"""TF1's //, %, &, |, ^, ~ and tensor ** operators, fg.floordiv / floormod / mod and the
tf.to_float family (flowgraph/tf1_operators.py): NumPy's results on both paths."""
import numpy as np
import pytest

import flowgraph as fg


def both_paths(fetches, feed=None):
    out = []
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            out.append(sess.run(fetches, feed))
    for a, b in zip(*out):
        assert a.dtype == b.dtype
        # Compiled float kernels may differ from NumPy in the last bit (pow, say).
        np.testing.assert_allclose(a, b, rtol=1e-6)
    return out[1]


def test_floordiv_and_floormod_round_toward_minus_infinity_as_numpy():
    xi, yi = np.array([-7, 7, 6, -6, 0], np.int32), np.array([2, -3, 3, 4, -5], np.int32)
    xf = np.array([-7.5, 7.0, 6.25, -6.0, 0.5], np.float32)
    yf = np.array([2.0, -3.0, 3.0, 4.0, -0.25], np.float32)
    a, b = fg.constant(xi), fg.constant(yi)
    c, d = fg.constant(xf), fg.constant(yf)
    got = both_paths([a // b, a % b, c // d, c % d, fg.floordiv(a, b), fg.mod(c, d),
                      fg.floormod(10, b), 10 // b, 10.0 % d])
    want = [xi // yi, xi % yi, xf // yf, xf % yf, xi // yi, xf % yf, 10 % yi, 10 // yi,
            np.float32(10.0) % yf]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_integer_floordiv_by_zero_raises():
    with pytest.raises(fg.errors.InvalidArgumentError, match="division by zero"):
        both_paths(fg.constant([1, 2]) // fg.constant([0, 1]))


def test_floormod_gradient_is_tf1s():
    x = fg.constant([-7.5, 7.0, 6.25])
    y = fg.constant([2.0, -3.0, 3.0])
    gx, gy = both_paths(fg.gradients(fg.reduce_sum(x % y), [x, y]))
    np.testing.assert_array_equal(gx, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(gy, [4.0, 3.0, -2.0])     # -floor(x / y)


def test_logical_operators_on_bool_tensors():
    p, q = np.array([True, False, True, False]), np.array([True, True, False, False])
    a, b = fg.constant(p), fg.constant(q)
    got = both_paths([a & b, a | b, a ^ b, ~a, True & a, False | a])
    for g, w in zip(got, [p & q, p | q, p ^ q, ~p, p, p]):
        np.testing.assert_array_equal(g, w)


def test_logical_operators_reject_other_dtypes_naming_the_operator_and_line():
    with pytest.raises(fg.errors.DTypeError,
                       match=r"operator & \(at test_tf1_operators.py:\d+\).*int32"):
        fg.constant([1]) & fg.constant([1])
    with pytest.raises(fg.errors.DTypeError, match=r"operator ~.*float32"):
        ~fg.constant([1.0])


def test_pow_with_tensor_exponent_or_base_and_variables():
    x = fg.constant([1.5, 2.0, 3.0])
    v = fg.Variable([2.0, 3.0, 0.5])
    got = both_paths([x ** v, 2.0 ** x, v ** 2, 3 ** v, x ** np.float32(2.0)])
    xv, vv = np.float32([1.5, 2.0, 3.0]), np.float32([2.0, 3.0, 0.5])
    for g, w in zip(got, [xv ** vv, np.float32(2.0) ** xv, vv ** 2, np.float32(3) ** vv,
                          xv ** 2]):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_to_float_family():
    x = fg.constant([1, 2])
    got = both_paths([fg.to_float(x), fg.to_double(x), fg.to_int32(fg.to_float(x)),
                      fg.to_int64(x)])
    assert [g.dtype for g in got] == [np.float32, np.float64, np.int32, np.int64]
