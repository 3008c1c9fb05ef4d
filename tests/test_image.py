"""TF1's tf.image (flowgraph.image): the resizers against (a) the known values of TF1's
own tests (tensorflow/python/ops/image_ops_test.py, class ResizeImagesTest:
testResizeDown, testResizeUpAlignCornersFalse, testResizeUpAlignCornersTrue,
testReturnDtype), (b) per-pixel NumPy loops written here from TF1's kernels'
coordinate formulas (image_resizer_state.h, resize_bilinear_op.cc,
resize_nearest_neighbor_op.cc), in float32 as TF1 computes them, over Hypothesis sizes,
and (c) torch's interpolate where its rule is TF1's; on the reference and the compiled
path; gradients against finite differences (first and second order); one graph on
/gpu:0 (the numba.cuda simulator where there is no GPU) against /cpu:0; the cheap image
ops against NumPy; the errors name the op and the caller's line."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.image.resize import _bilinear
from flowgraph.testing import check_gradients

RNG = np.random.default_rng(5)
BILINEAR, NEAREST = fg.image.ResizeMethod.BILINEAR, fg.image.ResizeMethod.NEAREST_NEIGHBOR


def _run(t, feed=None, optimize=True):
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        return sess.run(t, feed)


# --- NumPy references: TF1's kernels, one output pixel at a time, in float32 -----------

def _tf_scale(in_size, out_size, align_corners):
    f32 = np.float32
    if align_corners and out_size > 1:
        return f32(f32(in_size - 1) / f32(out_size - 1))
    return f32(f32(in_size) / f32(out_size))


def ref_bilinear(x, out_h, out_w, align_corners=False, half_pixel_centers=False):
    f32 = np.float32
    x = x.astype(np.float32)
    n, h, w, c = x.shape
    hs, ws = _tf_scale(h, out_h, align_corners), _tf_scale(w, out_w, align_corners)

    def coord(i, scale, size):
        src = f32(f32(f32(i) + f32(0.5)) * scale - f32(0.5)) if half_pixel_centers \
            else f32(f32(i) * scale)
        lo = max(int(math.floor(src)), 0)
        hi = min(int(math.ceil(src)), size - 1)
        return lo, hi, f32(src - f32(math.floor(src)))

    out = np.zeros((n, out_h, out_w, c), np.float32)
    for i in range(out_h):
        y0, y1, yl = coord(i, hs, h)
        for j in range(out_w):
            x0, x1, xl = coord(j, ws, w)
            tl, tr, bl, br = x[:, y0, x0], x[:, y0, x1], x[:, y1, x0], x[:, y1, x1]
            top = tl + (tr - tl) * xl
            bottom = bl + (br - bl) * xl
            out[:, i, j] = top + (bottom - top) * yl
    return out


def ref_nearest(x, out_h, out_w, align_corners=False, half_pixel_centers=False):
    f32 = np.float32
    n, h, w, c = x.shape
    hs, ws = _tf_scale(h, out_h, align_corners), _tf_scale(w, out_w, align_corners)

    def index(i, scale, size):
        src = f32(f32(f32(i) + f32(0.5)) * scale) if half_pixel_centers else f32(f32(i) * scale)
        k = int(math.floor(float(src) + 0.5)) if align_corners else int(math.floor(src))
        k = min(k, size - 1)                  # roundf: half away from zero (src >= 0)
        return max(k, 0) if half_pixel_centers else k

    out = np.zeros((n, out_h, out_w, c), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            out[:, i, j] = x[:, index(i, hs, h), index(j, ws, w)]
    return out


# --- TF1's own test values (image_ops_test.py, ResizeImagesTest) ------------------------

DOWN_DATA = [127, 127, 64, 64, 127, 127, 64, 64, 64, 64, 127, 127, 64, 64, 127, 127,
             50, 50, 100, 100, 50, 50, 100, 100]


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("method", [BILINEAR, NEAREST])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_tf1_resize_down(method, dtype, optimize):
    # testResizeDown: 6x4 to 3x2, 3-D and 4-D images
    for shape in ([1, 6, 4, 1], [6, 4, 1]):
        x = fg.constant(np.array(DOWN_DATA, dtype).reshape(shape))
        y = fg.image.resize_images(x, [3, 2], method)
        want = np.array([127, 64, 64, 127, 50, 100]).reshape(shape[:-3] + [3, 2, 1])
        assert tuple(y.shape) == want.shape
        np.testing.assert_allclose(_run(y, optimize=optimize), want, atol=1e-5)


@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_tf1_resize_up_align_corners_false_and_true(dtype, optimize):
    # testResizeUpAlignCornersFalse and testResizeUpAlignCornersTrue
    expected = {
        (BILINEAR, False): [64.0, 48.0, 32.0, 32.0, 48.0, 48.0, 48.0, 48.0, 32.0, 48.0, 64.0,
                            64.0, 41.0, 61.5, 82.0, 82.0, 50.0, 75.0, 100.0, 100.0, 50.0,
                            75.0, 100.0, 100.0],
        (NEAREST, False): [64.0, 64.0, 32.0, 32.0, 64.0, 64.0, 32.0, 32.0, 32.0, 32.0, 64.0,
                           64.0, 32.0, 32.0, 64.0, 64.0, 50.0, 50.0, 100.0, 100.0, 50.0,
                           50.0, 100.0, 100.0],
        (BILINEAR, True): [6.0, 5.0, 4.0, 3.0, 4.5, 4.5, 4.5, 4.5, 3.0, 4.0, 5.0, 6.0, 4.5,
                           5.5, 6.5, 7.5, 6.0, 7.0, 8.0, 9.0],
        (NEAREST, True): [6.0, 6.0, 3.0, 3.0, 3.0, 3.0, 6.0, 6.0, 3.0, 3.0, 6.0, 6.0, 6.0,
                          6.0, 9.0, 9.0, 6.0, 6.0, 9.0, 9.0],
    }
    for (method, align), want in expected.items():
        data, size = ([6, 3, 3, 6, 6, 9], [5, 4]) if align else ([64, 32, 32, 64, 50, 100],
                                                                 [6, 4])
        x = fg.constant(np.array(data, dtype).reshape(1, 3, 2, 1))
        y = fg.image.resize_images(x, size, method, align_corners=align)
        np.testing.assert_allclose(_run(y, optimize=optimize).ravel(), want, atol=1e-5)


def test_tf1_return_dtype():
    # testReturnDtype: NEAREST_NEIGHBOR or an unchanged size keeps the dtype, else float32
    for dtype in (np.float32, np.float64, np.int32, np.int64):
        image = fg.placeholder(dtype, (1, 6, 4, 1))
        for method in (BILINEAR, NEAREST):
            for size in ([6, 4], [3, 2]):
                y = fg.image.resize_images(image, size, method)
                same = method == NEAREST or size == [6, 4]
                assert y.dtype == (dtype if same else np.float32)
    image = fg.placeholder(fg.float64, (1, 6, 4, 1))
    assert fg.image.resize_images(image, [6, 4]) is image


# --- the coordinate formulas, every rule, Hypothesis sizes ------------------------------

@settings(max_examples=15)
@given(h=st.integers(1, 7), w=st.integers(1, 7), oh=st.integers(1, 9), ow=st.integers(1, 9),
       rule=st.sampled_from(["legacy", "align_corners", "half_pixel_centers"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_resizers_match_tf1s_formulas(h, w, oh, ow, rule, dtype):
    align, half = rule == "align_corners", rule == "half_pixel_centers"
    xv = np.random.default_rng(h * 10 + w).normal(size=(2, h, w, 3)).astype(dtype)
    with fg.Graph().as_default():
        x = fg.placeholder(dtype, (None, h, w, 3))
        b = fg.image.resize_bilinear(x, [oh, ow], align_corners=align, half_pixel_centers=half)
        n = fg.image.resize_nearest_neighbor(x, [oh, ow], align_corners=align,
                                             half_pixel_centers=half)
        assert b.dtype == np.float32 and n.dtype == dtype
        assert tuple(b.shape) == tuple(n.shape) == (None, oh, ow, 3)
        for optimize in (False, True):
            bv, nv = _run([b, n], {x: xv}, optimize)
            np.testing.assert_allclose(bv, ref_bilinear(xv, oh, ow, align, half),
                                       rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(nv, ref_nearest(xv, oh, ow, align, half))


@pytest.mark.parametrize("align,half,mode", [(True, False, "bilinear"),
                                             (False, True, "bilinear"),
                                             (False, False, "nearest"),
                                             (False, True, "nearest-exact")])
def test_resizers_match_torch_where_the_rules_agree(align, half, mode):
    torch = pytest.importorskip("torch", reason="torch is not installed: the NumPy "
                                "references remain")
    xv = RNG.normal(size=(2, 5, 7, 3)).astype(np.float32)
    tx = torch.tensor(xv).permute(0, 3, 1, 2)
    for size in ([8, 11], [3, 4], [5, 14]):
        if mode == "bilinear":
            y = fg.image.resize_bilinear(xv, size, align_corners=align, half_pixel_centers=half)
            want = torch.nn.functional.interpolate(tx, size=size, mode="bilinear",
                                                   align_corners=align)
        else:
            y = fg.image.resize_nearest_neighbor(xv, size, half_pixel_centers=half)
            want = torch.nn.functional.interpolate(tx, size=size, mode=mode)
        np.testing.assert_allclose(_run(y), want.permute(0, 2, 3, 1).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_preserve_aspect_ratio_shapes():
    # ResizeImagesTest.testPreserveAspectRatio*: the largest scale that fits
    for shape, target, want in [([100, 100, 10], [75, 50], (50, 50, 10)),
                                ([4, 100, 100, 10], [75, 50], (4, 50, 50, 10)),
                                ([100, 100, 10], [150, 200], (150, 150, 10)),
                                ([100, 100, 10], [250, 250], (250, 250, 10))]:
        y = fg.image.resize_images(fg.placeholder(fg.float32, shape), target,
                                   preserve_aspect_ratio=True)
        assert tuple(y.shape) == want
    x = fg.placeholder(fg.float32, (10, 10, 10))
    assert fg.image.resize_images(x, [10, 10], preserve_aspect_ratio=True) is x


# --- gradients ----------------------------------------------------------------------------

@pytest.mark.parametrize("align,half", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("size", [(5, 3), (2, 6)])
def test_bilinear_gradients_first_and_second_order(size, align, half):
    # the composition in float64 (resize_bilinear casts to float32 first, as TF1, and
    # then builds exactly this)
    xv = RNG.normal(size=(2, 3, 4, 2))
    x = fg.placeholder(fg.float64, xv.shape)
    y = fg.tanh(_bilinear(x, size, align, half))
    assert check_gradients(y, [x], {x: xv}) < 1e-7
    (g,) = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: xv}) < 1e-6
    # the public op on a float64 input: float32 values, float64 gradient
    z = fg.image.resize_bilinear(x, size, align_corners=align, half_pixel_centers=half)
    (gz,) = fg.gradients(fg.reduce_sum(fg.square(z)), [x])
    assert gz.dtype == np.float64
    assert check_gradients(fg.square(z), [x], {x: xv}, eps=1e-2) < 2e-3


@pytest.mark.parametrize("align", [False, True])
def test_nearest_gradients_first_and_second_order(align):
    xv = RNG.normal(size=(1, 4, 3, 2))
    x = fg.placeholder(fg.float64, xv.shape)
    y = fg.tanh(fg.image.resize_nearest_neighbor(x, [7, 2], align_corners=align))
    assert check_gradients(y, [x], {x: xv}) < 1e-7
    (g,) = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: xv}) < 1e-6


def test_cheap_ops_gradients_first_and_second_order():
    xv = RNG.normal(size=(2, 4, 5, 3))
    x = fg.placeholder(fg.float64, xv.shape)
    y = fg.tanh(fg.image.flip_left_right(fg.image.flip_up_down(
        fg.image.pad_to_bounding_box(fg.image.crop_to_bounding_box(
            fg.image.central_crop(x, 0.7), 0, 1, 2, 2), 1, 1, 4, 3)))) * x[:, :, :3]
    assert check_gradients(y, [x], {x: xv}) < 1e-7
    (g,) = fg.gradients(fg.reduce_sum(y), [x])
    assert check_gradients(g, [x], {x: xv}) < 1e-6
    s = fg.image.per_image_standardization(x)                   # float32, as TF1
    assert check_gradients(fg.square(s), [x], {x: xv}, eps=1e-2) < 2e-2


# --- /gpu:0 -------------------------------------------------------------------------------

@pytest.mark.usefixtures("needs_gpu")
def test_image_ops_on_gpu_equal_cpu():
    from flowgraph.testing import compare_devices
    xv = RNG.normal(size=(1, 3, 2, 3)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (1, 3, 2, 3))
        b = fg.image.resize_bilinear(x, [4, 3])
        n = fg.image.resize_nearest_neighbor(x, [2, 3], align_corners=True)
        s = fg.image.per_image_standardization(fg.image.flip_left_right(x))
        g = fg.image.rgb_to_grayscale(fg.image.pad_to_bounding_box(x, 1, 0, 4, 3))
        loss = fg.reduce_sum(b * b) + fg.reduce_sum(n) + fg.reduce_sum(s * s)
        return [b, n, s, g, *fg.gradients(loss, [x])], {x: xv}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"))
    np.testing.assert_allclose(results["/gpu:0"][0], ref_bilinear(xv, 4, 3), rtol=1e-5,
                               atol=1e-5)


# --- the cheap image ops --------------------------------------------------------------------

@pytest.mark.parametrize("optimize", [True, False])
def test_flips_crops_and_pads(optimize):
    for shape in [(5, 6, 2), (2, 5, 6, 2)]:
        xv = RNG.normal(size=shape)
        x = fg.constant(xv)
        ops = [fg.image.flip_left_right(x), fg.image.flip_up_down(x),
               fg.image.central_crop(x, 0.5), fg.image.central_crop(x, 1.0),
               fg.image.central_crop(x, 0.33),
               fg.image.crop_to_bounding_box(x, 1, 2, 3, 4),
               fg.image.pad_to_bounding_box(x, 2, 1, 8, 9)]
        padded = np.zeros(shape[:-3] + (8, 9, 2))
        padded[..., 2:7, 1:7, :] = xv
        # central_crop's offsets, TF1's: int((size - size * fraction) / 2)
        wants = [xv[..., ::-1, :], xv[..., ::-1, :, :], xv[..., 1:4, 1:5, :], xv,
                 xv[..., 1:4, 2:4, :], xv[..., 1:4, 2:6, :], padded]
        for got, want in zip(_run(ops, optimize=optimize), wants):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("optimize", [True, False])
def test_per_image_standardization(optimize):
    # TF1's PerImageWhiteningTest: (x - mean) / max(std, 1 / sqrt(num_pixels))
    xv = np.arange(0, 100, dtype=np.float64).reshape(2, 5, 5, 2)
    xv[1] = 7.0                                               # a uniform image
    y = fg.image.per_image_standardization(fg.constant(xv))
    assert y.dtype == np.float32
    mean = xv.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(xv.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(50))
    np.testing.assert_allclose(_run(y, optimize=optimize), (xv - mean) / std, atol=1e-4)
    y3 = fg.image.per_image_standardization(np.arange(12, dtype=np.int32).reshape(2, 3, 2))
    v = np.arange(12.0)
    np.testing.assert_allclose(_run(y3, optimize=optimize).ravel(), (v - v.mean()) / v.std(),
                               rtol=1e-5)


@pytest.mark.parametrize("optimize", [True, False])
def test_rgb_to_grayscale_and_convert_image_dtype(optimize):
    xv = RNG.random(size=(2, 3, 4, 3))
    gray = fg.image.rgb_to_grayscale(fg.constant(xv))
    ints = np.array([0, 1, 2 ** 30, 2 ** 31 - 1], np.int32)
    conv = [fg.image.convert_image_dtype(fg.constant(xv), fg.float32),
            fg.image.convert_image_dtype(fg.constant(ints), fg.float32),
            fg.image.convert_image_dtype(fg.constant(ints), fg.float64),
            fg.image.convert_image_dtype(fg.constant(np.array([0.0, 0.25, 1.0])), fg.int32),
            fg.image.convert_image_dtype(fg.constant(np.array([-1.0, 0.5, 2.0])), fg.int32,
                                         saturate=True),
            fg.image.convert_image_dtype(fg.constant(ints), fg.int64)]
    assert gray.dtype == np.float64 and tuple(gray.shape) == (2, 3, 4, 1)
    got = _run([gray, *conv], optimize=optimize)
    want_gray = (xv.astype(np.float32) @ np.array([0.2989, 0.5870, 0.1140], np.float32))
    np.testing.assert_allclose(got[0][..., 0], want_gray, rtol=1e-6)
    np.testing.assert_array_equal(got[1], xv.astype(np.float32))
    np.testing.assert_allclose(got[2], ints / np.float32(2 ** 31 - 1), rtol=1e-7)
    np.testing.assert_allclose(got[3], ints / (2 ** 31 - 1), rtol=1e-15)
    np.testing.assert_array_equal(got[4], [0, int(0.25 * (2 ** 31 - 0.5)), 2 ** 31 - 1])
    # TF1's saturate_cast: clipped to int32's range, then cast (truncated toward zero)
    np.testing.assert_array_equal(got[5], [-2 ** 31 + 1, 2 ** 30 - 1, 2 ** 31 - 1])
    np.testing.assert_array_equal(got[6], ints.astype(np.int64) * 2 ** 32)


# --- errors ---------------------------------------------------------------------------------

def test_errors_name_the_op_and_the_callers_line():
    x = fg.placeholder(fg.float32, (1, 4, 4, 2))
    where = r" \(called at test_image\.py:\d+\)"
    with pytest.raises(ValueError, match="resize_bilinear" + where + r".*half_pixel_centers"):
        fg.image.resize_bilinear(x, [2, 2], align_corners=True, half_pixel_centers=True)
    with pytest.raises(ValueError, match="resize_images" + where + r".*2 ints.*\[6, 4.0\]"):
        fg.image.resize_images(x, [6, 4.0])
    with pytest.raises(ValueError, match=r"resize_nearest_neighbor.*2 ints.*\[None, 4\]"):
        fg.image.resize_nearest_neighbor(x, [None, 4])
    with pytest.raises(ValueError, match=r"resize_images.*known when the graph is built"):
        fg.image.resize_images(x, fg.placeholder(fg.int32, (2,)))
    with pytest.raises(NotImplementedError, match=r"resize_images.*BICUBIC"):
        fg.image.resize_images(x, [8, 8], fg.image.ResizeMethod.BICUBIC)
    with pytest.raises(ShapeError, match="resize_bilinear" + where + r".*rank-4"):
        fg.image.resize_bilinear(fg.placeholder(fg.float32, (4, 4, 2)), [2, 2])
    with pytest.raises(ShapeError, match=r"resize_images.*height and width.*known"):
        fg.image.resize_images(fg.placeholder(fg.float32, (1, None, 4, 2)), [2, 2])
    with pytest.raises(ValueError, match="central_crop" + where + r".*\(0, 1\]"):
        fg.image.central_crop(x, 0.0)
    with pytest.raises(ValueError, match="pad_to_bounding_box" + where + r".*does not fit"):
        fg.image.pad_to_bounding_box(x, 1, 0, 4, 4)
    with pytest.raises(ValueError, match="crop_to_bounding_box" + where + r".*does not fit"):
        fg.image.crop_to_bounding_box(x, 1, 1, 4, 2)
    with pytest.raises(ValueError, match=r"crop_to_bounding_box.*offset_height.*>= 0"):
        fg.image.crop_to_bounding_box(x, -1, 0, 2, 2)
    with pytest.raises(ShapeError, match="rgb_to_grayscale" + where + r".*3 channels"):
        fg.image.rgb_to_grayscale(x)
    with pytest.raises(ShapeError, match="flip_left_right" + where):
        fg.image.flip_left_right(fg.placeholder(fg.float32, (4, 4)))
