"""Dtypes and promotion: NumPy rules between arrays and tensors; Python scalars are weak
(NumPy 2 / JAX): they never upcast a tensor.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import DTypeError

NUMERIC = [fg.float32, fg.float64, fg.int32, fg.int64]


def run(fetches, feed=None):
    with fg.Session() as sess:
        return sess.run(fetches, feed)


def test_dtype_objects_are_numpy_dtypes_and_strings_are_accepted():
    assert fg.float32 == np.dtype("float32") and fg.bool_ == np.dtype(bool)
    for spelling in ("float64", np.float64, np.dtype("float64"), fg.float64):
        assert fg.placeholder(spelling, ()).dtype == np.float64
    with pytest.raises(DTypeError, match="expected one of"):
        fg.constant(1, dtype="int8")
    with pytest.raises(DTypeError, match="expected a dtype"):
        fg.placeholder("not a dtype")


def test_constant_dtypes():
    assert fg.constant(1.0).dtype == np.float32
    assert fg.constant(1).dtype == np.int32
    assert fg.constant(True).dtype == np.bool_
    assert fg.constant([1, 2]).dtype == np.int32
    assert fg.constant(np.zeros(2)).dtype == np.float64
    assert fg.constant(np.int64(3)).dtype == np.int64
    assert fg.constant(1, dtype="float64").dtype == np.float64
    assert fg.Variable(1.0).dtype == np.float32 and fg.Variable(np.ones(2)).dtype == np.float64


@settings(max_examples=20)
@given(a=st.sampled_from(NUMERIC), b=st.sampled_from(NUMERIC),
       op=st.sampled_from(["add", "subtract", "multiply", "maximum"]))
def test_tensors_and_arrays_promote_by_numpy_rules(a, b, op):
    x = np.array([1, 2, 3], a)
    y = np.array([3, 1, 2], b)
    with fg.Graph().as_default():
        px = fg.placeholder(a, (3,))
        py = fg.placeholder(b, (3,))
        fn = getattr(fg, op)
        t_t, t_arr = fn(px, py), fn(px, y)
        got = run([t_t, t_arr], {px: x, py: y})
    want = getattr(np, op)(x, y)
    assert t_t.dtype == t_arr.dtype == np.promote_types(a, b) == want.dtype
    for g in got:
        assert g.dtype == want.dtype
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("dtype, scalar, expected", [
    (fg.float32, 2.0, fg.float32), (fg.float64, 2.0, fg.float64),
    (fg.float32, 2, fg.float32), (fg.int32, 1, fg.int32), (fg.int64, 1, fg.int64),
    (fg.int32, 1.5, fg.float32), (fg.int64, 0.5, fg.float32),
    (fg.bool_, 1, fg.int32), (fg.bool_, 1.5, fg.float32),
])
def test_python_scalars_are_weak(dtype, scalar, expected):
    x = fg.placeholder(dtype, (2,))
    for expr in (x + scalar, scalar + x, x * scalar):
        assert expr.dtype == expected, (expr.dtype, expected)
    value = np.array([1, 0], dtype)
    np.testing.assert_allclose(run(x + scalar, {x: value}), value.astype(expected) + scalar)


def test_numpy_scalars_and_python_lists():
    x = fg.placeholder(fg.float32, (2,))
    assert (x + np.float64(1.0)).dtype == np.float64  # NumPy scalars are strong
    assert (x + [1.0, 2.0]).dtype == np.float32         # nested Python lists are weak
    assert (x + np.array([1.0, 2.0])).dtype == np.float64
    i = fg.placeholder(fg.int32, (2,))
    assert (i + [1, 2]).dtype == np.int32
    with pytest.raises(DTypeError, match="expected numbers"):
        _ = x + np.array(["a", "b"])


def test_true_division_and_means_of_integers_give_float64():
    i = fg.placeholder(fg.int32, (3,))
    q, m = run([i / 2, fg.reduce_mean(i)], {i: [1, 2, 4]})
    assert q.dtype == np.float64 and m.dtype == np.float64
    np.testing.assert_allclose(q, [0.5, 1.0, 2.0])
    assert m == pytest.approx(7 / 3)
    f = fg.placeholder(fg.float32, (3,))
    assert (f / 2).dtype == np.float32 and fg.reduce_mean(f).dtype == np.float32


def test_comparisons_give_bool_and_casts_convert():
    x = fg.placeholder(fg.float32, (3,))
    lt = x < 1.0
    assert lt.dtype == np.bool_
    got = run([lt, fg.cast(lt, fg.int32), fg.cast(x, "int64"), fg.reduce_sum(lt)],
              {x: [0.5, 1.5, -2.7]})
    np.testing.assert_array_equal(got[0], [True, False, True])
    assert got[1].dtype == np.int32 and got[2].dtype == np.int64
    np.testing.assert_array_equal(got[2], [0, 1, -2])
    assert got[3] == 2  # a sum of bools counts them


def test_integer_pow_and_float_exponents():
    i = fg.placeholder(fg.int32, (3,))
    sq, root = i ** 2, i ** 0.5
    assert sq.dtype == np.int32 and root.dtype == np.float32
    a, b = run([sq, root], {i: [1, 4, 9]})
    np.testing.assert_array_equal(a, [1, 16, 81])
    np.testing.assert_allclose(b, [1, 2, 3])


def test_result_type_helper():
    assert fg.dtypes.result_type(fg.int32, fg.float32) == np.float64
    assert fg.dtypes.weak_dtype(2.0, fg.float64) == np.float64
    assert fg.dtypes.weak_dtype(True, fg.int64) == np.int64
