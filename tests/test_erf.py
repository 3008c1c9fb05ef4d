"""TF1's tf.erf: values against independently known constants and the float64
reference on the reference path and the compiled one (compiled eagerly, so the generated
kernel runs), float32 and float64, special values; it joins a generated CPU loop (it has
no ufunc); gradients against finite differences and the closed forms, first and second
order; integers are refused naming the op.

The shared Hypothesis property tests of Erf are in tests/test_ops_forward.py and
tests/test_gradients.py; its /gpu:0 check (numba.cuda simulator) in tests/test_gpu_ops.py.
"""
import math

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError
from flowgraph.plan import CompiledPlan
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both

# erf to 19 digits (Abramowitz & Stegun table 7.1 / any arbitrary-precision package)
KNOWN = {0.5: 0.5204998778130465377, 1.0: 0.8427007929497148693,
         2.0: 0.9953222650189527342, -1.5: -0.9661051464753107271,
         0.1: 0.1124629160182848922, 3.0: 0.9999779095030014146}
TWO_OVER_SQRT_PI = 1.1283791670955125739


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_known_values_and_special_values_on_both_paths(dtype):
    xs = np.array(list(KNOWN), dtype)
    special = np.array([0.0, -0.0, 1e-30, 6.0, -6.0, 30.0, np.inf, -np.inf, np.nan], dtype)
    x = fg.placeholder(dtype, [None])
    for got in run_both(fg.erf(x), {x: xs}):
        assert got.dtype == dtype
        tol = 1e-7 if dtype == np.float32 else 1e-16
        np.testing.assert_allclose(got, list(KNOWN.values()), rtol=tol, atol=tol)
    want = np.array([float(dtype(1e-30)) * TWO_OVER_SQRT_PI, 1, -1, 1, 1, -1, np.nan], dtype)
    reference, compiled = run_both(fg.erf(x), {x: special})
    np.testing.assert_array_equal(reference[2:], want)          # the specification: exact
    # float32 loops call libm's erff, which may be an ulp off (here at 1e-30)
    np.testing.assert_allclose(compiled[2:], want, rtol=3e-7 if dtype == np.float32 else 0)
    for got in (reference, compiled):
        assert got[0] == 0 and not np.signbit(got[0]) and np.signbit(got[1])  # erf(-0) = -0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erf_joins_a_generated_cpu_loop_and_matches_the_reference(dtype):
    x = fg.placeholder(dtype, (4, 64))
    y = fg.erf(x * 0.5 + 0.25) * x + 1.0
    value = np.linspace(-7.0, 7.0, 256).reshape(4, 64).astype(dtype)
    reference, compiled = run_both(y, {x: value})
    with fg.Session(config=OPT) as sess:
        sess.run(y, {x: value})
        plan = [p for p in sess._plans.values() if isinstance(p, CompiledPlan)][-1]
    assert any("math.erf(" in s for s in plan.kernel_sources)
    assert [info.kind for info in plan.step_infos] == ["fused kernel"]
    half = dtype(0.5) * value + dtype(0.25)
    want = (np.vectorize(math.erf)(half.astype(np.float64)).astype(dtype) * value + 1)
    np.testing.assert_array_equal(reference, want.astype(dtype))
    # libm's erff in float32 loops: within an ulp or two of the float64 value rounded
    tol = dict(rtol=3e-7, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-15, atol=0)
    np.testing.assert_allclose(compiled, reference, **tol)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_erf_gradients_first_and_second_order(config):
    value = np.random.default_rng(5).uniform(-2.5, 2.5, (2, 5))
    x = fg.placeholder(fg.float64, (2, 5))
    y = fg.erf(x) * fg.erf(0.5 * x + 0.1)
    assert check_gradients(y, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5
    # closed forms: d erf = 2/sqrt(pi) exp(-x^2), d2 erf = -2x * that
    d1, = fg.gradients(fg.reduce_sum(fg.erf(x)), [x])
    d2, = fg.gradients(fg.reduce_sum(d1), [x])
    with fg.Session(config=config) as sess:
        got1, got2 = sess.run([d1, d2], {x: value})
    np.testing.assert_allclose(got1, TWO_OVER_SQRT_PI * np.exp(-value ** 2), rtol=1e-14)
    np.testing.assert_allclose(got2, -2 * value * TWO_OVER_SQRT_PI * np.exp(-value ** 2),
                               rtol=1e-13)


def test_erf_gradient_keeps_float32():
    x = fg.placeholder(fg.float32, (3,))
    g, = fg.gradients(fg.reduce_sum(fg.erf(x)), [x])
    assert g.dtype == fg.float32
    got = fg.Session().run(g, {x: np.array([0.0, 1.0, -2.0], np.float32)})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, TWO_OVER_SQRT_PI * np.exp(-np.array([0.0, 1.0, 4.0])),
                               rtol=1e-6)


def test_erf_refuses_integers_naming_the_op():
    with pytest.raises(DTypeError, match=r"Erf .*created at .*test_erf"
                                         r".*expected a float32 or float64 input, found int32"):
        fg.erf(fg.constant([1, 2]))
