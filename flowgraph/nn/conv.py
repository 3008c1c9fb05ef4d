"""TF1's ``tf.nn.conv2d``, ``conv1d``, ``conv2d_transpose``, ``max_pool`` and
``avg_pool`` (NHWC) and ``tf.extract_image_patches``, on the image-patches primitives
(:mod:`flowgraph.patches_ops`) and existing ops, so gradients to any order, CPU and GPU
kernels and the compiled path come from the ops they use.

``conv2d`` is an im2col: one ``ExtractPatches`` op gives ``[N, OH, OW, kh*kw*C]`` (taps
in the filter's ``[kh, kw, in, out]`` order, channel ``(i*kw + j)*C + c``, padding
zeros), and one ``matmul`` with the filter reshaped to ``[kh*kw*C, out]`` gives the
output; its input gradient is one ``PatchesGrad`` (col2im), its filter gradient one
matmul. It is GEMM-bound and holds ``kh * kw`` times the (output-sized) input in
memory. ``conv2d_transpose`` is conv2d's input gradient: a matmul and one col2im.
``avg_pool`` sums the taps of one ``ExtractPatches``; ``max_pool`` combines ``kh * kw``
strided slices with ``maximum`` (which gives TF1's tie rule below; a ``reduce_max`` of
patches would split ties).

``"SAME"`` padding is TF1's: ``pad_total = max((ceil(in/stride) - 1) * stride + (k - 1)
* dilation + 1 - in, 0)``, ``pad_before = pad_total // 2``; ``avg_pool`` divides by the
number of non-padded elements of each window, and ``max_pool`` pads with the dtype's
lowest value, so padding never wins.

``max_pool``'s gradient goes to one element per window: ``maximum(m, x)`` sends it to
``m`` where ``m >= x``, so at a tie the first of the tied taps in row-major window order
takes it all, which is where TF1's CPU ``MaxPoolGrad`` (its argmax) sends it too; an
input element in several overlapping windows collects from each.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(np.arange(16.0).reshape(1, 4, 4, 1))
...     k = fg.constant(np.ones((2, 2, 1, 1)))
...     with fg.Session() as sess:
...         print(sess.run(fg.nn.conv2d(x, k, [1, 2, 2, 1], "VALID"))[0, :, :, 0])
...         print(sess.run(fg.nn.max_pool(x, [1, 2, 2, 1], [1, 2, 2, 1], "SAME"))[0, :, :, 0])
...         print(sess.run(fg.nn.avg_pool(x, [1, 3, 3, 1], [1, 2, 2, 1], "SAME"))[0, :, :, 0])
[[10. 18.]
 [42. 50.]]
[[ 5.  7.]
 [13. 15.]]
[[ 5.   6.5]
 [11.  12.5]]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import api as F
from ..errors import DTypeError, ShapeError
from ..graph import Tensor, location_suffix
from ..patches_ops import extract_patches, patches_grad
from ..slicing_ops import pad


def _fail(cls, fn_name, message):
    return cls(fn_name + location_suffix("called") + f": {message}")


def _nhwc_input(fn_name, value, data_format, float_only=True):
    if data_format not in ("NHWC", None):
        raise _fail(ValueError, fn_name, f"only data_format='NHWC' is supported, found "
                    f"{data_format!r} (transpose NCHW inputs with fg.transpose(x, "
                    f"[0, 2, 3, 1]))")
    x = F.convert_to_tensor(value)
    if float_only and x.dtype.kind != "f":
        raise _fail(DTypeError, fn_name, f"expected a float input, found {x.dtype.name} "
                    f"({x.name})")
    if x.shape is None or len(x.shape) != 4:
        raise _fail(ShapeError, fn_name, f"expected a rank-4 [batch, height, width, "
                    f"channels] input, found {x.name} of shape {x.shape}")
    if x.shape[1] is None or x.shape[2] is None:
        raise _fail(ShapeError, fn_name, f"expected the height and width of {x.name} known "
                    f"when the graph is built, found shape {x.shape}")
    return x


def _hw(fn_name, what, values):
    """TF1's int, or list of 1, 2 or 4 ints (``[1, h, w, 1]``), as ``(h, w)``."""
    if isinstance(values, Tensor):
        raise _fail(ShapeError, fn_name, f"expected {what} as Python ints, found the "
                    f"tensor {values.name}")
    if isinstance(values, numbers.Integral):
        values = [values]
    try:
        v = [int(i) for i in values]
    except (TypeError, ValueError):
        raise _fail(ValueError, fn_name, f"expected {what} as an int or a list of 1, 2 or "
                    f"4 ints, found {values!r}") from None
    if len(v) == 4:
        if v[0] != 1 or v[3] != 1:
            raise _fail(ValueError, fn_name, f"{what} along the batch and channel axes "
                        f"must be 1 (NHWC: [1, h, w, 1]), found {v}")
        v = v[1:3]
    elif len(v) == 1:
        v = v * 2
    elif len(v) != 2:
        raise _fail(ValueError, fn_name, f"expected {what} of length 1, 2 or 4, found {v}")
    if min(v) < 1:
        raise _fail(ValueError, fn_name, f"expected {what} >= 1, found {v}")
    return tuple(v)


def _geometry(fn_name, size, k, stride, dilation, padding):
    """``(out, pad_before, pad_after)`` along one spatial axis, as TF1 computes them."""
    span = (k - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + span - size, 0)
        return out, total // 2, total - total // 2
    if size < span:
        raise _fail(ShapeError, fn_name, f"VALID padding needs a window of {span} to fit "
                    f"in a spatial size of {size}")
    return (size - span) // stride + 1, 0, 0


def _padding(fn_name, padding):
    p = padding.upper() if isinstance(padding, str) else padding
    if p not in ("SAME", "VALID"):
        raise _fail(ValueError, fn_name, f"expected padding 'SAME' or 'VALID', found "
                    f"{padding!r}")
    return p


def _taps(x, geometry, window, strides, dilations, pad_value):
    """The ``kh * kw`` strided slices ``[N, OH, OW, C]``, row-major over the window."""
    (oh, th, bh), (ow, tw, bw) = geometry
    if th or bh or tw or bw:
        x = pad(x, [[0, 0], [th, bh], [tw, bw], [0, 0]], constant_values=pad_value)
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilations
    out = []
    for i in range(kh):
        for j in range(kw):
            r, c = i * dh, j * dw
            out.append(x[:, r:r + (oh - 1) * sh + 1:sh, c:c + (ow - 1) * sw + 1:sw, :])
    return out


def conv2d(input, filter=None, strides=None, padding=None,  # noqa: A002 - TF1's names
           use_cudnn_on_gpu=True, data_format="NHWC", dilations=(1, 1, 1, 1), name=None,
           filters=None):
    """TF1's ``tf.nn.conv2d``: ``input [N, H, W, C]`` (NHWC; H and W known, N may be
    ``None``) cross-correlated with ``filter [kh, kw, C, out]`` gives ``[N, OH, OW,
    out]``. ``strides`` and ``dilations`` are an int or 1, 2 or 4 ints (``[1, h, w,
    1]``); ``padding`` is ``"SAME"`` or ``"VALID"``. ``use_cudnn_on_gpu`` is accepted
    and ignored; ``filters=`` is TF 1.15's other name of ``filter``.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.ones((1, 3, 3, 2), np.float32))
    >>> y = fg.nn.conv2d(x, fg.constant(np.ones((3, 3, 2, 4), np.float32)), 1, "SAME")
    >>> y.shape, fg.Session().run(y)[0, :, :, 0]
    ((1, 3, 3, 4), array([[ 8., 12.,  8.],
           [12., 18., 12.],
           [ 8., 12.,  8.]], dtype=float32))
    """
    if filters is not None:
        if filter is not None:
            raise _fail(ValueError, "conv2d", "pass filter= or filters=, not both")
        filter = filters                                    # noqa: A001
    x = _nhwc_input("conv2d", input, data_format)
    w = F.convert_to_tensor(filter)
    if w.dtype != x.dtype:
        raise _fail(DTypeError, "conv2d", f"expected a filter of the input's dtype "
                    f"{x.dtype.name}, found {w.name} of dtype {w.dtype.name}")
    if w.shape is None or len(w.shape) != 4 or None in w.shape:
        raise _fail(ShapeError, "conv2d", f"expected a rank-4 [height, width, in_channels, "
                    f"out_channels] filter of known shape, found {w.name} of shape {w.shape}")
    kh, kw, cin, cout = w.shape
    if x.shape[3] is None or x.shape[3] != cin:
        raise _fail(ShapeError, "conv2d", f"the input's channels ({x.shape[3]}, {x.name}) "
                    f"must equal the filter's in_channels ({cin}, {w.name} of shape "
                    f"{w.shape})")
    strides = _hw("conv2d", "strides", strides)
    dilations = _hw("conv2d", "dilations", dilations)
    padding = _padding("conv2d", padding)
    geometry = [_geometry("conv2d", x.shape[1 + a], (kh, kw)[a], strides[a], dilations[a],
                          padding) for a in range(2)]
    if (kh, kw) == (1, 1) and not any(g[1] or g[2] for g in geometry) and strides == (1, 1):
        cols = x                                 # a 1x1 convolution is one matmul
    else:
        # one im2col op: channel (i * kw + j) * C + c, the filter's [kh, kw, C, out] rows
        cols = extract_patches(x, (kh, kw), strides, dilations, _pads(geometry))
    out = F.matmul(F.reshape(cols, [-1, kh * kw * cin]), F.reshape(w, [kh * kw * cin, cout]))
    batch = -1 if x.shape[0] is None else x.shape[0]
    return F.reshape(out, [batch, geometry[0][0], geometry[1][0], cout], name=name)


def _pads(geometry):
    """``(top, bottom, left, right)`` from the two axes' ``(out, before, after)``."""
    (_, top, bottom), (_, left, right) = geometry
    return top, bottom, left, right


def conv1d(value, filters=None, stride=None, padding=None, use_cudnn_on_gpu=None,
           data_format="NWC", name=None):
    """TF1's ``tf.nn.conv1d``: ``value [N, W, C]`` (NWC; W known, N may be ``None``)
    cross-correlated with ``filters [kw, C, out]`` gives ``[N, OW, out]``. ``stride`` is
    an int; ``padding`` is ``"SAME"`` or ``"VALID"``. As in TF1 it is ``conv2d`` on the
    input with a height of 1 (``expand_dims``) and the filter with ``kh = 1``, squeezed
    back, so gradients, fusion and placement are conv2d's. ``use_cudnn_on_gpu`` is
    accepted and ignored; ``"NCW"`` is not supported.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.arange(5.0).reshape(1, 5, 1))
    >>> y = fg.nn.conv1d(x, fg.constant(np.ones((3, 1, 1))), 2, "SAME")
    >>> y.shape, fg.Session().run(y).ravel()
    ((1, 3, 1), array([1., 6., 7.]))
    """
    if data_format not in ("NWC", None):
        raise _fail(ValueError, "conv1d", f"only data_format='NWC' is supported, found "
                    f"{data_format!r} (transpose NCW inputs with fg.transpose(x, [0, 2, 1]))")
    x = F.convert_to_tensor(value)
    w = F.convert_to_tensor(filters)
    if x.shape is None or len(x.shape) != 3:
        raise _fail(ShapeError, "conv1d", f"expected a rank-3 [batch, width, channels] "
                    f"input, found {x.name} of shape {x.shape}")
    if w.shape is None or len(w.shape) != 3:
        raise _fail(ShapeError, "conv1d", f"expected a rank-3 [width, in_channels, "
                    f"out_channels] filter, found {w.name} of shape {w.shape}")
    if isinstance(stride, Tensor) or not isinstance(stride, numbers.Integral):
        raise _fail(ValueError, "conv1d", f"expected stride as a Python int, found "
                    f"{stride!r}")
    y = conv2d(F.expand_dims(x, 1), F.expand_dims(w, 0), [1, 1, int(stride), 1], padding)
    return F.squeeze(y, [1], name=name)


def _pool(fn_name, value, ksize, strides, padding, data_format):
    x = _nhwc_input(fn_name, value, data_format)
    window = _hw(fn_name, "ksize", ksize)
    strides = _hw(fn_name, "strides", strides)
    padding = _padding(fn_name, padding)
    geometry = [_geometry(fn_name, x.shape[1 + a], window[a], strides[a], 1, padding)
                for a in range(2)]
    return x, window, strides, geometry


def max_pool(value, ksize, strides, padding, data_format="NHWC", name=None):
    """TF1's ``tf.nn.max_pool``: the maximum of each ``ksize`` window of ``value [N, H,
    W, C]`` (NHWC), ``strides`` apart; ``"SAME"`` pads with the dtype's lowest value.
    ``ksize``/``strides`` are an int or 1, 2 or 4 ints. The gradient goes to the first
    maximum of each window in row-major order (TF1's CPU argmax).

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.array([1., 5., 2., 4.]).reshape(1, 2, 2, 1))
    >>> fg.Session().run(fg.nn.max_pool(x, 2, 2, "VALID")).ravel()
    array([5.])
    """
    x, window, strides, geometry = _pool("max_pool", value, ksize, strides, padding,
                                         data_format)
    lowest = np.finfo(np.dtype(x.dtype)).min    # a NumPy scalar of x's dtype: no overflow
    taps = _taps(x, geometry, window, strides, (1, 1), lowest)
    out = taps[0]
    for t in taps[1:]:
        out = F.maximum(out, t)        # ties keep `out`: the earlier tap takes the gradient
    return F.identity(out, name=name) if name or len(taps) == 1 else out


def avg_pool(value, ksize, strides, padding, data_format="NHWC", name=None):
    """TF1's ``tf.nn.avg_pool``: the mean of each ``ksize`` window of ``value [N, H, W,
    C]`` (NHWC), ``strides`` apart; with ``"SAME"`` each window's mean is over its
    non-padded elements only, as TF1.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.array([1., 5., 2., 4.]).reshape(1, 2, 2, 1))
    >>> fg.Session().run(fg.nn.avg_pool(x, [1, 2, 2, 1], [1, 1, 1, 1], "SAME")).ravel()
    array([3. , 4.5, 3. , 4. ])
    """
    x, window, strides, geometry = _pool("avg_pool", value, ksize, strides, padding,
                                         data_format)
    # one im2col op, its taps summed (the gradient: one col2im)
    (oh, _, _), (ow, _, _) = geometry
    c = x.shape[3]
    if c is None:           # unknown channels: no 5-D reshape; the strided slices, summed
        taps = _taps(x, geometry, window, strides, (1, 1), 0)
        total = taps[0] if len(taps) == 1 else F.add_n(taps)
    else:
        cols = extract_patches(x, window, strides, (1, 1), _pads(geometry))
        batch = -1 if x.shape[0] is None else x.shape[0]
        total = F.reduce_sum(F.reshape(cols, [batch, oh, ow, window[0] * window[1], c]), 3)
    # each output's count of non-padded window elements, known when the graph is built
    counts = [_valid_counts(x.shape[1 + a], window[a], strides[a], *geometry[a])
              for a in range(2)]
    inv = 1.0 / np.multiply.outer(counts[0], counts[1])[:, :, None]
    return F.multiply(total, F.constant(inv.astype(np.dtype(x.dtype))), name=name)


def _valid_counts(size, k, stride, out, before, _after):
    starts = np.arange(out) * stride - before
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


# --- TF1's tf.extract_image_patches and tf.nn.conv2d_transpose: the patches primitives ----

def extract_image_patches(images, ksizes, strides, rates, padding, name=None):
    """TF1's ``tf.extract_image_patches`` (also ``tf.image.extract_image_patches``):
    ``[N, OH, OW, kh*kw*C]``, the ``ksizes = [1, kh, kw, 1]`` windows of ``images [N,
    H, W, C]`` (H and W known), ``strides = [1, sh, sw, 1]`` apart, their taps ``rates
    = [1, dh, dw, 1]`` apart; the last axis ordered (row, column, channel) of the
    window, as TF1 (and conv2d's filter rows). ``"SAME"`` pads with zeros by TF1's
    rule. One primitive (``ExtractPatches``); its gradient is its adjoint, col2im.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.arange(16.0).reshape(1, 4, 4, 1))
    >>> p = fg.extract_image_patches(x, [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1], "VALID")
    >>> p.shape, fg.Session().run(p)[0, 1, 0]
    ((1, 2, 2, 4), array([ 8.,  9., 12., 13.]))
    """
    x = F.convert_to_tensor(images)
    fn = "extract_image_patches"
    if x.dtype.kind not in "fiu":
        raise _fail(DTypeError, fn, f"expected numeric images, found {x.dtype.name} "
                    f"({x.name})")
    x = _nhwc_input(fn, x, "NHWC", float_only=False)
    window, strides = _hw(fn, "ksizes", ksizes), _hw(fn, "strides", strides)
    rates, padding = _hw(fn, "rates", rates), _padding(fn, padding)
    geometry = [_geometry(fn, x.shape[1 + a], window[a], strides[a], rates[a], padding)
                for a in range(2)]
    return extract_patches(x, window, strides, rates, _pads(geometry), name=name)


def conv2d_transpose(value=None, filter=None, output_shape=None, strides=None,  # noqa: A002
                     padding="SAME", data_format="NHWC", name=None, input=None,  # noqa: A002
                     filters=None, dilations=None):
    """TF1's ``tf.nn.conv2d_transpose`` (the "deconvolution"): the gradient of
    ``conv2d`` with respect to its input. ``value [N, h, w, in_channels]`` (NHWC) and
    ``filter [kh, kw, out_channels, in_channels]`` give ``output_shape = [N, H, W,
    out_channels]``, where ``conv2d`` of an ``[N, H, W, out_channels]`` image with that
    filter, ``strides`` and ``padding`` has ``value``'s shape (checked; several ``H``
    may fit a stride, which is why TF1 asks for it). ``output_shape`` is a list of
    Python ints (its batch entry may be ``-1``, ``None`` or a tensor: the batch is
    ``value``'s). One matmul and one col2im (``PatchesGrad``); its gradients are a
    conv2d and a filter-gradient matmul. ``input=``/``filters=`` are TF 1.15's names.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.ones((1, 2, 2, 1)))
    >>> y = fg.nn.conv2d_transpose(x, fg.constant(np.ones((3, 3, 1, 1))), [1, 4, 4, 1],
    ...                            [1, 2, 2, 1], "SAME")
    >>> y.shape, fg.Session().run(y)[0, :, :, 0]
    ((1, 4, 4, 1), array([[1., 1., 2., 1.],
           [1., 1., 2., 1.],
           [2., 2., 4., 2.],
           [1., 1., 2., 1.]]))
    """
    fn = "conv2d_transpose"
    if input is not None:
        if value is not None:
            raise _fail(ValueError, fn, "pass value= or input=, not both")
        value = input
    if filters is not None:
        if filter is not None:
            raise _fail(ValueError, fn, "pass filter= or filters=, not both")
        filter = filters                                    # noqa: A001
    x = _nhwc_input(fn, value, data_format)
    w = F.convert_to_tensor(filter)
    if w.dtype != x.dtype:
        raise _fail(DTypeError, fn, f"expected a filter of the value's dtype "
                    f"{x.dtype.name}, found {w.name} of dtype {w.dtype.name}")
    if w.shape is None or len(w.shape) != 4 or None in w.shape:
        raise _fail(ShapeError, fn, f"expected a rank-4 [height, width, out_channels, "
                    f"in_channels] filter of known shape, found {w.name} of shape {w.shape}")
    kh, kw, cout, cin = w.shape
    if x.shape[3] is None or x.shape[3] != cin:
        raise _fail(ShapeError, fn, f"the value's channels ({x.shape[3]}, {x.name}) must "
                    f"equal the filter's in_channels, its last dimension ({cin}, {w.name} "
                    f"of shape {w.shape})")
    out_hw, out_c = _output_shape(fn, output_shape)
    if out_c != cout:
        raise _fail(ShapeError, fn, f"output_shape's channels ({out_c}) must equal the "
                    f"filter's out_channels, its third dimension ({cout}, {w.name} of "
                    f"shape {w.shape})")
    strides = _hw(fn, "strides", strides)
    dilations = _hw(fn, "dilations", (1, 1) if dilations is None else dilations)
    padding = _padding(fn, padding)
    geometry = [_geometry(fn, out_hw[a], (kh, kw)[a], strides[a], dilations[a], padding)
                for a in range(2)]
    if (geometry[0][0], geometry[1][0]) != tuple(x.shape[1:3]):
        raise _fail(ShapeError, fn, f"a conv2d of an output of {out_hw[0]}x{out_hw[1]} "
                    f"(output_shape) with a {kh}x{kw} filter, strides {strides} and "
                    f"{padding} padding has a spatial size of {geometry[0][0]}x"
                    f"{geometry[1][0]}, not the value's {x.shape[1]}x{x.shape[2]} "
                    f"({x.name} of shape {x.shape})")
    # the patches' gradient: value @ filter^T as [N, h, w, kh*kw*out], then col2im
    cols = F.matmul(F.reshape(x, [-1, cin]), F.reshape(w, [kh * kw * cout, cin]),
                    transpose_b=True)
    batch = -1 if x.shape[0] is None else x.shape[0]
    cols = F.reshape(cols, [batch, x.shape[1], x.shape[2], kh * kw * cout])
    return patches_grad(cols, out_hw, (kh, kw), strides, dilations, _pads(geometry),
                        name=name)


def _output_shape(fn_name, output_shape):
    """``((H, W), C)`` from TF1's ``output_shape`` (its batch entry is not used)."""
    if isinstance(output_shape, Tensor):
        const = output_shape.op.attrs.get("value") if output_shape.op.type == "Const" else None
        if const is None:
            raise _fail(ShapeError, fn_name, f"expected output_shape as Python ints (or a "
                        f"constant), found the tensor {output_shape.name}")
        output_shape = np.asarray(const).tolist()
    try:
        dims = list(output_shape)
        if len(dims) != 4:
            raise ValueError
        h, w, c = (int(d) for d in dims[1:])
    except (TypeError, ValueError):
        raise _fail(ValueError, fn_name, f"expected output_shape as 4 ints [batch, height, "
                    f"width, out_channels] (the batch may be -1, None or a tensor), found "
                    f"{output_shape!r}") from None
    if min(h, w, c) < 1:
        raise _fail(ValueError, fn_name, f"expected a positive output height, width and "
                    f"channels, found {dims}")
    return (h, w), c


__all__ = ["conv2d", "conv1d", "max_pool", "avg_pool",
           # the patches primitives: TF1's extract_image_patches and conv2d_transpose
           "extract_image_patches", "conv2d_transpose"]
