"""TF1's ``tf.image.resize_images``, ``resize_bilinear`` and
``resize_nearest_neighbor`` (NHWC), as gathers with constant index arrays and weighted
sums with constant weights, so gradients to any order, the CPU and GPU kernels and the
compiled path come from those ops (a gather's gradient is a scatter-add, linear).

The coordinates are TF1's kernels' (``image_resizer_state.h``), computed in float32
when the graph is built, for each output row ``i`` (columns alike)::

    scale = (in - 1) / (out - 1) if align_corners and out > 1 else in / out
    legacy (half_pixel_centers=False, TF1's default):  src = i * scale
    half_pixel_centers=True:                           src = (i + 0.5) * scale - 0.5

Bilinear reads rows ``lower = max(floor(src), 0)`` and ``upper = min(ceil(src), in -
1)`` with ``lerp = src - floor(src)``, and combines the four neighbours in TF1's order,
in float32 (TF1's resizers read any input as float and return float32)::

    top = tl + (tr - tl) * x_lerp;  bottom = bl + (br - bl) * x_lerp
    out = top + (bottom - top) * y_lerp

Nearest neighbour reads ``min(floor(src), in - 1)`` (``round`` half away from zero with
``align_corners``; ``floor((i + 0.5) * scale)``, at least 0, with half-pixel centres)
and keeps the input's dtype.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(np.array([[0.0, 10.0]]).reshape(1, 1, 2, 1))
...     up = fg.image.resize_bilinear(x, [1, 4])
...     corners = fg.image.resize_bilinear(x, [1, 4], align_corners=True)
...     near = fg.image.resize_nearest_neighbor(x, [1, 4])
...     with fg.Session() as sess:
...         print(sess.run(up).ravel(), sess.run(corners).ravel(), sess.run(near).ravel())
[ 0.  5. 10. 10.] [ 0.         3.3333335  6.666667  10.       ] [ 0.  0. 10. 10.]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import api as F
from ..errors import DTypeError, ShapeError
from ..graph import Tensor, location_suffix


class ResizeMethod:
    """TF1's ``tf.image.ResizeMethod`` (BICUBIC and AREA are not supported)."""
    BILINEAR = 0
    NEAREST_NEIGHBOR = 1
    BICUBIC = 2
    AREA = 3


def _fail(cls, fn_name, message):
    return cls(fn_name + location_suffix("called") + f": {message}")


def _scale(in_size, out_size, align_corners):
    """TF1's ``CalculateResizeScale``, in float32."""
    if align_corners and out_size > 1:
        return np.float32(in_size - 1) / np.float32(out_size - 1)
    return np.float32(in_size) / np.float32(out_size)


def _source(out_size, scale, half_pixel_centers, for_nearest=False):
    """Each output index's float32 source coordinate (TF1's scalers)."""
    i = np.arange(out_size, dtype=np.float32)
    if not half_pixel_centers:
        return i * scale                                          # LegacyScaler
    if for_nearest:
        return (i + np.float32(0.5)) * scale                      # HalfPixelScalerForNN
    return (i + np.float32(0.5)) * scale - np.float32(0.5)        # HalfPixelScaler


def bilinear_weights(in_size, out_size, align_corners=False, half_pixel_centers=False):
    """``(lower, upper, lerp)`` of TF1's ``compute_interpolation_weights``: int32 rows
    read and the float32 fraction of the upper one, for each output index."""
    src = _source(out_size, _scale(in_size, out_size, align_corners), half_pixel_centers)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower.astype(np.int32), upper.astype(np.int32), (src - floor).astype(np.float32)


def nearest_indices(in_size, out_size, align_corners=False, half_pixel_centers=False):
    """The int32 source index of each output index, as TF1's nearest-neighbour kernel."""
    src = _source(out_size, _scale(in_size, out_size, align_corners), half_pixel_centers,
                  for_nearest=True)
    if align_corners:          # C's roundf: half away from zero (exact in float64)
        idx = np.floor(src.astype(np.float64) + 0.5)
    else:
        idx = np.floor(src)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        idx = np.maximum(idx, 0)
    return idx.astype(np.int32)


def _size(fn_name, size):
    """TF1's ``size``: 2 positive Python ints (or a constant tensor of them)."""
    if isinstance(size, Tensor):
        const = size.op.attrs.get("value") if size.op.type == "Const" else None
        if const is None:
            raise _fail(ValueError, fn_name, f"expected size as 2 Python ints (or a "
                        f"constant): the output size must be known when the graph is "
                        f"built, found the tensor {size.name}")
        size = np.asarray(const).tolist()
    try:
        dims = list(size)
        ok = len(dims) == 2 and all(isinstance(d, (numbers.Integral, np.integer))
                                    and not isinstance(d, bool) for d in dims)
    except TypeError:
        ok = False
    if not ok:
        raise _fail(ValueError, fn_name, f"expected size as 2 ints [new_height, new_width], "
                    f"found {size!r}")
    if min(dims) < 1:
        raise _fail(ValueError, fn_name, f"expected a positive size, found {dims}")
    return int(dims[0]), int(dims[1])


def _images(fn_name, images, ranks=(4,)):
    x = F.convert_to_tensor(images)
    if x.dtype.kind not in "fiu":
        raise _fail(DTypeError, fn_name, f"expected numeric images, found {x.dtype.name} "
                    f"({x.name})")
    if x.shape is None or len(x.shape) not in ranks:
        want = " or ".join(f"rank-{r}" for r in ranks)
        raise _fail(ShapeError, fn_name, f"expected {want} images ([batch,] height, width, "
                    f"channels), found {x.name} of shape {x.shape}")
    if x.shape[-3] is None or x.shape[-2] is None:
        raise _fail(ShapeError, fn_name, f"expected the height and width of {x.name} known "
                    f"when the graph is built, found shape {x.shape}")
    return x


def _check_centers(fn_name, align_corners, half_pixel_centers):
    if align_corners and half_pixel_centers:
        raise _fail(ValueError, fn_name, "if half_pixel_centers is True, align_corners must "
                    "be False (TF1's rule)")


def _bilinear(x, size, align_corners, half_pixel_centers, name=None):
    """The composition on a float NHWC ``x``, in ``x``'s dtype."""
    (h, w), (oh, ow) = x.shape[1:3], size
    y0, y1, yl = bilinear_weights(h, oh, align_corners, half_pixel_centers)
    x0, x1, xl = bilinear_weights(w, ow, align_corners, half_pixel_centers)
    dt = np.dtype(x.dtype)
    top_rows, bottom_rows = F.gather(x, y0, axis=1), F.gather(x, y1, axis=1)
    tl, tr = F.gather(top_rows, x0, axis=2), F.gather(top_rows, x1, axis=2)
    bl, br = F.gather(bottom_rows, x0, axis=2), F.gather(bottom_rows, x1, axis=2)
    x_lerp = F.constant(xl.astype(dt).reshape(1, 1, ow, 1))
    y_lerp = F.constant(yl.astype(dt).reshape(1, oh, 1, 1))
    top = tl + (tr - tl) * x_lerp
    bottom = bl + (br - bl) * x_lerp
    return F.add(top, (bottom - top) * y_lerp, name=name)


def _nearest(x, size, align_corners, half_pixel_centers, name=None):
    (h, w), (oh, ow) = x.shape[1:3], size
    rows = F.gather(x, nearest_indices(h, oh, align_corners, half_pixel_centers), axis=1)
    return F.gather(rows, nearest_indices(w, ow, align_corners, half_pixel_centers), axis=2,
                    name=name)


def resize_bilinear(images, size, align_corners=False, name=None, half_pixel_centers=False):
    """TF1's ``tf.image.resize_bilinear``: ``images [N, H, W, C]`` (H and W known)
    resized to ``size = [new_height, new_width]`` (Python ints) by bilinear
    interpolation with TF1's coordinates (module docstring); float32 for every input
    dtype, as TF1. ``align_corners`` maps the corner pixels onto each other;
    ``half_pixel_centers`` is TF1's corrected rule (not with ``align_corners``).

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.array([[64., 32.], [32., 64.], [50., 100.]]).reshape(1, 3, 2, 1))
    >>> fg.Session().run(fg.image.resize_bilinear(x, [6, 4]))[0, :, :, 0]
    array([[ 64. ,  48. ,  32. ,  32. ],
           [ 48. ,  48. ,  48. ,  48. ],
           [ 32. ,  48. ,  64. ,  64. ],
           [ 41. ,  61.5,  82. ,  82. ],
           [ 50. ,  75. , 100. , 100. ],
           [ 50. ,  75. , 100. , 100. ]], dtype=float32)
    """
    fn = "resize_bilinear"
    x = _images(fn, images)
    size = _size(fn, size)
    _check_centers(fn, align_corners, half_pixel_centers)
    if x.dtype != np.float32:
        x = F.cast(x, np.float32)                    # TF1 reads every input as float
    return _bilinear(x, size, align_corners, half_pixel_centers, name)


def resize_nearest_neighbor(images, size, align_corners=False, name=None,
                            half_pixel_centers=False):
    """TF1's ``tf.image.resize_nearest_neighbor``: ``images [N, H, W, C]`` (H and W
    known) resized to ``size`` (Python ints) by picking, for each output pixel, the
    input pixel TF1's kernel picks (module docstring); keeps the input's dtype.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.array([[6, 3], [3, 6], [6, 9]]).reshape(1, 3, 2, 1))
    >>> y = fg.image.resize_nearest_neighbor(x, [5, 4], align_corners=True)
    >>> fg.Session().run(y)[0, :, :, 0]
    array([[6, 6, 3, 3],
           [3, 3, 6, 6],
           [3, 3, 6, 6],
           [6, 6, 9, 9],
           [6, 6, 9, 9]])
    """
    fn = "resize_nearest_neighbor"
    x = _images(fn, images)
    size = _size(fn, size)
    _check_centers(fn, align_corners, half_pixel_centers)
    return _nearest(x, size, align_corners, half_pixel_centers, name)


def _aspect_size(h, w, size):
    """TF1's ``preserve_aspect_ratio`` size: the float32 scale that fits, rounded half
    to even as ``tf.round``."""
    scale = min(np.float32(size[0]) / np.float32(h), np.float32(size[1]) / np.float32(w))
    return (int(np.round(np.float32(scale) * np.float32(h))),
            int(np.round(np.float32(scale) * np.float32(w))))


def resize_images(images, size, method=ResizeMethod.BILINEAR, align_corners=False,
                  preserve_aspect_ratio=False, name=None):
    """TF1's ``tf.image.resize_images`` (also ``tf.image.resize`` in 1.x programs):
    ``images`` ``[N, H, W, C]`` or ``[H, W, C]`` (H and W known) resized to ``size``
    (2 Python ints) with ``method`` ``ResizeMethod.BILINEAR`` (float32 out) or
    ``NEAREST_NEIGHBOR`` (the input's dtype); ``images`` itself where the size is
    unchanged, as TF1. ``preserve_aspect_ratio`` scales both sides by the largest
    factor that fits in ``size``. BICUBIC and AREA are not supported.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.arange(8.0).reshape(2, 4, 1))
    >>> y = fg.image.resize_images(x, [1, 2], fg.image.ResizeMethod.NEAREST_NEIGHBOR)
    >>> y.shape, fg.Session().run(y).ravel()
    ((1, 2, 1), array([0., 2.]))
    """
    fn = "resize_images"
    x = _images(fn, images, ranks=(3, 4))
    size = _size(fn, size)
    batched = len(x.shape) == 4
    h, w = x.shape[-3], x.shape[-2]
    if preserve_aspect_ratio:
        size = _aspect_size(h, w, size)
    if method not in (ResizeMethod.BILINEAR, ResizeMethod.NEAREST_NEIGHBOR):
        known = {ResizeMethod.BICUBIC: "BICUBIC", ResizeMethod.AREA: "AREA"}
        raise _fail(NotImplementedError if method in known else ValueError, fn,
                    f"method {known.get(method, repr(method))} is not supported (BILINEAR "
                    f"and NEAREST_NEIGHBOR are)")
    if tuple(size) == (h, w):
        return F.identity(x, name=name) if name else x        # TF1 returns images as is
    if not batched:
        x = F.expand_dims(x, 0)
    if method == ResizeMethod.BILINEAR:
        y = resize_bilinear(x, size, align_corners, name=None if not batched else name)
    else:
        y = resize_nearest_neighbor(x, size, align_corners,
                                    name=None if not batched else name)
    return y if batched else F.squeeze(y, [0], name=name)


__all__ = ["ResizeMethod", "resize_images", "resize_bilinear", "resize_nearest_neighbor"]
