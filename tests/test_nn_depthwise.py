"""TF1's tf.nn.depthwise_conv2d / depthwise_conv2d_native / separable_conv2d (NHWC
compositions on ExtractPatches): values against a naive NumPy loop written here from
TF1's documented formula (output channel c * M + m), on the reference and the compiled
path, and against torch (a grouped conv, groups = in_channels); Hypothesis geometries;
gradients against finite differences (first and second order); one case on /gpu:0
(the numba.cuda simulator where there is no GPU) against /cpu:0; the errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(23)


def _run(t, feed=None, optimize=True):
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        return sess.run(t, feed)


def _same(size, k, stride, rate):
    """TF1's SAME rule, from its documentation: (out, pad_before)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * rate + 1 - size, 0)
    return out, total // 2


def ref_depthwise(x, f, strides, padding, rates=(1, 1)):
    """TF1's formula: out[b, i, j, c*M + m] = sum_{di, dj} x[b, i*sh + di*dh - top,
    j*sw + dj*dw - left, c] * f[di, dj, c, m], zero outside the image."""
    n, h, w, c = x.shape
    kh, kw, _, m = f.shape
    (sh, sw), (dh, dw) = strides, rates
    if padding == "SAME":
        (oh, top), (ow, left) = _same(h, kh, sh, dh), _same(w, kw, sw, dw)
    else:
        oh, top = (h - (kh - 1) * dh - 1) // sh + 1, 0
        ow, left = (w - (kw - 1) * dw - 1) // sw + 1, 0
    out = np.zeros((n, oh, ow, c * m), np.float64)
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    r, q = i * sh + di * dh - top, j * sw + dj * dw - left
                    if 0 <= r < h and 0 <= q < w:
                        for ch in range(c):
                            for mm in range(m):
                                out[:, i, j, ch * m + mm] += x[:, r, q, ch] * f[di, dj, ch, mm]
    return out


# (N, H, W, C, M, kh, kw, strides, padding, rate)
CASES = [
    (2, 5, 5, 3, 1, 3, 3, (1, 1), "SAME", (1, 1)),
    (2, 5, 5, 3, 2, 3, 3, (1, 1), "VALID", (1, 1)),
    (1, 6, 7, 2, 3, 3, 2, (2, 2), "SAME", (1, 1)),
    (1, 7, 6, 2, 2, 2, 3, (2, 1), "VALID", (1, 1)),
    (1, 7, 7, 2, 2, 3, 3, (1, 1), "SAME", (2, 2)),        # atrous
    (2, 4, 4, 4, 1, 1, 1, (1, 1), "VALID", (1, 1)),       # 1x1: a per-channel scale
]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_depthwise_values(case, dtype, optimize):
    n, h, w, c, m, kh, kw, strides, padding, rate = case
    xv = RNG.normal(size=(n, h, w, c)).astype(dtype)
    fv = RNG.normal(size=(kh, kw, c, m)).astype(dtype)
    x = fg.placeholder(dtype, (None, h, w, c))                 # batch unknown
    y = fg.nn.depthwise_conv2d(x, fg.constant(fv), [1, *strides, 1], padding, rate=rate)
    want = ref_depthwise(xv, fv, strides, padding, rate)
    assert y.dtype == dtype and tuple(y.shape) == (None,) + want.shape[1:]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_run(y, {x: xv}, optimize), want, rtol=tol, atol=tol)
    # the native op takes the rate as dilations
    y2 = fg.nn.depthwise_conv2d_native(x, fg.constant(fv), [1, *strides, 1], padding,
                                       dilations=[1, *rate, 1])
    np.testing.assert_allclose(_run(y2, {x: xv}, optimize), want, rtol=tol, atol=tol)


@settings(max_examples=12)
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3), m=st.integers(1, 3),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       same=st.booleans())
def test_depthwise_geometries_match_the_loop(h, w, c, m, kh, kw, sh, sw, same):
    padding = "SAME" if same else "VALID"
    if not same and (kh > h or kw > w):
        return                                               # no VALID window fits
    rng = np.random.default_rng(h * 1000 + w * 100 + c * 10 + m)
    xv, fv = rng.normal(size=(2, h, w, c)), rng.normal(size=(kh, kw, c, m))
    with fg.Graph().as_default():
        y = fg.nn.depthwise_conv2d(fg.constant(xv), fg.constant(fv), [1, sh, sw, 1], padding)
        got = _run(y)
    np.testing.assert_allclose(got, ref_depthwise(xv, fv, (sh, sw), padding), rtol=1e-12,
                               atol=1e-12)


def test_depthwise_and_separable_match_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed: the NumPy loop "
                                "checks remain")
    xv, fv = RNG.normal(size=(2, 6, 5, 3)), RNG.normal(size=(3, 3, 3, 2))
    pv = RNG.normal(size=(1, 1, 6, 4))
    x = fg.constant(xv)
    y = fg.nn.depthwise_conv2d(x, fg.constant(fv), [1, 1, 1, 1], "SAME")
    s = fg.nn.separable_conv2d(x, fg.constant(fv), fg.constant(pv), [1, 1, 1, 1], "SAME")
    # torch's grouped conv: weight [C*M, 1, kh, kw], output channel c*M + m, as TF1
    tx = torch.tensor(xv).permute(0, 3, 1, 2)
    tw = torch.tensor(fv).permute(2, 3, 0, 1).reshape(6, 1, 3, 3)
    ty = torch.nn.functional.conv2d(tx, tw, padding=1, groups=3)
    ts = torch.nn.functional.conv2d(ty, torch.tensor(pv).permute(3, 2, 0, 1))
    yv, sv = _run([y, s])
    np.testing.assert_allclose(yv, ty.permute(0, 2, 3, 1).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sv, ts.permute(0, 2, 3, 1).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("optimize", [True, False])
def test_separable_conv2d_values(optimize):
    xv = RNG.normal(size=(2, 7, 6, 2)).astype(np.float32)
    dv = RNG.normal(size=(3, 3, 2, 2)).astype(np.float32)
    pv = RNG.normal(size=(1, 1, 4, 3)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 7, 6, 2))
    y = fg.nn.separable_conv2d(x, fg.constant(dv), fg.constant(pv), [1, 2, 2, 1], "SAME",
                               name="sep")
    want = ref_depthwise(xv, dv, (2, 2), "SAME") @ pv[0, 0]
    assert tuple(y.shape) == (None, 4, 3, 3) and y.op.name == "sep"
    np.testing.assert_allclose(_run(y, {x: xv}, optimize), want, rtol=1e-5, atol=1e-5)
    # atrous separable: rate spaces the depthwise taps
    y2 = fg.nn.separable_conv2d(x, fg.constant(dv), fg.constant(pv), [1, 1, 1, 1], "VALID",
                                rate=[2, 1])
    want2 = ref_depthwise(xv, dv, (1, 1), "VALID", (2, 1)) @ pv[0, 0]
    np.testing.assert_allclose(_run(y2, {x: xv}, optimize), want2, rtol=1e-5, atol=1e-5)


GRAD = [((1, 4, 4, 2), (3, 3, 2, 2), (1, 1), "SAME", (1, 1)),
        ((2, 5, 4, 2), (2, 3, 2, 1), (2, 2), "SAME", (1, 1)),
        ((1, 5, 5, 1), (2, 2, 1, 3), (1, 1), "VALID", (2, 2))]


@pytest.mark.parametrize("case", GRAD, ids=[str(i) for i in range(len(GRAD))])
def test_depthwise_gradients_first_and_second_order(case):
    xs, fs, strides, padding, rate = case
    xv, fv = RNG.normal(size=xs), RNG.normal(size=fs) * 0.5
    x, f = fg.placeholder(fg.float64, xs), fg.placeholder(fg.float64, fs)
    feed = {x: xv, f: fv}
    y = fg.tanh(fg.nn.depthwise_conv2d(x, f, [1, *strides, 1], padding, rate=rate))
    assert check_gradients(y, [x, f], feed) < 1e-6
    gx, gf = fg.gradients(fg.reduce_sum(y), [x, f])
    assert check_gradients(gx, [x, f], feed) < 1e-5
    assert check_gradients(gf, [x, f], feed) < 1e-5


def test_separable_gradients_first_and_second_order():
    xv = RNG.normal(size=(1, 4, 5, 2))
    dv, pv = RNG.normal(size=(2, 2, 2, 2)) * 0.5, RNG.normal(size=(1, 1, 4, 2)) * 0.5
    x, d, p = (fg.placeholder(fg.float64, v.shape) for v in (xv, dv, pv))
    feed = {x: xv, d: dv, p: pv}
    y = fg.tanh(fg.nn.separable_conv2d(x, d, p, [1, 1, 2, 1], "SAME"))
    assert check_gradients(y, [x, d, p], feed) < 1e-6
    gx, gd, gp = fg.gradients(fg.reduce_sum(y), [x, d, p])
    for g in (gx, gd, gp):
        assert check_gradients(g, [x, d, p], feed) < 1e-5


@pytest.mark.usefixtures("needs_gpu")
def test_depthwise_on_gpu_equals_cpu():
    from flowgraph.testing import compare_devices
    xv = RNG.normal(size=(1, 3, 3, 2)).astype(np.float32)
    fv = RNG.normal(size=(2, 2, 2, 2)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (1, 3, 3, 2))
        y = fg.nn.depthwise_conv2d(x, fg.constant(fv), [1, 1, 1, 1], "SAME")
        return [y, *fg.gradients(fg.reduce_sum(y * y), [x])], {x: xv}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    np.testing.assert_allclose(results["/gpu:0"][0], ref_depthwise(xv, fv, (1, 1), "SAME"),
                               rtol=1e-5, atol=1e-5)


def test_errors_name_the_op_and_the_callers_line():
    x = fg.placeholder(fg.float32, (1, 5, 5, 2))
    f = fg.constant(np.ones((3, 3, 2, 2), np.float32))
    with pytest.raises(ShapeError, match=r"depthwise_conv2d \(called at test_nn_depthwise"
                                         r"\.py:\d+\).*channels \(2.*in_channels \(3"):
        fg.nn.depthwise_conv2d(x, fg.constant(np.ones((3, 3, 3, 1), np.float32)),
                               [1, 1, 1, 1], "SAME")
    with pytest.raises(ValueError, match=r"depthwise_conv2d \(called at .*strides must be 1 "
                                         r"where rate"):
        fg.nn.depthwise_conv2d(x, f, [1, 2, 2, 1], "SAME", rate=[2, 2])
    with pytest.raises(ValueError, match=r"depthwise_conv2d.*rate= or dilations="):
        fg.nn.depthwise_conv2d(x, f, 1, "SAME", rate=[2, 2], dilations=[2, 2])
    with pytest.raises(DTypeError, match=r"depthwise_conv2d_native.*input's dtype float32"):
        fg.nn.depthwise_conv2d_native(x, fg.constant(np.ones((3, 3, 2, 2))), 1, "SAME")
    with pytest.raises(ValueError, match=r"depthwise_conv2d_native.*NHWC"):
        fg.nn.depthwise_conv2d_native(x, f, 1, "SAME", data_format="NCHW")
    with pytest.raises(ShapeError, match=r"separable_conv2d \(called at test_nn_depthwise"
                                         r"\.py:\d+\).*\[1, 1, 4, out_channels\]"):
        fg.nn.separable_conv2d(x, f, fg.constant(np.ones((1, 1, 2, 3), np.float32)), 1,
                               "SAME")
    with pytest.raises(ValueError, match=r"separable_conv2d.*'SAME' or 'VALID'"):
        fg.nn.separable_conv2d(x, f, fg.constant(np.ones((1, 1, 4, 3), np.float32)), 1,
                               "FULL")


# --- fg.layers.separable_conv2d / SeparableConv2D (TF1's tf.layers) -------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_layers_separable_conv2d(optimize):
    xv = RNG.normal(size=(2, 7, 6, 3)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 7, 6, 3))
    y = fg.layers.separable_conv2d(x, 4, [3, 2], strides=2, padding="same",
                                   depth_multiplier=2, activation=fg.nn.relu,
                                   bias_initializer=fg.constant_initializer(0.1),
                                   depthwise_regularizer=lambda w: fg.reduce_sum(w * w),
                                   name="sep")
    y2 = fg.layers.separable_conv2d(x, 4, [3, 2], strides=2, padding="same",
                                    depth_multiplier=2, activation=fg.nn.relu, name="sep",
                                    reuse=True)                      # shares sep's variables
    y3 = fg.layers.SeparableConv2D(2, 3, use_bias=False,
                                   pointwise_initializer=fg.ones_initializer())(x)
    names = [v.op.name for v in fg.trainable_variables()]
    assert names == ["sep/depthwise_kernel", "sep/pointwise_kernel", "sep/bias",
                     "separable_conv2d/depthwise_kernel", "separable_conv2d/pointwise_kernel"]
    dk, pk = fg.trainable_variables()[:2]
    assert tuple(dk.shape) == (3, 2, 3, 2) and tuple(pk.shape) == (1, 1, 6, 4)
    assert tuple(y.shape) == (None, 4, 3, 4) and tuple(y3.shape) == (None, 5, 4, 2)
    reg = fg.get_collection(fg.GraphKeys.REGULARIZATION_LOSSES)
    assert len(reg) == 1                                  # the reused layer adds none
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        sess.run(fg.global_variables_initializer())
        dv, pv, yv, y2v, y3v, dk3, regv = sess.run(
            [dk, pk, y, y2, y3, fg.trainable_variables()[3], reg[0]], {x: xv})
    want = np.maximum(ref_depthwise(xv, dv, (2, 2), "SAME") @ pv[0, 0] + 0.1, 0)
    np.testing.assert_allclose(yv, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y2v, yv)
    np.testing.assert_allclose(y3v, ref_depthwise(xv, dk3, (1, 1), "VALID") @ np.ones((3, 2)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(regv, (dv.astype(np.float64) ** 2).sum(), rtol=1e-5)
    # TF1's default depthwise initializer: Glorot-uniform over the receptive field
    assert np.abs(dv).max() <= np.sqrt(6.0 / (3 * 2 * 3 + 3 * 2 * 2))


def test_layers_separable_conv2d_errors():
    x = fg.placeholder(fg.float32, (1, 4, 4, 2))
    with pytest.raises(ValueError, match="separable_conv2d.*channels_last"):
        fg.layers.separable_conv2d(x, 2, 3, data_format="channels_first")
    with pytest.raises(ShapeError, match=r"separable_conv2d 'separable_conv2d'.*\[batch"):
        fg.layers.separable_conv2d(fg.placeholder(fg.float32, (4, 4, 2)), 2, 3)
    with pytest.raises(NotImplementedError, match="SeparableConv2D: depthwise_constraint"):
        fg.layers.separable_conv2d(x, 2, 3, depthwise_constraint=lambda w: w)


def test_separable_conv2d_layer_kernels_follow_the_graph_seed():
    """As every fg.layers kernel (TF1's graph-seeded glorot_uniform_initializer): a
    seeded program initializes the same depthwise and pointwise kernels every time."""
    def kernels():
        with fg.Graph().as_default():
            fg.set_random_seed(3)
            x = fg.placeholder(fg.float32, (None, 8, 8, 3))
            fg.layers.separable_conv2d(x, 4, 3)
            sess = fg.Session()
            sess.run(fg.global_variables_initializer())
            return sess.run(fg.trainable_variables()[:2])
    first, second = kernels(), kernels()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0].ravel()[:6], first[1].ravel()[:6])
