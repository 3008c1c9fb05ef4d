"""TF1's tf.tensordot (transpose + reshape + matmul + reshape): values against
np.tensordot for int and list axes on the reference and the compiled path, unknown free
dimensions, gradients (first and second order) against finite differences, errors."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(17)

CASES = [  # (a shape, b shape, axes)
    ((3, 4), (4, 5), 1),
    ((2, 3, 4), (3, 4, 5), 2),
    ((2, 3), (4,), 0),                        # outer product
    ((2, 3), (2, 3), 2),                      # full contraction: a scalar
    ((2, 3, 4), (4, 3), [[1, 2], [1, 0]]),    # contracted axes in another order
    ((3, 2, 4), (5, 3), [[0], [1]]),          # a's first axis with b's last
    ((2, 3, 4), (4, 2), [[-1, 0], [0, -1]]),  # negative axes
    ((2, 3), (3, 2), [1, 0]),                 # a pair of ints
    ((4,), (4,), 1),                          # dot product
]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_tensordot_values(case, dtype, optimize):
    sa, sb, axes = case
    av, bv = RNG.normal(size=sa).astype(dtype), RNG.normal(size=sb).astype(dtype)
    a, b = fg.placeholder(dtype, sa), fg.placeholder(dtype, sb)
    y = fg.tensordot(a, b, axes)
    np_axes = axes if isinstance(axes, int) else [np.atleast_1d(p).tolist() for p in axes]
    want = np.tensordot(av.astype(np.float64), bv.astype(np.float64), np_axes)
    assert y.dtype == dtype and tuple(y.shape) == want.shape
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        got = sess.run(y, {a: av, b: bv})
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("optimize", [True, False])
def test_tensordot_unknown_free_dimensions(optimize):
    av, bv = RNG.normal(size=(4, 5, 3)), RNG.normal(size=(3, 6, 2))
    a = fg.placeholder(fg.float64, (None, 5, 3))
    b = fg.placeholder(fg.float64, (3, None, 2))
    y = fg.tensordot(a, b, [[2], [0]], name="td")
    assert tuple(y.shape) == (None, 5, None, 2) and y.op.name == "td"
    z = fg.tensordot(a, fg.constant(bv[:, 0, 0]), 1)                     # [None, 5]
    assert tuple(z.shape) == (None, 5)
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        got, gz = sess.run([y, z], {a: av, b: bv})
    np.testing.assert_allclose(got, np.tensordot(av, bv, [[2], [0]]), rtol=1e-12)
    np.testing.assert_allclose(gz, np.tensordot(av, bv[:, 0, 0], 1), rtol=1e-12)


@pytest.mark.parametrize("case", [((3, 4), (4, 2), 1), ((2, 3, 4), (4, 3), [[1, 2], [1, 0]]),
                                  ((2, 3), (4,), 0)])
def test_tensordot_gradients_first_and_second_order(case):
    sa, sb, axes = case
    a, b = fg.placeholder(fg.float64, sa), fg.placeholder(fg.float64, sb)
    feed = {a: RNG.normal(size=sa), b: RNG.normal(size=sb)}
    y = fg.tanh(fg.tensordot(a, b, axes))
    assert check_gradients(y, [a, b], feed) < 1e-6
    ga, gb = fg.gradients(fg.reduce_sum(y), [a, b])
    assert check_gradients(ga, [a, b], feed) < 1e-5
    assert check_gradients(gb, [a, b], feed) < 1e-5


def test_tensordot_errors():
    a = fg.placeholder(fg.float32, (2, 3))
    b = fg.placeholder(fg.float32, (3, 4))
    with pytest.raises(ShapeError, match=r"tensordot \(called at test_tensordot.py:\d+\).*"
                                         r"axis 1 \(size 3\).*axis 1 \(size 4\)"):
        fg.tensordot(a, b, [[1], [1]])
    with pytest.raises(ShapeError, match=r"tensordot.*contracted dimensions known"):
        fg.tensordot(fg.placeholder(fg.float32, (2, None)), b, 1)
    with pytest.raises(ShapeError, match=r"tensordot.*ranks of a and b known"):
        fg.tensordot(fg.placeholder(fg.float32, None), b, 1)
    with pytest.raises(ValueError, match=r"tensordot.*int axes in \[0, 2\].*3"):
        fg.tensordot(a, b, 3)
    with pytest.raises(ValueError, match=r"tensordot.*as many axes"):
        fg.tensordot(a, b, [[0, 1], [0]])
    with pytest.raises(ValueError, match=r"tensordot.*out of range for b of rank 2"):
        fg.tensordot(a, b, [[1], [2]])
    with pytest.raises(ValueError, match=r"tensordot.*repeated axes"):
        fg.tensordot(a, fg.placeholder(fg.float32, (3, 3)), [[1, 1], [0, 1]])
    with pytest.raises(ValueError, match=r"tensordot.*Python ints.*tensor"):
        fg.tensordot(a, b, fg.constant(1))
    with pytest.raises(DTypeError, match=r"tensordot.*one dtype"):
        fg.tensordot(a, fg.placeholder(fg.float64, (3, 4)), 1)
