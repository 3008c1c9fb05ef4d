"""TF1's tf.nn.conv2d / max_pool / avg_pool (NHWC compositions): values against naive
NumPy loops written here (TF1's SAME rule computed independently), on the reference
and the compiled path; gradients against finite differences (first and second order);
max_pool's gradient at ties (TF1's first argmax); a tiny CNN trained by SGD (compiled
equals reference); one conv on /gpu:0 against /cpu:0; the errors."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(11)


def _run(t, feed=None, optimize=True):
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        return sess.run(t, feed)


def _same_pads(size, k, stride, dilation=1):
    """TF1's SAME rule, from its documentation: (out, pad_before)."""
    out = int(np.ceil(size / stride))
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2


def _windows(x, kh, kw, sh, sw, padding, dh=1, dw=1):
    """Yield (n, oy, ox, rows, cols) with the input coordinates of each window's taps
    (row-major over the window), -1 marking a padded position."""
    n, h, w = x.shape[:3]
    if padding == "SAME":
        oh, ph = _same_pads(h, kh, sh, dh)
        ow, pw = _same_pads(w, kw, sw, dw)
    else:
        oh = (h - (kh - 1) * dh - 1) // sh + 1
        ow = (w - (kw - 1) * dw - 1) // sw + 1
        ph = pw = 0
    for oy in range(oh):
        for ox in range(ow):
            rows = [oy * sh - ph + i * dh for i in range(kh)]
            cols = [ox * sw - pw + j * dw for j in range(kw)]
            yield oy, ox, oh, ow, [r if 0 <= r < h else -1 for r in rows], \
                [c if 0 <= c < w else -1 for c in cols]


def ref_conv(x, f, strides, padding, dilations=(1, 1)):
    kh, kw, cin, cout = f.shape
    out = None
    for oy, ox, oh, ow, rows, cols in _windows(x, kh, kw, *strides, padding, *dilations):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, cout), np.float64)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if r >= 0 and c >= 0:
                    out[:, oy, ox, :] += x[:, r, c, :].astype(np.float64) @ f[i, j]
    return out


def ref_pool(x, ksize, strides, padding, kind):
    out = None
    for oy, ox, oh, ow, rows, cols in _windows(x, *ksize, *strides, padding):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.float64)
        vals = np.stack([x[:, r, c, :] for r in rows for c in cols if r >= 0 and c >= 0])
        out[:, oy, ox, :] = vals.max(0) if kind == "max" else vals.mean(0, dtype=np.float64)
    return out


# (N, H, W, C_in, C_out, kh, kw, strides, padding, dilations)
CONV_CASES = [
    (2, 5, 5, 3, 4, 3, 3, (1, 1), "SAME", (1, 1)),
    (2, 5, 5, 3, 4, 3, 3, (1, 1), "VALID", (1, 1)),
    (1, 6, 7, 2, 3, 3, 3, (2, 2), "SAME", (1, 1)),
    (1, 7, 6, 2, 3, 3, 2, (2, 2), "VALID", (1, 1)),
    (3, 4, 4, 1, 2, 2, 2, (2, 1), "SAME", (1, 1)),       # even kernel: pad after only
    (2, 8, 8, 2, 2, 5, 5, (2, 2), "SAME", (1, 1)),
    (2, 3, 3, 4, 5, 1, 1, (1, 1), "VALID", (1, 1)),      # 1x1: one tap, no concat
    (1, 7, 7, 2, 2, 3, 3, (1, 1), "SAME", (2, 2)),       # dilated
    (1, 8, 7, 1, 2, 2, 3, (1, 1), "VALID", (2, 1)),
]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_values(case, dtype, optimize):
    n, h, w, cin, cout, kh, kw, strides, padding, dil = case
    xv = RNG.normal(size=(n, h, w, cin)).astype(dtype)
    fv = RNG.normal(size=(kh, kw, cin, cout)).astype(dtype)
    x = fg.placeholder(dtype, (None, h, w, cin))             # batch unknown
    y = fg.nn.conv2d(x, fg.constant(fv), [1, *strides, 1], padding,
                     dilations=[1, *dil, 1])
    want = ref_conv(xv, fv, strides, padding, dil)
    assert y.dtype == dtype and tuple(y.shape) == (None,) + want.shape[1:]
    got = _run(y, {x: xv}, optimize)
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_conv2d_matches_torch_and_static_batch():
    torch = pytest.importorskip("torch")
    xv = RNG.normal(size=(2, 6, 6, 3))
    fv = RNG.normal(size=(3, 3, 3, 4))
    y = fg.nn.conv2d(fg.constant(xv), fg.constant(fv), strides=1, padding="SAME")
    assert tuple(y.shape) == (2, 6, 6, 4)
    want = torch.nn.functional.conv2d(torch.tensor(xv).permute(0, 3, 1, 2),
                                      torch.tensor(fv).permute(3, 2, 0, 1), padding=1)
    np.testing.assert_allclose(_run(y), want.permute(0, 2, 3, 1).numpy(), rtol=1e-12,
                               atol=1e-12)


# (N, H, W, C, ksize, strides, padding)
POOL_CASES = [
    (2, 4, 4, 3, (2, 2), (2, 2), "VALID"),
    (2, 5, 5, 3, (2, 2), (2, 2), "SAME"),
    (1, 5, 6, 2, (3, 3), (2, 2), "SAME"),
    (1, 7, 5, 2, (3, 3), (2, 2), "VALID"),
    (2, 4, 5, 1, (3, 2), (1, 1), "SAME"),
    (1, 6, 6, 2, (3, 3), (1, 2), "SAME"),
]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_pool_values(case, kind, dtype, optimize):
    n, h, w, c, ksize, strides, padding = case
    # all-negative values: a zero from the padding would win a wrong max_pool
    xv = (-1.0 - RNG.random(size=(n, h, w, c))).astype(dtype)
    x = fg.placeholder(dtype, (None, h, w, c))
    fn = fg.nn.max_pool if kind == "max" else fg.nn.avg_pool
    y = fn(x, [1, *ksize, 1], [1, *strides, 1], padding)
    want = ref_pool(xv, ksize, strides, padding, kind)
    assert y.dtype == dtype and tuple(y.shape) == (None,) + want.shape[1:]
    got = _run(y, {x: xv}, optimize)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_int_and_pair_forms_of_strides_and_ksize():
    xv = RNG.normal(size=(1, 5, 5, 2))
    x = fg.constant(xv)
    a = fg.nn.max_pool(x, 3, 2, "SAME")
    b = fg.nn.max_pool(x, [3, 3], [2, 2], "same")
    c = fg.nn.max_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME")
    d = fg.nn.conv2d(x, filters=fg.constant(np.ones((2, 2, 2, 1))), strides=[2],
                     padding="VALID", use_cudnn_on_gpu=False, name="my_conv")
    ra, rb, rc, rd = _run([a, b, c, d])
    np.testing.assert_array_equal(ra, rc)
    np.testing.assert_array_equal(rb, rc)
    np.testing.assert_allclose(rd, ref_conv(xv, np.ones((2, 2, 2, 1)), (2, 2), "VALID"))
    assert d.op.name == "my_conv"


# --- gradients --------------------------------------------------------------------------

GRAD_CONV = [((1, 4, 4, 2), (3, 3, 2, 2), (1, 1), "SAME", (1, 1)),
             ((2, 5, 4, 1), (2, 3, 1, 2), (2, 2), "SAME", (1, 1)),
             ((1, 5, 5, 2), (2, 2, 2, 1), (1, 2), "VALID", (1, 1)),
             ((1, 5, 5, 1), (2, 2, 1, 2), (1, 1), "SAME", (2, 2))]


@pytest.mark.parametrize("case", GRAD_CONV, ids=[str(i) for i in range(len(GRAD_CONV))])
def test_conv2d_gradients_first_and_second_order(case):
    xs, fs, strides, padding, dil = case
    xv, fv = RNG.normal(size=xs), RNG.normal(size=fs) * 0.5
    x = fg.placeholder(fg.float64, xs)
    f = fg.placeholder(fg.float64, fs)
    feed = {x: xv, f: fv}
    y = fg.tanh(fg.nn.conv2d(x, f, strides, padding, dilations=dil))
    assert check_gradients(y, [x, f], feed) < 1e-6
    gx, gf = fg.gradients(fg.reduce_sum(y), [x, f])
    assert check_gradients(gx, [x, f], feed) < 1e-5
    assert check_gradients(gf, [x, f], feed) < 1e-5


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", [((1, 4, 4, 2), 2, 2, "VALID"), ((2, 5, 5, 1), 3, 2, "SAME"),
                                  ((1, 5, 4, 2), 2, 1, "SAME")])
def test_pool_gradients_first_and_second_order(case, kind):
    shape, k, s, padding = case
    xv = RNG.permutation(np.prod(shape)).reshape(shape) * 0.1 - 0.7    # no ties
    x = fg.placeholder(fg.float64, shape)
    fn = fg.nn.max_pool if kind == "max" else fg.nn.avg_pool
    y = fg.square(fn(x, k, s, padding))
    assert check_gradients(y, [x], {x: xv}, eps=1e-6) < 1e-6
    (g,) = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: xv}, eps=1e-6) < 1e-5


@pytest.mark.parametrize("optimize", [True, False])
def test_max_pool_gradient_at_ties_goes_to_the_first_maximum(optimize):
    # TF1's CPU MaxPoolGrad: the whole gradient to the first maximum, row-major
    xv = np.array([[3., 1., 2., 2.],
                   [3., 3., 0., 2.],
                   [5., 0., 1., 1.],
                   [0., 5., 1., 1.]]).reshape(1, 4, 4, 1)
    x = fg.placeholder(fg.float64, (1, 4, 4, 1))
    (g,) = fg.gradients(fg.reduce_sum(fg.nn.max_pool(x, 2, 2, "VALID")), [x])
    want = np.array([[1., 0., 1., 0.],
                     [0., 0., 0., 0.],
                     [1., 0., 1., 0.],
                     [0., 0., 0., 0.]]).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(_run(g, {x: xv}, optimize), want)


def test_max_pool_gradient_accumulates_over_overlapping_windows():
    # windows (pad,0,1) (0,1,9) (1,9,2) (9,2,3) (2,3,pad): maxima 1, 9, 9, 9, 3
    xv = np.array([0., 1., 9., 2., 3.]).reshape(1, 1, 5, 1)
    x = fg.placeholder(fg.float64, (1, 1, 5, 1))
    (g,) = fg.gradients(fg.reduce_sum(fg.nn.max_pool(x, [1, 3], 1, "SAME")), [x])
    np.testing.assert_array_equal(_run(g, {x: xv}).ravel(), [0., 1., 3., 0., 1.])


# --- a tiny CNN ---------------------------------------------------------------------------

def _train_cnn(optimize, steps=6):
    rng = np.random.default_rng(3)
    with fg.Graph().as_default():
        images = fg.placeholder(fg.float32, (None, 6, 6, 1))
        labels = fg.placeholder(fg.int32, (None,))
        k = fg.Variable(rng.normal(size=(3, 3, 1, 4)).astype(np.float32) * 0.5)
        b = fg.Variable(np.zeros(4, np.float32))
        w = fg.Variable(rng.normal(size=(36, 3)).astype(np.float32) * 0.2)
        h = fg.nn.relu(fg.nn.conv2d(images, k, [1, 1, 1, 1], "SAME") + b)
        h = fg.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")          # [N, 3, 3, 4]
        logits = fg.matmul(fg.reshape(h, [-1, 36]), w)
        loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
        step = fg.train.GradientDescentOptimizer(0.5).minimize(loss)
        xv = rng.normal(size=(8, 6, 6, 1)).astype(np.float32)
        yv = (xv[:, :3].sum((1, 2, 3)) > 0).astype(np.int32) + (xv[:, 3:, :3].sum((1, 2, 3)) > 1)
        feed = {images: xv, labels: yv.astype(np.int32)}
        losses = []
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            sess.run(fg.global_variables_initializer())
            for _ in range(steps):
                losses.append(sess.run([loss, step], feed)[0])
            losses.append(sess.run(loss, feed))
    return np.array(losses)


def test_tiny_cnn_trains_and_compiled_equals_reference():
    compiled, reference = _train_cnn(True), _train_cnn(False)
    assert compiled[-1] < 0.8 * compiled[0]
    np.testing.assert_allclose(compiled, reference, rtol=1e-4, atol=1e-5)


# --- /gpu:0 -------------------------------------------------------------------------------

@pytest.mark.usefixtures("needs_gpu")
def test_conv_and_pool_on_gpu_equal_cpu():
    from flowgraph.testing import compare_devices
    xv = RNG.normal(size=(1, 3, 3, 2)).astype(np.float32)
    fv = RNG.normal(size=(2, 2, 2, 2)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (1, 3, 3, 2))
        f = fg.constant(fv)
        y = fg.nn.max_pool(fg.nn.conv2d(x, f, 1, "SAME"), 2, 1, "VALID")
        return [y, *fg.gradients(fg.reduce_sum(y * y), [x])], {x: xv}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    want = ref_pool(ref_conv(xv, fv, (1, 1), "SAME"), (2, 2), (1, 1), "VALID", "max")
    np.testing.assert_allclose(results["/gpu:0"][0], want, rtol=1e-5, atol=1e-5)


# --- errors -------------------------------------------------------------------------------

def test_errors_name_the_op_and_the_callers_line():
    x = fg.placeholder(fg.float32, (1, 4, 4, 2))
    f = fg.constant(np.ones((3, 3, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"conv2d \(called at test_nn_conv.py:\d+\).*"
                                         r"'SAME' or 'VALID'.*'FULL'"):
        fg.nn.conv2d(x, f, 1, "FULL")
    with pytest.raises(ValueError, match=r"max_pool \(called at test_nn_conv.py.*NHWC.*NCHW"):
        fg.nn.max_pool(x, 2, 2, "SAME", data_format="NCHW")
    with pytest.raises(ValueError, match=r"conv2d.*NCHW"):
        fg.nn.conv2d(x, f, 1, "SAME", data_format="NCHW")
    with pytest.raises(ShapeError, match=r"avg_pool.*rank-4"):
        fg.nn.avg_pool(fg.placeholder(fg.float32, (4, 4, 2)), 2, 2, "SAME")
    with pytest.raises(ShapeError, match=r"conv2d.*rank-4.*filter"):
        fg.nn.conv2d(x, fg.constant(np.ones((3, 3, 2), np.float32)), 1, "SAME")
    with pytest.raises(ShapeError, match=r"conv2d.*channels \(2.*in_channels \(3"):
        fg.nn.conv2d(x, fg.constant(np.ones((3, 3, 3, 1), np.float32)), 1, "SAME")
    with pytest.raises(DTypeError, match=r"conv2d.*filter of the input's dtype float32"):
        fg.nn.conv2d(x, fg.constant(np.ones((3, 3, 2, 1))), 1, "SAME")
    with pytest.raises(ShapeError, match=r"max_pool.*VALID.*window of 5.*size of 4"):
        fg.nn.max_pool(x, 5, 1, "VALID")
    with pytest.raises(ValueError, match=r"conv2d.*batch and channel axes must be 1"):
        fg.nn.conv2d(x, f, [2, 1, 1, 1], "SAME")
    with pytest.raises(ValueError, match=r"max_pool.*ksize of length 1, 2 or 4"):
        fg.nn.max_pool(x, [2, 2, 2], 1, "SAME")
    with pytest.raises(ShapeError, match=r"avg_pool.*height and width.*known"):
        fg.nn.avg_pool(fg.placeholder(fg.float32, (1, None, 4, 2)), 2, 2, "SAME")


# --- fg.layers (TF1's tf.layers.conv2d / max_pooling2d / average_pooling2d) ---------------

@pytest.mark.parametrize("optimize", [True, False])
def test_layers_conv2d_and_pooling(optimize):
    xv = RNG.normal(size=(2, 7, 7, 3)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 7, 7, 3))
    h = fg.layers.conv2d(x, 4, [3, 2], strides=2, padding="same", activation=fg.nn.relu,
                         bias_initializer=fg.constant_initializer(0.1), name="c1")
    p = fg.layers.max_pooling2d(h, 2, 1)
    a = fg.layers.average_pooling2d(h, [2, 2], 2, padding="same")
    h2 = fg.layers.conv2d(x, 4, [3, 2], strides=2, padding="same", activation=fg.nn.relu,
                          name="c1", reuse=True)                    # shares c1's variables
    h3 = fg.layers.conv2d(x, 2, 1, use_bias=False)
    assert [v.op.name for v in fg.trainable_variables()] == ["c1/kernel", "c1/bias",
                                                             "conv2d/kernel"]
    kernel = fg.trainable_variables()[0]
    assert tuple(kernel.shape) == (3, 2, 3, 4)
    assert tuple(p.shape) == (None, 3, 3, 4) and tuple(a.shape) == (None, 2, 2, 4)
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        sess.run(fg.global_variables_initializer())
        kv, hv, pv, av, h2v, h3v, k3 = sess.run(
            [kernel, h, p, a, h2, h3, fg.trainable_variables()[2]], {x: xv})
    want = np.maximum(ref_conv(xv, kv, (2, 2), "SAME") + 0.1, 0)
    np.testing.assert_allclose(hv, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(h2v, hv)
    np.testing.assert_allclose(pv, ref_pool(want, (2, 2), (1, 1), "VALID", "max"),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(av, ref_pool(want, (2, 2), (2, 2), "SAME", "avg"),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h3v, ref_conv(xv, k3, (1, 1), "VALID"), rtol=1e-5, atol=1e-5)
    # TF1's default kernel initializer: Glorot-uniform over the receptive field
    assert np.abs(kv).max() <= np.sqrt(6.0 / (3 * 2 * 3 + 3 * 2 * 4))


def test_layers_errors():
    x = fg.placeholder(fg.float32, (1, 4, 4, 2))
    with pytest.raises(ValueError, match="channels_last"):
        fg.layers.conv2d(x, 2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="max_pooling2d.*channels_last"):
        fg.layers.max_pooling2d(x, 2, 2, data_format="channels_first")
    with pytest.raises(ShapeError, match=r"conv2d 'conv2d'.*\[batch, height, width"):
        fg.layers.conv2d(fg.placeholder(fg.float32, (4, 4, 2)), 2, 3)
    with pytest.raises(ValueError, match="kernel_size as an int or 2 ints"):
        fg.layers.conv2d(x, 2, [3, 3, 3])
