"""TF1's tf.sin, tf.cos, tf.cumsum, tf.nn.softsign and tf.nn.batch_normalization:
values against NumPy on the reference path and the compiled one (compiled eagerly, so
the generated kernels run), float32 and float64; gradients against finite differences,
first and second order; cumsum's exclusive/reverse combinations and negative axes;
clear errors naming the op and where it was made.

The forward and gradient property tests (Hypothesis) of Sin, Cos and Cumsum are the
shared ones of tests/test_ops_forward.py and tests/test_gradients.py; their /gpu:0
checks (numba.cuda simulator) are in tests/test_gpu_ops.py.
"""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, InvalidArgumentError, ShapeError
from flowgraph.plan import CompiledPlan
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both
from test_ops_forward import cumsum_loop

RNG = np.random.default_rng(11)
DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


def _compiled_plan(sess):
    plans = [p for p in sess._plans.values() if isinstance(p, CompiledPlan)]
    assert plans
    return plans[-1]


# --- sin, cos -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_sin_cos_equal_numpy_on_both_paths_with_special_values(dtype):
    value = np.array([0.0, -0.0, 0.5, -1.25, np.pi, 100.0, -1e5, 1e-30, np.inf, -np.inf,
                      np.nan], dtype)
    x = fg.placeholder(dtype, [None])
    fetches = [fg.sin(x), fg.cos(x), fg.sin(x) * fg.cos(x * 2.0)]
    with np.errstate(invalid="ignore"):
        want = [np.sin(value), np.cos(value), np.sin(value) * np.cos(value * dtype(2))]
    for got in run_both(fetches, {x: value}):
        for g, w in zip(got, want):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, w, **_tol(dtype))
        # the sign of sin(-0.0) is kept, as np.sin keeps it
        assert np.signbit(got[0][1]) and not np.signbit(got[0][0])


def test_sin_and_cos_join_a_generated_cpu_loop():
    x = fg.placeholder(fg.float64, (3, 4))
    y = fg.sin(x * 0.5 + 0.25) * fg.cos(x) + x
    value = np.linspace(-4.0, 4.0, 12).reshape(3, 4)
    with fg.Session(config=OPT) as sess:
        out = sess.run(y, {x: value})
        plan = _compiled_plan(sess)
    assert any("math.sin(" in s and "math.cos(" in s for s in plan.kernel_sources)
    assert [info.kind for info in plan.step_infos] == ["fused kernel"]
    np.testing.assert_allclose(out, np.sin(value * 0.5 + 0.25) * np.cos(value) + value,
                               rtol=1e-14)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_sin_cos_gradients_first_and_second_order(config):
    value = RNG.uniform(-3, 3, (2, 3))
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.sin(x) * fg.cos(2.0 * x) + fg.cos(fg.sin(x))
    check_gradients(y, [x], {x: value}, config=config)
    g, = fg.gradients(fg.reduce_sum(y), [x])
    check_gradients(g, [x], {x: value}, config=config)
    # closed forms: d sin = cos, d cos = -sin, d2 sin = -sin, d2 cos = -cos
    d1, = fg.gradients(fg.reduce_sum(fg.sin(x) + fg.cos(x)), [x])
    d2, = fg.gradients(fg.reduce_sum(d1), [x])
    with fg.Session(config=config) as sess:
        got1, got2 = sess.run([d1, d2], {x: value})
    np.testing.assert_allclose(got1, np.cos(value) - np.sin(value), rtol=1e-13)
    np.testing.assert_allclose(got2, -np.sin(value) - np.cos(value), rtol=1e-13)


@pytest.mark.parametrize("fn, op", [(fg.sin, "Sin"), (fg.cos, "Cos")])
def test_sin_cos_refuse_integers_naming_the_op(fn, op):
    with pytest.raises(DTypeError, match=rf"{op} .*created at .*test_tf1_trig_cumsum_norm"
                                         r".*expected a float32 or float64 input, found int32"):
        fn(fg.constant([1, 2]))


# --- cumsum ---------------------------------------------------------------------------

def test_cumsum_matches_tf1_documented_examples():
    # tensorflow/python/ops/math_ops.py, cumsum's docstring
    x = fg.constant([1.0, 2.0, 3.0], fg.float64)          # [a, b, c]
    fetches = [fg.cumsum(x), fg.cumsum(x, exclusive=True), fg.cumsum(x, reverse=True),
               fg.cumsum(x, exclusive=True, reverse=True)]
    for got in run_both(fetches):
        assert [g.tolist() for g in got] == [[1, 3, 6], [0, 1, 3], [6, 5, 3], [5, 3, 0]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_cumsum_every_axis_exclusive_and_reverse_on_both_paths(dtype):
    value = (RNG.uniform(-3, 3, (2, 3, 4)) * (1 if dtype in DTYPES else 10)).astype(dtype)
    x = fg.placeholder(dtype, (None, 3, None))
    combos = [(axis, exclusive, reverse) for axis in (0, 1, 2, -1, -3)
              for exclusive in (False, True) for reverse in (False, True)]
    fetches = [fg.cumsum(x, axis, exclusive, reverse) for axis, exclusive, reverse in combos]
    assert all(f.shape == (None, 3, None) and f.dtype == dtype for f in fetches)
    for got in run_both(fetches, {x: value}):
        for g, (axis, exclusive, reverse) in zip(got, combos):
            assert g.dtype == dtype and g.shape == value.shape
            # added in the same order as the loop: equal bit for bit
            np.testing.assert_array_equal(g, cumsum_loop(value, axis, exclusive, reverse))


def test_cumsum_of_empty_and_length_one_axes():
    for shape, axis in [((0, 3), 0), ((2, 0), 1), ((1, 3), 0)]:
        value = RNG.normal(size=shape)
        x = fg.placeholder(fg.float64, shape)
        fetches = [fg.cumsum(x, axis, e, r) for e in (False, True) for r in (False, True)]
        for got in run_both(fetches, {x: value}):
            for g, (e, r) in zip(got, [(e, r) for e in (False, True) for r in (False, True)]):
                np.testing.assert_array_equal(g, cumsum_loop(value, axis, e, r))


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_gradients_first_and_second_order(config, exclusive, reverse):
    value = RNG.uniform(-2, 2, (3, 4))
    x = fg.placeholder(fg.float64, (3, 4))
    y = fg.square(fg.cumsum(x, -1, exclusive, reverse)) * fg.cumsum(fg.sin(x), 0)
    check_gradients(y, [x], {x: value}, config=config)
    g, = fg.gradients(fg.reduce_sum(y), [x])
    check_gradients(g, [x], {x: value}, config=config)
    # TF1's rule: the gradient of a cumsum is the cumsum of the gradient the other way
    w = RNG.normal(size=(3, 4))
    d, = fg.gradients(fg.reduce_sum(fg.cumsum(x, 1, exclusive, reverse) * w), [x])
    with fg.Session(config=config) as sess:
        got = sess.run(d, {x: value})
    np.testing.assert_allclose(got, cumsum_loop(w, 1, exclusive, not reverse), rtol=1e-14)


def test_cumsum_runs_as_a_reference_step_of_the_compiled_plan():
    x = fg.placeholder(fg.float32, (2, 5))
    y = fg.cumsum(fg.tanh(x), axis=1) * 2.0
    with fg.Session(config=OPT) as sess:
        text = sess.explain(y, {x: np.zeros((2, 5), np.float32)})
    assert any(line.split()[2:] == ["reference", "cumsum"] for line in text.splitlines())


def test_cumsum_and_sin_inside_a_scan_body_on_both_paths():
    xs = fg.placeholder(fg.float64, (4, 3))
    out = fg.scan(lambda acc, x: acc + fg.cumsum(fg.sin(x), 0, reverse=True), xs,
                  initializer=fg.zeros((3,), fg.float64))
    g, = fg.gradients(fg.reduce_sum(out * out), [xs])
    value = RNG.normal(size=(4, 3))
    (ref_out, ref_g), (opt_out, opt_g) = run_both([out, g], {xs: value})
    want = np.cumsum(np.cumsum(np.sin(value)[:, ::-1], 1)[:, ::-1], 0)
    np.testing.assert_allclose(ref_out, want, rtol=1e-14)
    np.testing.assert_array_equal(opt_out, ref_out)
    np.testing.assert_allclose(opt_g, ref_g, rtol=1e-13)
    check_gradients(out, [xs], {xs: value})


def test_cumsum_errors_name_the_op_and_where_it_was_made():
    x = fg.placeholder(fg.float32, (2, 3))
    with pytest.raises(ShapeError, match=r"Cumsum 'cumsum.*created at .*test_tf1_trig_cumsum"
                                         r".*axis 2 is out of range for rank 2"):
        fg.cumsum(x, axis=2)
    with pytest.raises(ShapeError, match="axis -3 is out of range"):
        fg.cumsum(x, axis=-3)
    with pytest.raises(DTypeError, match=r"Cumsum .*expected a numeric input, found bool"):
        fg.cumsum(fg.constant([True, False]))
    with pytest.raises(ShapeError, match=r"Cumsum .*rank 1 or more, found a scalar"):
        fg.cumsum(fg.constant(1.0))
    with pytest.raises(TypeError, match="cumsum: expected a Python int axis"):
        fg.cumsum(x, axis=fg.constant(0))
    # a rank known only at run time: the same message, when the run finds it
    unknown = fg.placeholder(fg.float32, None)
    y = fg.cumsum(unknown, axis=3)
    for config in (REF, OPT):
        with fg.Session(config=config) as sess:
            with pytest.raises(InvalidArgumentError,
                               match=r"Cumsum .*created at .*axis 3 is out of range"):
                sess.run(y, {unknown: np.ones((2, 2), np.float32)})


# --- softsign, batch_normalization -----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_softsign_equals_numpy_and_its_derivative_is_tf1s(dtype):
    value = np.array([-1e30, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 1e30, np.inf, -np.inf],
                     dtype)
    x = fg.placeholder(dtype, [None])
    y = fg.nn.softsign(x)
    g, = fg.gradients(fg.reduce_sum(y), [x])
    with np.errstate(invalid="ignore"):
        want = value / (1 + np.abs(value))
    for got, grad in run_both([y, g], {x: value}):
        assert got.dtype == dtype
        np.testing.assert_allclose(got[:8], want[:8], **_tol(dtype))
        slope = 1 / (1 + np.abs(value[:8].astype(np.float64))) ** 2
        np.testing.assert_allclose(grad[:8], slope.astype(dtype), **_tol(dtype))
    assert grad[4] == 1.0     # TF1's SoftsignGrad at 0
    with pytest.raises(DTypeError, match="softsign.*expected a float tensor, found int32"):
        fg.nn.softsign(fg.constant([1, 2]))


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_softsign_gradients_first_and_second_order(config):
    value = RNG.uniform(0.3, 2, (2, 3)) * np.where(RNG.random((2, 3)) < 0.5, -1, 1)
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.nn.softsign(x * 1.5)
    check_gradients(y, [x], {x: value}, config=config)
    g, = fg.gradients(fg.reduce_sum(y), [x])
    check_gradients(g, [x], {x: value}, config=config)


def _batch_norm_numpy(x, mean, var, offset, scale, eps):
    inv = 1 / np.sqrt(var + eps)
    if scale is not None:
        inv = inv * scale
    return x * inv + ((offset if offset is not None else 0) - mean * inv)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_normalization_equals_numpy_with_and_without_offset_and_scale(dtype):
    value = RNG.normal(2.0, 3.0, (4, 3)).astype(dtype)
    offset = RNG.normal(size=3).astype(dtype)
    scale = RNG.uniform(0.5, 2, 3).astype(dtype)
    x = fg.placeholder(dtype, (None, 3))
    mean, var = fg.nn.moments(x, axes=[0])
    fetches = [fg.nn.batch_normalization(x, mean, var, offset, scale, 1e-3),
               fg.nn.batch_normalization(x, mean, var, None, None, 1e-3),
               fg.nn.batch_normalization(x, mean, var, fg.constant(offset), None,
                                         variance_epsilon=0.0, name="bn")]
    assert fetches[2].name.startswith("bn")
    m, v = value.mean(0), value.var(0)
    want = [_batch_norm_numpy(value, m, v, offset, scale, 1e-3),
            _batch_norm_numpy(value, m, v, None, None, 1e-3),
            _batch_norm_numpy(value, m, v, offset, None, 0.0)]
    for got in run_both(fetches, {x: value}):
        for g, w in zip(got, want):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, w, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-5 if dtype == np.float32 else 1e-12)
    # normalized: each column has mean 0 and variance 1 (with no epsilon)
    np.testing.assert_allclose(got[2].mean(0), offset, atol=1e-5)
    np.testing.assert_allclose(got[2].var(0), 1.0, rtol=1e-4)


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
def test_batch_normalization_gradients_first_and_second_order(config):
    x = fg.placeholder(fg.float64, (4, 3))
    mean = fg.placeholder(fg.float64, (3,))
    var = fg.placeholder(fg.float64, (3,))
    offset = fg.placeholder(fg.float64, (3,))
    scale = fg.placeholder(fg.float64, (3,))
    xs = [x, mean, var, offset, scale]
    feed = {x: RNG.normal(size=(4, 3)), mean: RNG.normal(size=3),
            var: RNG.uniform(0.5, 2, 3), offset: RNG.normal(size=3),
            scale: RNG.uniform(0.5, 2, 3)}
    y = fg.nn.batch_normalization(x, mean, var, offset, scale, 1e-3) ** 2
    check_gradients(y, xs, feed, config=config)
    grads = fg.gradients(fg.reduce_sum(y), xs)
    check_gradients(fg.add_n([fg.reduce_sum(g) for g in grads]), xs, feed, config=config)
    # With moments' statistics, first order (moments' variance stops the gradient
    # through its mean, as TF1's, which leaves the first derivative exact only)
    m, v = fg.nn.moments(x, axes=[0])
    check_gradients(fg.nn.batch_normalization(x, m, v, offset, scale, 1e-3) ** 2,
                    [x, offset, scale], feed, config=config)


def test_batch_normalization_errors_are_clear():
    x = fg.placeholder(fg.float32, (2, 3))
    with pytest.raises(DTypeError, match="batch_normalization.*expected a float tensor"):
        fg.nn.batch_normalization(fg.constant([[1, 2]]), 0.0, 1.0, None, None, 1e-3)
    with pytest.raises(DTypeError, match="expected a float32 tensor, found .* float64"):
        fg.nn.batch_normalization(x, fg.constant(0.0, fg.float64), 1.0, None, None, 1e-3)
    with pytest.raises(ShapeError, match="broadcast"):
        fg.nn.batch_normalization(x, np.zeros(4, np.float32), 1.0, None, None, 1e-3)
