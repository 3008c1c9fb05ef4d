"""The image-patches primitives (ExtractPatches: im2col; PatchesGrad: col2im) and what
is built on them: values against naive loops written here (Hypothesis-drawn
geometries), the Numba CPU kernels against the NumPy reference kernels (col2im
bitwise), the compiled path against the reference path, gradients against finite
differences (first and second order), fg.extract_image_patches in TF1's channel order,
fg.nn.conv2d_transpose against torch and against conv2d's input gradient, the layers,
the errors, and the numba.cuda kernels on /gpu:0 (the simulator) against /cpu:0."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.ops import get_primitive
from flowgraph.patches_ops import extract_patches, patches_grad
from flowgraph.testing import check_gradients
from patches_reference import geometries, naive_col2im, naive_patches

RNG = np.random.default_rng(5)
EAGER = fg.SessionConfig(optimize=True, compile="eager")
REFERENCE = fg.SessionConfig(optimize=False)


def _out_shape(shape, k, s, d, pads):
    return naive_patches(np.zeros(shape), k, s, d, pads).shape


# --- values: reference kernels, compiled kernels, the graph functions -----------------------

@settings(max_examples=40, deadline=None)
@given(geometry=geometries(), dtype=st.sampled_from([np.float32, np.float64]))
def test_reference_kernels_match_the_naive_loops(geometry, dtype):
    shape, k, s, d, pads = geometry
    attrs = {"ksizes": k, "strides": s, "rates": d, "pads": pads, "image": shape[1:3]}

    class Op:                                   # what a reference kernel reads of its op
        def __init__(self):
            self.attrs = attrs
    x = RNG.normal(size=shape).astype(dtype)
    want = naive_patches(x, k, s, d, pads)
    np.testing.assert_array_equal(get_primitive("ExtractPatches").ref(Op(), x), want)
    g = RNG.normal(size=want.shape).astype(dtype)
    got = get_primitive("PatchesGrad").ref(Op(), g)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(got, naive_col2im(g, shape[1:3], k, s, d, pads),
                               rtol=1e-6, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(geometry=geometries(max_side=9, max_c=5),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_numba_cpu_kernels_equal_the_reference_kernels(geometry, dtype):
    # col2im bitwise: the kernel adds each element's taps in the reference's order
    from kernels.cpu.patches import extract_patches_step, patches_grad_step
    shape, k, s, d, pads = geometry
    attrs = {"ksizes": k, "strides": s, "rates": d, "pads": pads, "image": shape[1:3]}

    class Op:
        def __init__(self):
            self.attrs = attrs
    x = RNG.normal(size=shape).astype(dtype)
    out = np.full(_out_shape(shape, k, s, d, pads), np.nan, dtype)
    extract_patches_step(attrs, [x], [out])()
    np.testing.assert_array_equal(out, get_primitive("ExtractPatches").ref(Op(), x))
    g = RNG.normal(size=out.shape).astype(dtype)
    img = np.full(shape, np.nan, dtype)
    patches_grad_step(attrs, [g], [img])()
    np.testing.assert_array_equal(img, get_primitive("PatchesGrad").ref(Op(), g))


def test_cpu_kernels_decline_what_they_do_not_handle():
    from kernels.cpu.patches import extract_patches_step, patches_grad_step
    attrs = {"ksizes": (2, 2), "strides": (1, 1), "rates": (1, 1), "pads": (0, 0, 0, 0),
             "image": (3, 3)}
    ints = np.ones((1, 3, 3, 1), np.int32)
    assert extract_patches_step(attrs, [ints], [np.empty((1, 2, 2, 4), np.int32)]) is None
    strided = np.ones((1, 3, 6, 1))[:, :, ::2]
    assert extract_patches_step(attrs, [strided], [np.empty((1, 2, 2, 4))]) is None
    # patches of the wrong shape: the reference runs, and raises
    assert patches_grad_step(attrs, [np.ones((1, 2, 3, 4))], [np.empty((1, 3, 3, 1))]) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_path_runs_the_kernels_and_equals_the_reference(dtype):
    shape, k, s, d, pads = (2, 7, 6, 3), (3, 2), (2, 1), (1, 2), (1, 2, 0, 1)
    xv = RNG.normal(size=shape).astype(dtype)
    with fg.Graph().as_default():
        x = fg.placeholder(dtype, (None, 7, 6, 3))
        p = extract_patches(x, k, s, d, pads)
        y = fg.reduce_sum(fg.square(p) * fg.sin(p))
        (gx,) = fg.gradients(y, [x])
        (ggx,) = fg.gradients(fg.reduce_sum(gx * gx), [x])
        with fg.Session(config=EAGER) as sess:
            plan = sess.explain([p, gx, ggx], {x: xv})
            compiled = sess.run([p, gx, ggx], {x: xv})
        with fg.Session(config=REFERENCE) as sess:
            reference = sess.run([p, gx, ggx], {x: xv})
    assert "patches kernel" in plan and "col2im kernel" in plan
    np.testing.assert_array_equal(compiled[0], naive_patches(xv, k, s, d, pads))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(compiled, reference):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_conv2d_is_one_patches_op_and_its_input_gradient_one_col2im():
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, (None, 8, 8, 3))
        w = fg.constant(RNG.normal(size=(5, 5, 3, 4)).astype(np.float32))
        y = fg.nn.conv2d(x, w, 1, "SAME")
        (gx,) = fg.gradients(fg.reduce_sum(y * y), [x])
        ops = [op.type for op in fg.get_default_graph().get_operations()]
    assert ops.count("ExtractPatches") == 1 and ops.count("PatchesGrad") == 1
    assert "StridedSlice" not in ops and "SliceGrad" not in ops and "Concat" not in ops


# --- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("geometry", [((1, 4, 5, 2), (2, 3), (1, 2), (1, 1), (1, 0, 2, 1)),
                                      ((2, 5, 4, 1), (3, 2), (2, 1), (2, 1), (0, 1, 0, 0))])
def test_patches_gradients_first_and_second_order(geometry):
    shape, k, s, d, pads = geometry
    xv = RNG.normal(size=shape)
    gshape = _out_shape(shape, k, s, d, pads)
    gv = RNG.normal(size=gshape)
    x = fg.placeholder(fg.float64, shape)
    g = fg.placeholder(fg.float64, gshape)
    y = fg.reduce_sum(fg.tanh(extract_patches(x, k, s, d, pads)) ** 2) + fg.reduce_sum(
        fg.sin(patches_grad(g * g, shape[1:3], k, s, d, pads)) * x)
    feed = {x: xv, g: gv}
    assert check_gradients(y, [x, g], feed) < 1e-6
    gx, gg = fg.gradients(y, [x, g])
    assert check_gradients(fg.reduce_sum(gx * gx) + fg.reduce_sum(gg * gg), [x, g],
                           feed) < 1e-5


@pytest.mark.parametrize("case", [((1, 3, 3, 2), (3, 3, 1, 2), (1, 6, 6, 1), 2, "SAME"),
                                  ((2, 2, 3, 1), (2, 3, 2, 1), (2, 5, 7, 2), 2, "VALID")])
def test_conv2d_transpose_gradients_first_and_second_order(case):
    xs, fs, out_shape, stride, padding = case
    x = fg.placeholder(fg.float64, xs)
    f = fg.placeholder(fg.float64, fs)
    feed = {x: RNG.normal(size=xs), f: RNG.normal(size=fs) * 0.5}
    y = fg.tanh(fg.nn.conv2d_transpose(x, f, out_shape, stride, padding))
    assert check_gradients(y, [x, f], feed) < 1e-6
    gx, gf = fg.gradients(fg.reduce_sum(y), [x, f])
    assert check_gradients(gx, [x, f], feed) < 1e-5
    assert check_gradients(gf, [x, f], feed) < 1e-5


# --- TF1: extract_image_patches and conv2d_transpose ---------------------------------------

def test_extract_image_patches_is_tf1s():
    # TF1's documented example layout: the last axis is (row, column, channel) of the
    # window; SAME pads by TF1's rule (pad_before = total // 2)
    xv = np.arange(2 * 5 * 5 * 2, dtype=np.float32).reshape(2, 5, 5, 2)
    p = fg.extract_image_patches(fg.constant(xv), [1, 3, 3, 1], [1, 2, 2, 1], [1, 1, 1, 1],
                                 "VALID")
    got = fg.Session().run(p)
    assert got.shape == (2, 2, 2, 18)
    np.testing.assert_array_equal(got[1, 1, 0], xv[1, 2:5, 0:3, :].reshape(-1))
    for padding, rates in [("SAME", (1, 1)), ("SAME", (2, 2)), ("VALID", (2, 1))]:
        q = fg.extract_image_patches(fg.constant(xv), [1, 2, 3, 1], [1, 2, 1, 1],
                                     [1, *rates, 1], padding)
        pads = (0, 0, 0, 0)
        if padding == "SAME":
            pads = tuple(v for a, (k, s) in enumerate([(2, 2), (3, 1)]) for v in (
                (lambda t: (t // 2, t - t // 2))(max((-(-5 // s) - 1) * s
                                                     + (k - 1) * rates[a] + 1 - 5, 0))))
        np.testing.assert_array_equal(fg.Session().run(q),
                                      naive_patches(xv, (2, 3), (2, 1), rates, pads))


def test_extract_image_patches_takes_integers():
    xv = np.arange(16, dtype=np.int32).reshape(1, 4, 4, 1)
    p = fg.extract_image_patches(xv, [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
    got = fg.Session().run(p)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, naive_patches(xv, (2, 2), (2, 2), (1, 1), (0,) * 4))


TRANSPOSE_CASES = [  # (value shape, filter shape, output_shape, strides, padding)
    ((2, 3, 3, 4), (3, 3, 2, 4), (2, 6, 6, 2), (2, 2), "SAME"),
    ((1, 3, 4, 2), (3, 2, 3, 2), (1, 7, 8, 3), (2, 2), "VALID"),
    ((1, 3, 3, 2), (4, 4, 2, 2), (1, 5, 5, 2), (2, 2), "SAME"),    # odd output: pad after
    ((2, 4, 4, 1), (5, 5, 3, 1), (2, 4, 4, 3), (1, 1), "SAME"),
    ((1, 2, 3, 2), (3, 3, 1, 2), (1, 6, 7, 1), (3, 2), "VALID"),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[str(i) for i in range(len(TRANSPOSE_CASES))])
def test_conv2d_transpose_matches_torch_and_conv2ds_input_gradient(case):
    xs, fs, out_shape, strides, padding = case
    xv, fv = RNG.normal(size=xs), RNG.normal(size=fs)
    y = fg.nn.conv2d_transpose(fg.constant(xv), fg.constant(fv), list(out_shape),
                               [1, *strides, 1], padding)
    assert tuple(y.shape) == out_shape
    got = fg.Session().run(y)
    # conv2d's input gradient, with value as the output gradient
    z = fg.placeholder(fg.float64, out_shape)
    (gz,) = fg.gradients(fg.nn.conv2d(z, fg.constant(fv), strides, padding), [z],
                         grad_ys=[fg.constant(xv)])
    np.testing.assert_allclose(got, fg.Session().run(gz, {z: np.zeros(out_shape)}),
                               rtol=1e-12, atol=1e-12)
    torch = pytest.importorskip("torch", reason="torch is not installed: no torch check")
    # torch's transposed convolution without padding, cropped as TF1 pads
    full = torch.nn.functional.conv_transpose2d(
        torch.tensor(xv).permute(0, 3, 1, 2), torch.tensor(fv).permute(3, 2, 0, 1),
        stride=strides).permute(0, 2, 3, 1).numpy()
    crop = []
    for a in range(2):
        size, k, s = out_shape[1 + a], fs[a], strides[a]
        total = max((-(-size // s) - 1) * s + k - size, 0) if padding == "SAME" else 0
        crop.append(slice(total // 2, total // 2 + size))
    np.testing.assert_allclose(got, full[:, crop[0], crop[1], :], rtol=1e-12, atol=1e-12)


def test_conv2d_transpose_spellings_and_batch():
    xv, fv = RNG.normal(size=(3, 2, 2, 1)), RNG.normal(size=(2, 2, 4, 1))
    x = fg.placeholder(fg.float64, (None, 2, 2, 1))
    a = fg.nn.conv2d_transpose(x, fg.constant(fv), [fg.shape(x)[0], 4, 4, 4], 2, "VALID",
                               name="up")
    b = fg.nn.conv2d_transpose(input=x, filters=fg.constant(fv),
                               output_shape=fg.constant([3, 4, 4, 4]), strides=[2, 2])
    assert a.op.name == "up" and tuple(a.shape) == (None, 4, 4, 4)
    ra, rb = fg.Session().run([a, b], {x: xv})
    np.testing.assert_array_equal(ra, rb)
    assert ra.shape == (3, 4, 4, 4)


# --- layers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_layers_conv2d_transpose_and_conv1d(optimize):
    xv = RNG.normal(size=(2, 3, 4, 3)).astype(np.float32)
    sv = RNG.normal(size=(2, 9, 3)).astype(np.float32)
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, (None, 3, 4, 3))
        s = fg.placeholder(fg.float32, (None, 9, 3))
        up = fg.layers.conv2d_transpose(x, 2, [3, 2], strides=2, padding="same",
                                        activation=fg.nn.relu,
                                        bias_initializer=fg.constant_initializer(0.1))
        up_valid = fg.layers.conv2d_transpose(x, 2, 3, strides=2, use_bias=False)
        again = fg.layers.conv2d_transpose(x, 2, 1, name="up", reuse=None)
        c1 = fg.layers.conv1d(s, 4, 3, strides=2, padding="same", dilation_rate=1)
        c1d = fg.layers.conv1d(s, 2, 3, dilation_rate=2, name="dilated")
        names = [v.op.name for v in fg.trainable_variables()]
        assert names == ["conv2d_transpose/kernel", "conv2d_transpose/bias",
                         "conv2d_transpose_1/kernel", "up/kernel", "up/bias",
                         "conv1d/kernel", "conv1d/bias", "dilated/kernel", "dilated/bias"]
        assert tuple(up.shape) == (None, 6, 8, 2) and tuple(up_valid.shape) == (None, 7, 9, 2)
        assert tuple(again.shape) == (None, 3, 4, 2)
        assert tuple(c1.shape) == (None, 5, 4) and tuple(c1d.shape) == (None, 5, 2)
        k_up, k_valid, k1, kd = (fg.trainable_variables()[i] for i in (0, 2, 5, 7))
        assert tuple(k_up.shape) == (3, 2, 2, 3) and tuple(k1.shape) == (3, 3, 4)
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            sess.run(fg.global_variables_initializer())
            vals = sess.run([up, up_valid, c1, c1d, k_up, k_valid, k1, kd], {x: xv, s: sv})
            want = sess.run([
                fg.nn.relu(fg.nn.conv2d_transpose(x, k_up, [2, 6, 8, 2], 2, "SAME") + 0.1),
                fg.nn.conv2d_transpose(x, k_valid, [2, 7, 9, 2], 2, "VALID"),
                fg.nn.conv1d(s, k1, 2, "SAME")], {x: xv, s: sv})
    for got, w in zip(vals[:3], want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-5)
    kd = vals[7]
    dil = sum(sv[:, i * 2:i * 2 + 5, :] @ kd[i] for i in range(3))     # VALID, rate 2
    np.testing.assert_allclose(vals[3], dil, rtol=1e-5, atol=1e-5)


# --- errors ---------------------------------------------------------------------------------

def test_errors_name_the_function_or_op_and_the_callers_line():
    x = fg.placeholder(fg.float32, (1, 4, 4, 2))
    with pytest.raises(ValueError, match=r"extract_patches \(called at test_patches.py:\d+\)"
                                         r".*ksizes as 2 Python ints >= 1"):
        extract_patches(x, (0, 2), (1, 1), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"patches_grad \(called at test_patches.py.*pads"):
        patches_grad(x, (4, 4), (1, 1), (1, 1), (1, 1), (0, 0, -1, 0))
    with pytest.raises(ShapeError, match=r"ExtractPatches 'extract_patches.*' \(created at "
                                         r"test_patches.py:\d+\).*window of 5.*padded "
                                         r"spatial size of 4"):
        extract_patches(x, (5, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    with pytest.raises(ShapeError, match=r"PatchesGrad.*test_patches.py.*spatial size \(3, 3\)"):
        patches_grad(fg.placeholder(fg.float32, (1, 2, 2, 8)), (4, 4), (2, 2), (1, 1),
                     (1, 1), (0, 0, 0, 0))
    with pytest.raises(ShapeError, match=r"PatchesGrad.*divisible by kh\*kw = 4"):
        patches_grad(fg.placeholder(fg.float32, (1, 3, 3, 6)), (4, 4), (2, 2), (1, 1),
                     (1, 1), (0, 0, 0, 0))
    with pytest.raises(ShapeError, match=r"extract_patches \(called at test_patches.py.*"
                                         r"height and width.*known"):
        extract_patches(fg.placeholder(fg.float32, (1, None, 4, 2)), (1, 1), (1, 1), (1, 1),
                        (0, 0, 0, 0))
    with pytest.raises(ShapeError, match=r"ExtractPatches.*rank-4"):
        extract_patches(fg.placeholder(fg.float32, (4, 4, 2)), (1, 1), (1, 1), (1, 1),
                        (0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"extract_image_patches \(called at "
                                         r"test_patches.py.*'SAME' or 'VALID'"):
        fg.extract_image_patches(x, [1, 2, 2, 1], [1, 1, 1, 1], [1, 1, 1, 1], "FULL")
    with pytest.raises(ValueError, match=r"extract_image_patches.*rates along the batch"):
        fg.extract_image_patches(x, [1, 2, 2, 1], [1, 1, 1, 1], [2, 1, 1, 1], "SAME")
    f = fg.constant(np.ones((3, 3, 5, 2), np.float32))
    with pytest.raises(ShapeError, match=r"conv2d_transpose \(called at test_patches.py"
                                         r".*8x8.*spatial size of 4x4, not the value's 3x3"):
        fg.nn.conv2d_transpose(fg.placeholder(fg.float32, (1, 3, 3, 2)), f, [1, 8, 8, 5],
                               2, "SAME")
    with pytest.raises(ShapeError, match=r"conv2d_transpose.*channels \(3.*in_channels"):
        fg.nn.conv2d_transpose(fg.placeholder(fg.float32, (1, 3, 3, 3)), f, [1, 6, 6, 5],
                               2, "SAME")
    with pytest.raises(ShapeError, match=r"conv2d_transpose.*output_shape's channels \(4\)"):
        fg.nn.conv2d_transpose(fg.placeholder(fg.float32, (1, 3, 3, 2)), f, [1, 6, 6, 4],
                               2, "SAME")
    with pytest.raises(ValueError, match=r"conv2d_transpose.*output_shape as 4 ints"):
        fg.nn.conv2d_transpose(fg.placeholder(fg.float32, (1, 3, 3, 2)), f, [6, 6, 5], 2)
    with pytest.raises(ShapeError, match=r"conv2d_transpose.*output_shape as Python ints"):
        fg.nn.conv2d_transpose(fg.placeholder(fg.float32, (1, 3, 3, 2)), f,
                               fg.placeholder(fg.int32, (4,)), 2)
    with pytest.raises(ShapeError, match=r"conv2d_transpose 'c'.*known height"):
        fg.layers.conv2d_transpose(fg.placeholder(fg.float32, (1, None, 3, 2)), 2, 3,
                                   name="c")
    with pytest.raises(ShapeError, match=r"conv1d 'conv1d'.*\[batch, width, channels\]"):
        fg.layers.conv1d(x, 2, 3)


# --- /gpu:0 (the numba.cuda simulator where there is no GPU) ---------------------------------

@pytest.mark.usefixtures("needs_gpu")
@pytest.mark.parametrize("geometry", [((1, 4, 3, 2), (2, 2), (2, 1), (1, 2), (1, 0, 1, 1)),
                                      ((1, 3, 3, 1), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))])
def test_patches_on_gpu_equal_cpu(geometry):
    from flowgraph.testing import compare_devices
    shape, k, s, d, pads = geometry
    xv = RNG.normal(size=shape).astype(np.float32)
    gv = RNG.normal(size=_out_shape(shape, k, s, d, pads)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, shape)
        g = fg.placeholder(fg.float32, gv.shape)
        p = extract_patches(x, k, s, d, pads)
        back = patches_grad(g, shape[1:3], k, s, d, pads)
        return [p, back, *fg.gradients(fg.reduce_sum(p * p) + fg.reduce_sum(back * back),
                                       [x, g])], {x: xv, g: gv}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(results["/gpu:0"][0], naive_patches(xv, k, s, d, pads))
    with fg.Graph().as_default(), fg.device("/gpu:0"):
        x = fg.placeholder(fg.float32, shape)
        plan = fg.Session().explain(extract_patches(x, k, s, d, pads), {x: xv})
    # a kernel on the GPU, not the host fallback (a "reference" step with copies)
    assert any(line.split()[1:] == ["/gpu:0", "kernel", "extract_patches"]
               for line in plan.splitlines()[2:]), plan


@pytest.mark.usefixtures("needs_gpu")
def test_conv2d_transpose_on_gpu_equals_cpu():
    from flowgraph.testing import compare_devices
    xv = RNG.normal(size=(1, 2, 2, 2)).astype(np.float32)
    fv = RNG.normal(size=(2, 2, 1, 2)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (1, 2, 2, 2))
        y = fg.nn.conv2d_transpose(x, fg.constant(fv), [1, 3, 3, 1], 2, "SAME")
        return [y, *fg.gradients(fg.reduce_sum(y * y), [x])], {x: xv}
    compare_devices(build, devices=("/cpu:0", "/gpu:0"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", ["/cpu:0", "/gpu:0"])
def test_run_time_shapes_are_checked_by_the_kernels(device, request):
    # shapes the graph did not know: the same InvalidArgumentError, naming the op, on
    # either device (the CPU's from the reference kernels), and the session still runs
    from flowgraph.errors import InvalidArgumentError
    if device == "/gpu:0":
        request.getfixturevalue("needs_gpu")
    g = fg.placeholder(fg.float32, (None, None, None, None))
    x = fg.placeholder(fg.float32, None)
    with fg.device(device):
        back = patches_grad(g, (4, 4), (2, 2), (1, 1), (1, 1), (0, 0, 0, 0))
        patches = extract_patches(x, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
        back_of_x = patches_grad(x, (4, 4), (2, 2), (1, 1), (1, 1), (0, 0, 0, 0))
    sess = fg.Session()
    with pytest.raises(InvalidArgumentError, match=r"PatchesGrad.*expected patches"):
        sess.run(back, {g: np.ones((1, 2, 2, 4), np.float32)})
    with pytest.raises(InvalidArgumentError, match=r"PatchesGrad.*rank-4 patches"):
        sess.run(back_of_x, {x: np.ones((2, 2), np.float32)})
    with pytest.raises(InvalidArgumentError, match=r"ExtractPatches.*rank-4"):
        sess.run(patches, {x: np.ones((2, 2), np.float32)})
    assert sess.run(back, {g: np.ones((1, 3, 3, 4), np.float32)}).shape == (1, 4, 4, 1)
