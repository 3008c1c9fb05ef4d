"""TF1's tf.nn.leaky_relu / elu / softplus / l2_normalize / moments: values against
NumPy formulas (and torch), gradients against finite differences (first and second
order), TF1's derivatives at the kinks, both the compiled and the reference path."""
import numpy as np
import pytest
import torch

import flowgraph as fg
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(7)
X = np.concatenate([RNG.normal(size=20) * 3, [-30.0, -1e-3, 0.0, 1e-3, 30.0, 90.0]])


def _run(t, feed=None, optimize=True):
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        return sess.run(t, feed)


def _softplus_ref(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


REFS = {
    "leaky_relu": (lambda x: fg.nn.leaky_relu(x), lambda x: np.where(x > 0, x, 0.2 * x)),
    "leaky_relu_alpha": (lambda x: fg.nn.leaky_relu(x, alpha=0.01),
                         lambda x: np.where(x > 0, x, 0.01 * x)),
    "elu": (fg.nn.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "softplus": (fg.nn.softplus, _softplus_ref),
}


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(REFS))
def test_activation_values(case, dtype, optimize):
    fn, ref = REFS[case]
    x = fg.placeholder(dtype, [None])
    y = fn(x)
    assert y.dtype == dtype and y.shape == (None,)
    xv = X.astype(dtype)
    out = _run(y, {x: xv}, optimize)
    assert out.dtype == dtype and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref(xv.astype(np.float64)), rtol=2e-6 if dtype ==
                               np.float32 else 1e-12, atol=1e-7 if dtype == np.float32 else 0)


def test_activations_match_torch():
    xt = torch.tensor(X)
    with fg.Session() as sess:
        x = fg.constant(X)
        got = sess.run([fg.nn.leaky_relu(x, 0.3), fg.nn.elu(x), fg.nn.softplus(x)])
    want = [torch.nn.functional.leaky_relu(xt, 0.3), torch.nn.functional.elu(xt),
            torch.nn.functional.softplus(xt, threshold=1e9)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", sorted(REFS))
def test_activation_gradients_first_and_second_order(case):
    fn, _ = REFS[case]
    xv = np.array([-2.5, -0.7, -0.1, 0.2, 1.3, 2.9])      # away from the kink at 0
    x = fg.placeholder(fg.float64, [None])
    y = fn(x)
    assert check_gradients(y, [x], {x: xv}) < 1e-6
    (g,) = fg.gradients(fg.reduce_sum(y), [x])
    if case != "leaky_relu" and case != "leaky_relu_alpha":    # piecewise linear: g' = 0
        assert check_gradients(g, [x], {x: xv}) < 1e-5


@pytest.mark.parametrize("optimize", [True, False])
def test_derivatives_at_zero_and_at_extremes_are_tf1s(optimize):
    x = fg.placeholder(fg.float64, [None])
    xv = np.array([0.0, -800.0, 800.0])
    fns = [lambda t: fg.nn.leaky_relu(t, 0.1), fg.nn.elu, fg.nn.softplus]
    grads = [fg.gradients(fg.reduce_sum(f(x)), [x])[0] for f in fns]
    lrelu, elu, softplus = _run(grads, {x: xv}, optimize)
    np.testing.assert_allclose(lrelu, [0.1, 0.1, 1.0])       # TF1's LeakyReluGrad: x > 0
    np.testing.assert_allclose(elu, [1.0, 0.0, 1.0])         # EluGrad: y + 1 where x <= 0
    np.testing.assert_allclose(softplus, [0.5, 0.0, 1.0])    # sigmoid(x), no NaN


def test_activations_refuse_integer_input():
    with pytest.raises(fg.errors.DTypeError,
                       match=r"elu \(called at test_nn_activations.py:\d+\): expected a "
                             r"float tensor, found int32"):
        fg.nn.elu(fg.constant([1, 2]))


@pytest.mark.parametrize("optimize", [True, False])
def test_l2_normalize(optimize):
    xv = RNG.normal(size=(3, 4, 5))
    x = fg.placeholder(fg.float64, [None, 4, 5])
    outs = [fg.nn.l2_normalize(x, 2), fg.nn.l2_normalize(x, axis=[0, 2]),
            fg.nn.l2_normalize(x), fg.nn.l2_normalize(x, dim=-1),
            fg.nn.l2_normalize(fg.zeros([2, 2]), 1)]
    got = _run(outs, {x: xv}, optimize)

    def ref(a, axis):
        return a / np.sqrt(np.maximum(np.sum(a * a, axis=axis, keepdims=True), 1e-12))
    np.testing.assert_allclose(got[0], ref(xv, 2), rtol=1e-12)
    np.testing.assert_allclose(got[1], ref(xv, (0, 2)), rtol=1e-12)
    np.testing.assert_allclose(got[2], ref(xv, None), rtol=1e-12)
    np.testing.assert_allclose(got[3], ref(xv, -1), rtol=1e-12)
    np.testing.assert_array_equal(got[4], np.zeros((2, 2)))   # epsilon: no NaN
    np.testing.assert_allclose(
        got[0], torch.nn.functional.normalize(torch.tensor(xv), dim=2).numpy(), rtol=1e-12)
    assert check_gradients(outs[0], [x], {x: xv}) < 1e-6
    assert check_gradients(outs[1], [x], {x: xv}) < 1e-6
    with pytest.raises(ValueError, match="not both"):
        fg.nn.l2_normalize(x, axis=1, dim=1)


@pytest.mark.parametrize("optimize", [True, False])
def test_moments(optimize):
    xv = RNG.normal(size=(6, 3, 4)) * 2 + 1
    x = fg.placeholder(fg.float64, [None, 3, 4])
    m0, v0 = fg.nn.moments(x, axes=[0])
    m1, v1 = fg.nn.moments(x, [0, 1, 2], keepdims=True)
    m2, v2 = fg.nn.moments(x, [-1], keep_dims=True)
    m3, v3 = fg.nn.moments(x, [0, 2], name="bn")
    assert m0.shape == (3, 4) and v1.shape == (1, 1, 1) and m2.shape == (None, 3, 1)
    assert m3.shape == (3,) and m3.op.name == "bn/mean" and v3.op.name == "bn/variance"
    got = _run([m0, v0, m1, v1, m2, v2, m3, v3], {x: xv}, optimize)
    want = [xv.mean(0), xv.var(0), xv.mean(keepdims=True).reshape(1, 1, 1),
            xv.var().reshape(1, 1, 1), xv.mean(-1, keepdims=True), xv.var(-1, keepdims=True),
            xv.mean((0, 2)), xv.var((0, 2))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    # the gradient through stop_gradient(mean) is still the variance's full gradient
    assert check_gradients(v0, [x], {x: xv}) < 1e-6
    assert check_gradients(m3 + 2.0 * v3, [x], {x: xv}) < 1e-6
    with pytest.raises(ValueError, match="not both"):
        fg.nn.moments(x, [0], keep_dims=True, keepdims=True)


def test_moments_float32_batch_norm_style():
    xv = RNG.normal(size=(8, 5)).astype(np.float32)
    x = fg.placeholder(fg.float32, [None, 5])
    mean, var = fg.nn.moments(x, [0])
    y = (x - mean) / fg.sqrt(var + 1e-5)
    out = _run(y, {x: xv})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (xv - xv.mean(0)) / np.sqrt(xv.var(0) + 1e-5),
                               rtol=1e-4, atol=1e-5)
