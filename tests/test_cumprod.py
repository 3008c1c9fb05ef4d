"""TF1's tf.cumprod: every axis with exclusive and reverse against the loop it is, on the
reference and the compiled path, dtypes kept; gradients first and second order against
finite differences (non-zero inputs); at an input equal to 0 the gradient is TF1's
(it divides by x: NaN there, right elsewhere); errors name the op and the user's line.

The shared Hypothesis property tests are in tests/test_ops_forward.py and
tests/test_gradients.py; the /gpu:0 checks (numba.cuda simulator) in tests/test_gpu_ops.py.
"""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both
from test_ops_forward import cumprod_loop

COMBOS = [(axis, exclusive, reverse) for axis in (0, 1, -1, -3)
          for exclusive in (False, True) for reverse in (False, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_every_axis_exclusive_and_reverse_on_both_paths(dtype):
    value = (np.random.default_rng(0).uniform(-2, 2, (3, 4, 2)) * 2).astype(dtype)
    x = fg.placeholder(dtype, (3, 4, 2))
    ys = [fg.cumprod(x, a, e, r) for a, e, r in COMBOS]
    for results in run_both(ys, {x: value}):
        for got, (axis, exclusive, reverse) in zip(results, COMBOS):
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, cumprod_loop(value, axis, exclusive, reverse))


def test_known_values_and_an_empty_axis():
    x = fg.constant([[1.0, 2.0, 3.0, 4.0]])
    e = fg.placeholder(fg.float32, (2, 0))
    with fg.Session() as sess:
        got = sess.run([fg.cumprod(x, 1), fg.cumprod(x, 1, exclusive=True),
                        fg.cumprod(x, 1, reverse=True), fg.cumprod(x, -1, True, True),
                        fg.cumprod(e, 1, exclusive=True)], {e: np.zeros((2, 0), np.float32)})
    assert [g.tolist() for g in got[:4]] == [[[1, 2, 6, 24]], [[1, 1, 2, 6]],
                                             [[24, 24, 12, 4]], [[24, 12, 4, 1]]]
    assert got[4].shape == (2, 0)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
@pytest.mark.parametrize("axis,exclusive,reverse", COMBOS[:8])
def test_gradients_first_and_second_order(axis, exclusive, reverse, config):
    rng = np.random.default_rng(1)
    value = rng.uniform(0.3, 1.5, (3, 4)) * rng.choice([-1, 1], (3, 4))   # no zeros
    x = fg.placeholder(fg.float64, (3, 4))
    y = fg.cumprod(x, axis, exclusive, reverse)
    assert check_gradients(y * x, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(y * y), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5


def test_gradient_at_a_zero_is_tf1s_nan():
    # sum(cumprod([2, 0, 3])) = x0 + x0 x1 + x0 x1 x2: the true gradient is [1, 8, 0];
    # TF1's formula divides by x, so the zero's entry is 0/0 = NaN, the others right.
    x = fg.placeholder(fg.float64, (3,))
    g, = fg.gradients(fg.reduce_sum(fg.cumprod(x)), [x])
    with np.errstate(all="ignore"):
        for config in (REF, OPT):
            got = fg.Session(config=config).run(g, {x: [2.0, 0.0, 3.0]})
            assert got[0] == 1 and np.isnan(got[1]) and got[2] == 0


def test_integers_get_no_gradient_and_errors_name_the_call_site():
    x = fg.constant([1, 2, 3])
    assert fg.gradients(fg.reduce_sum(fg.cumprod(x)), [x]) == [None]
    with pytest.raises(TypeError, match=r"cumprod \(called at .*test_cumprod.py:\d+\): "
                                        r"expected a Python int axis"):
        fg.cumprod(x, axis=fg.constant(0))
    with pytest.raises(ShapeError, match=r"Cumprod.*created at .*test_cumprod.py.*scalar"):
        fg.cumprod(fg.constant(1.0))
    with pytest.raises(ShapeError, match=r"Cumprod.*created at .*test_cumprod.py"):
        fg.cumprod(x, axis=1)
