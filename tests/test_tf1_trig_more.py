"""TF1's tf.tan, atan, asin, acos, sinh, cosh, asinh, atanh, acosh, expm1, erfc and atan2:
known values; one fused generated CPU loop holding each against the NumPy reference
(compiled eagerly, float32 and float64); gradients first and second order against
finite differences and the closed forms; float32 gradients stay float32; integers are
refused naming the op and the user's line.

The shared Hypothesis property tests are in tests/test_ops_forward.py and
tests/test_gradients.py; the /gpu:0 checks (numba.cuda simulator) in tests/test_gpu_ops.py.
"""
import math

import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError
from flowgraph.plan import CompiledPlan
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both

# op: (flowgraph function, NumPy function, derivative in closed form, domain)
UNARY = {
    "tan": (fg.tan, np.tan, lambda x: 1 / np.cos(x) ** 2, (-1.3, 1.3)),
    "atan": (fg.atan, np.arctan, lambda x: 1 / (1 + x * x), (-4, 4)),
    "asin": (fg.asin, np.arcsin, lambda x: 1 / np.sqrt(1 - x * x), (-0.9, 0.9)),
    "acos": (fg.acos, np.arccos, lambda x: -1 / np.sqrt(1 - x * x), (-0.9, 0.9)),
    "sinh": (fg.sinh, np.sinh, np.cosh, (-3, 3)),
    "cosh": (fg.cosh, np.cosh, np.sinh, (-3, 3)),
    "asinh": (fg.asinh, np.arcsinh, lambda x: 1 / np.sqrt(x * x + 1), (-4, 4)),
    "atanh": (fg.atanh, np.arctanh, lambda x: 1 / (1 - x * x), (-0.9, 0.9)),
    "acosh": (fg.acosh, np.arccosh, lambda x: 1 / np.sqrt(x * x - 1), (1.1, 4)),
    "expm1": (fg.expm1, np.expm1, np.exp, (-3, 3)),
    "erfc": (fg.erfc, np.vectorize(math.erfc, otypes=[np.float64]),
             lambda x: -2 / math.sqrt(math.pi) * np.exp(-x * x), (-3, 3)),
}


def test_known_values():
    x = fg.constant([0.5], fg.float64)
    got = fg.Session().run([f(x) for f, *_ in UNARY.values()] + [fg.atan2(x, -x)])
    # independently known: tan(.5), atan(.5), asin(.5) = pi/6, acos(.5) = pi/3, ...
    want = [0.5463024898437905, 0.4636476090008061, np.pi / 6, np.pi / 3,
            0.5210953054937474, 1.1276259652063807, 0.48121182505960347,
            0.5493061443340549, np.nan, 0.6487212707001282,
            0.4795001221869534623, 3 * np.pi / 4]            # erfc(.5) = 1 - erf(.5)
    np.testing.assert_allclose(np.concatenate(got), want, rtol=1e-15)
    with np.errstate(invalid="ignore"):            # outside the domains: NaN, as NumPy
        out = fg.Session().run([fg.asin(x * 4.0), fg.acosh(x), fg.atanh(x * 4.0)])
    assert all(np.isnan(o).all() for o in out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_each_joins_a_generated_cpu_loop_and_matches_the_reference(name, dtype):
    fn, ref, _, (lo, hi) = UNARY[name]
    x = fg.placeholder(dtype, (4, 32))
    y = fn(x * 0.5 + 0.25) * x + 1.0
    value = np.linspace(2 * lo - 0.5, 2 * hi - 0.5, 128).reshape(4, 32).astype(dtype)
    reference, compiled = run_both(y, {x: value})
    with fg.Session(config=OPT) as sess:
        sess.run(y, {x: value})
        plan = [p for p in sess._plans.values() if isinstance(p, CompiledPlan)][-1]
    assert [info.kind for info in plan.step_infos] in (["fused kernel"], ["ufunc chain"])
    want = ref(dtype(0.5) * value + dtype(0.25)).astype(dtype) * value + 1
    np.testing.assert_array_equal(reference, want.astype(dtype))     # the specification
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(compiled, reference, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_atan2_fuses_and_matches_the_reference_in_every_quadrant(dtype):
    y = fg.placeholder(dtype, (3, 8))
    x = fg.placeholder(dtype, (8,))
    out = fg.atan2(y * 2.0, x) + fg.sinh(x)
    yv = np.linspace(-3, 3, 24).reshape(3, 8).astype(dtype)
    xv = np.array([-2, -1, -0.0, 0.0, 0.5, 1, 2, -0.5], dtype)
    reference, compiled = run_both(out, {y: yv, x: xv})
    np.testing.assert_array_equal(reference, (np.arctan2(2 * yv, xv) + np.sinh(xv)).astype(dtype))
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(compiled, reference, **tol)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_gradients_first_and_second_order(name, config):
    fn, _, deriv, (lo, hi) = UNARY[name]
    value = np.random.default_rng(7).uniform(lo, hi, (2, 3))
    x = fg.placeholder(fg.float64, (2, 3))
    assert check_gradients(fn(x) * x, [x], {x: value}, config=config) < 1e-6
    g, = fg.gradients(fg.reduce_sum(fn(x)), [x])
    assert check_gradients(g, [x], {x: value}, config=config) < 1e-5
    with fg.Session(config=config) as sess:
        np.testing.assert_allclose(sess.run(g, {x: value}), deriv(value), rtol=1e-12)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_atan2_gradients_first_and_second_order(config):
    rng = np.random.default_rng(3)
    yv, xv = rng.uniform(-2, 2, (2, 3)), rng.uniform(0.3, 2, (3,)) * np.array([1, -1, 1])
    y, x = fg.placeholder(fg.float64, (2, 3)), fg.placeholder(fg.float64, (3,))
    a = fg.atan2(y, x)
    assert check_gradients(a * y, [y, x], {y: yv, x: xv}, config=config) < 1e-6
    gy, gx = fg.gradients(fg.reduce_sum(a), [y, x])
    assert check_gradients(gy * gy + gx, [y, x], {y: yv, x: xv}, config=config) < 1e-5
    with fg.Session(config=config) as sess:
        got_y, got_x = sess.run([gy, gx], {y: yv, x: xv})
    r2 = xv ** 2 + yv ** 2
    np.testing.assert_allclose(got_y, xv / r2, rtol=1e-13)
    np.testing.assert_allclose(got_x, (-yv / r2).sum(0), rtol=1e-13)


def test_gradients_keep_float32():
    x = fg.placeholder(fg.float32, (3,))
    ops = [f(x) for f, *_ in UNARY.values() if f is not fg.acosh] + [fg.atan2(x, x + 1.0)]
    grads = fg.gradients(fg.add_n([fg.reduce_sum(o) for o in ops]), [x])
    assert grads[0].dtype == fg.float32
    assert fg.Session().run(grads[0], {x: np.array([0.1, 0.2, -0.3], np.float32)}).dtype \
        == np.float32


@pytest.mark.parametrize("fn", [f for f, *_ in UNARY.values()] + [lambda t: fg.atan2(t, t)])
def test_integers_are_refused_naming_the_op_and_the_call_site(fn):
    with pytest.raises(DTypeError, match=r"created at .*test_tf1_trig_more"
                                         r".*expected a float32 or float64 input, found int32"):
        fn(fg.constant([1, 2]))
