"""TF1's tf.nn.conv1d (NWC, a conv2d with a height of 1): values against a naive NumPy
loop written here (TF1's SAME rule computed independently), on the reference and the
compiled path; gradients against finite differences (first and second order); errors."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(13)


def ref_conv1d(x, f, stride, padding):
    """Naive loop: out[n, o, :] = sum_k x[n, o*stride - pad + k, :] @ f[k]."""
    n, w, _ = x.shape
    k, _, cout = f.shape
    if padding == "SAME":
        ow = -(-w // stride)
        pad = max((ow - 1) * stride + k - w, 0) // 2
    else:
        ow, pad = (w - k) // stride + 1, 0
    out = np.zeros((n, ow, cout))
    for o in range(ow):
        for j in range(k):
            i = o * stride - pad + j
            if 0 <= i < w:
                out[:, o, :] += x[:, i, :].astype(np.float64) @ f[j].astype(np.float64)
    return out


CASES = [  # (N, W, C_in, C_out, k, stride, padding)
    (2, 7, 3, 4, 3, 1, "SAME"),
    (2, 7, 3, 4, 3, 1, "VALID"),
    (1, 8, 2, 3, 3, 2, "SAME"),
    (1, 9, 2, 3, 4, 2, "VALID"),
    (3, 6, 1, 2, 2, 2, "SAME"),      # even kernel: pad after only
    (2, 5, 4, 1, 1, 1, "VALID"),     # one tap
]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_conv1d_values(case, dtype, optimize):
    n, w, cin, cout, k, stride, padding = case
    xv = RNG.normal(size=(n, w, cin)).astype(dtype)
    fv = RNG.normal(size=(k, cin, cout)).astype(dtype)
    x = fg.placeholder(dtype, (None, w, cin))                # batch unknown
    y = fg.nn.conv1d(x, fg.constant(fv), stride, padding)
    want = ref_conv1d(xv, fv, stride, padding)
    assert y.dtype == dtype and tuple(y.shape) == (None,) + want.shape[1:]
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        got = sess.run(y, {x: xv})
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_conv1d_keywords_name_and_static_batch():
    xv, fv = RNG.normal(size=(2, 6, 3)), RNG.normal(size=(2, 3, 2))
    y = fg.nn.conv1d(value=fg.constant(xv), filters=fg.constant(fv), stride=2,
                     padding="valid", use_cudnn_on_gpu=False, data_format="NWC",
                     name="my_conv1d")
    assert y.op.name == "my_conv1d" and tuple(y.shape) == (2, 3, 2)
    np.testing.assert_allclose(fg.Session().run(y), ref_conv1d(xv, fv, 2, "VALID"),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [((1, 6, 2), (3, 2, 2), 1, "SAME"),
                                  ((2, 7, 1), (2, 1, 2), 2, "SAME"),
                                  ((1, 7, 2), (3, 2, 1), 2, "VALID")])
def test_conv1d_gradients_first_and_second_order(case):
    xs, fs, stride, padding = case
    xv, fv = RNG.normal(size=xs), RNG.normal(size=fs) * 0.5
    x = fg.placeholder(fg.float64, xs)
    f = fg.placeholder(fg.float64, fs)
    feed = {x: xv, f: fv}
    y = fg.tanh(fg.nn.conv1d(x, f, stride, padding))
    assert check_gradients(y, [x, f], feed) < 1e-6
    gx, gf = fg.gradients(fg.reduce_sum(y), [x, f])
    assert check_gradients(gx, [x, f], feed) < 1e-5
    assert check_gradients(gf, [x, f], feed) < 1e-5


def test_conv1d_errors():
    x = fg.placeholder(fg.float32, (1, 5, 2))
    f = fg.constant(np.ones((3, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"conv1d \(called at test_nn_conv1d.py:\d+\).*"
                                         r"NWC.*NCW"):
        fg.nn.conv1d(x, f, 1, "SAME", data_format="NCW")
    with pytest.raises(ShapeError, match=r"conv1d.*rank-3 \[batch, width"):
        fg.nn.conv1d(fg.placeholder(fg.float32, (5, 2)), f, 1, "SAME")
    with pytest.raises(ShapeError, match=r"conv1d.*rank-3 \[width, in_channels"):
        fg.nn.conv1d(x, fg.constant(np.ones((3, 2), np.float32)), 1, "SAME")
    with pytest.raises(ValueError, match=r"conv1d.*stride as a Python int"):
        fg.nn.conv1d(x, f, [1, 1, 1], "SAME")
    with pytest.raises(ValueError, match=r"conv2d.*'SAME' or 'VALID'"):
        fg.nn.conv1d(x, f, 1, "FULL")
    with pytest.raises(DTypeError, match=r"conv2d.*filter of the input's dtype float32"):
        fg.nn.conv1d(x, fg.constant(np.ones((3, 2, 1))), 1, "SAME")
    with pytest.raises(ShapeError, match=r"conv2d.*channels \(2.*in_channels \(3"):
        fg.nn.conv1d(x, fg.constant(np.ones((3, 3, 1), np.float32)), 1, "SAME")
