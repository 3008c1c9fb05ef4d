"""TF1's ``tf.nn.depthwise_conv2d``, ``depthwise_conv2d_native`` and
``separable_conv2d`` (NHWC), as compositions on the image-patches primitive
(:mod:`flowgraph.patches_ops`), so gradients to any order, CPU and GPU kernels and the
compiled path come from the ops they use.

A depthwise convolution filters each input channel on its own: with ``filter [kh, kw,
C, M]`` (``M``, the channel multiplier), output channel ``c * M + m`` is input channel
``c`` cross-correlated with ``filter[:, :, c, m]``, TF1's order::

    out[b, i, j, c*M + m] = sum_{di, dj} in[b, i*sh + di*dh - top, j*sw + dj*dw - left, c]
                                          * filter[di, dj, c, m]

It is one ``ExtractPatches`` (``[N, OH, OW, kh*kw*C]``, taps in the filter's ``[kh,
kw]`` order), reshaped to ``[N, OH, OW, kh*kw, C, 1]``, multiplied by the filter as
``[kh*kw, C, M]`` and summed over the taps. Its input gradient is one ``PatchesGrad``
(col2im). ``separable_conv2d`` is a depthwise convolution followed by a 1x1
``conv2d`` (``pointwise_filter [1, 1, C*M, out]``, stride 1, ``"VALID"``), as in TF1.
``"SAME"`` padding is TF1's rule (:mod:`flowgraph.nn.conv`).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(np.arange(8.0).reshape(1, 2, 2, 2))      # channels 0..2..6, 1..3..7
...     k = fg.constant(np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 2, 2))
...     y = fg.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")
...     with fg.Session() as sess:
...         print(sess.run(y)[0, 0, 0])     # [x0 * 1, x0 * 10, x1 * 100, x1 * 1000]
[   0.    0.  100. 1000.]
"""
from __future__ import annotations

from .. import api as F
from ..errors import DTypeError, ShapeError
from ..patches_ops import extract_patches
from .conv import _fail, _geometry, _hw, _nhwc_input, _padding, _pads, conv2d


def _filter(fn_name, x, value, what="filter"):
    w = F.convert_to_tensor(value)
    if w.dtype != x.dtype:
        raise _fail(DTypeError, fn_name, f"expected a {what} of the input's dtype "
                    f"{x.dtype.name}, found {w.name} of dtype {w.dtype.name}")
    if w.shape is None or len(w.shape) != 4 or None in w.shape:
        raise _fail(ShapeError, fn_name, f"expected a rank-4 [height, width, in_channels, "
                    f"channel_multiplier] {what} of known shape, found {w.name} of shape "
                    f"{w.shape}")
    if x.shape[3] is None or x.shape[3] != w.shape[2]:
        raise _fail(ShapeError, fn_name, f"the input's channels ({x.shape[3]}, {x.name}) "
                    f"must equal the {what}'s in_channels ({w.shape[2]}, {w.name} of shape "
                    f"{w.shape})")
    return w


def _depthwise(fn_name, x, w, strides, padding, dilations, name):
    """The composition; ``x`` and ``w`` checked, ``strides``/``dilations`` pairs."""
    kh, kw, c, m = w.shape
    padding = _padding(fn_name, padding)
    geometry = [_geometry(fn_name, x.shape[1 + a], (kh, kw)[a], strides[a], dilations[a],
                          padding) for a in range(2)]
    (oh, _, _), (ow, _, _) = geometry
    batch = -1 if x.shape[0] is None else x.shape[0]
    cols = extract_patches(x, (kh, kw), strides, dilations, _pads(geometry))
    if m == 1:                       # no multiplier axis: [N, OH, OW, taps, C] * [taps, C]
        taps = F.reshape(cols, [batch, oh, ow, kh * kw, c])
        out = F.reduce_sum(taps * F.reshape(w, [kh * kw, c]), 3)
        return F.identity(out, name=name) if name else out
    taps = F.reshape(cols, [batch, oh, ow, kh * kw, c, 1])
    out = F.reduce_sum(taps * F.reshape(w, [kh * kw, c, m]), 3)      # [N, OH, OW, C, M]
    return F.reshape(out, [batch, oh, ow, c * m], name=name)          # channel c*M + m


def depthwise_conv2d_native(input, filter, strides, padding,  # noqa: A002 - TF1's names
                            data_format="NHWC", dilations=(1, 1, 1, 1), name=None):
    """TF1's ``tf.nn.depthwise_conv2d_native``: ``input [N, H, W, C]`` (NHWC; H and W
    known) and ``filter [kh, kw, C, M]`` give ``[N, OH, OW, C*M]``, output channel
    ``c*M + m`` being channel ``c`` filtered by ``filter[:, :, c, m]``. ``strides`` and
    ``dilations`` are an int or 1, 2 or 4 ints (``[1, h, w, 1]``); ``padding`` is
    ``"SAME"`` or ``"VALID"``.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.ones((1, 3, 3, 2)))
    >>> y = fg.nn.depthwise_conv2d_native(x, fg.constant(np.ones((2, 2, 2, 1))), 1, "SAME")
    >>> y.shape, fg.Session().run(y)[0, :, :, 0]
    ((1, 3, 3, 2), array([[4., 4., 2.],
           [4., 4., 2.],
           [2., 2., 1.]]))
    """
    fn = "depthwise_conv2d_native"
    x = _nhwc_input(fn, input, data_format)
    w = _filter(fn, x, filter)
    return _depthwise(fn, x, w, _hw(fn, "strides", strides), padding,
                      _hw(fn, "dilations", (1, 1) if dilations is None else dilations), name)


def _rate(fn_name, rate, dilations, strides):
    """TF1's ``rate`` (or its other name ``dilations``): 2 ints, strides 1 where > 1."""
    if rate is not None and dilations is not None:
        raise _fail(ValueError, fn_name, "pass rate= or dilations=, not both")
    rate = rate if rate is not None else dilations
    rate = (1, 1) if rate is None else _hw(fn_name, "rate", rate)
    if max(rate) > 1 and max(strides) > 1:
        raise _fail(ValueError, fn_name, f"strides must be 1 where rate is greater than 1 "
                    f"(TF1's rule), found strides {list(strides)} and rate {list(rate)}")
    return rate


def depthwise_conv2d(input, filter, strides, padding, rate=None,  # noqa: A002 - TF1's names
                     name=None, data_format=None, dilations=None):
    """TF1's ``tf.nn.depthwise_conv2d``: :func:`depthwise_conv2d_native` with TF1's
    ``rate`` (atrous) argument: ``rate = [dh, dw]`` spaces the filter taps (``dilations``
    is its other name); where a rate is greater than 1 the strides must be 1, as TF1
    requires. ``strides`` is 4 ints ``[1, sh, sw, 1]`` (or an int, or 2 ints).

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.arange(25.0).reshape(1, 5, 5, 1))
    >>> k = fg.constant(np.ones((2, 2, 1, 2)))
    >>> y = fg.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID", rate=[2, 2])
    >>> y.shape, fg.Session().run(y)[0, 0, 0]              # x[0,0] + x[0,2] + x[2,0] + x[2,2]
    ((1, 3, 3, 2), array([24., 24.]))
    """
    fn = "depthwise_conv2d"
    x = _nhwc_input(fn, input, data_format)
    w = _filter(fn, x, filter)
    strides = _hw(fn, "strides", strides)
    return _depthwise(fn, x, w, strides, padding, _rate(fn, rate, dilations, strides), name)


def separable_conv2d(input, depthwise_filter, pointwise_filter, strides,  # noqa: A002
                     padding, rate=None, name=None, data_format=None, dilations=None):
    """TF1's ``tf.nn.separable_conv2d``: a :func:`depthwise_conv2d` of ``input [N, H,
    W, C]`` with ``depthwise_filter [kh, kw, C, M]`` (``strides``, ``padding``,
    ``rate``), then a 1x1 ``conv2d`` with ``pointwise_filter [1, 1, C*M, out]``
    (stride 1, ``"VALID"``): ``[N, OH, OW, out]``.

    >>> import numpy as np, flowgraph as fg
    >>> x = fg.constant(np.ones((1, 3, 3, 2)))
    >>> dw = fg.constant(np.ones((3, 3, 2, 1)))
    >>> pw = fg.constant(np.array([1.0, 2.0]).reshape(1, 1, 2, 1))
    >>> y = fg.nn.separable_conv2d(x, dw, pw, [1, 1, 1, 1], "VALID")
    >>> y.shape, fg.Session().run(y).ravel()                 # 9 * 1 + 9 * 2
    ((1, 1, 1, 1), array([27.]))
    """
    fn = "separable_conv2d"
    x = _nhwc_input(fn, input, data_format)
    dw = _filter(fn, x, depthwise_filter, "depthwise_filter")
    pw = F.convert_to_tensor(pointwise_filter)
    c_m = dw.shape[2] * dw.shape[3]
    if pw.shape is None or len(pw.shape) != 4 or tuple(pw.shape[:3]) != (1, 1, c_m) \
            or pw.shape[3] is None:
        raise _fail(ShapeError, fn, f"expected a [1, 1, {c_m}, out_channels] "
                    f"pointwise_filter (in_channels * channel_multiplier = {c_m}), found "
                    f"{pw.name} of shape {pw.shape}")
    if pw.dtype != x.dtype:
        raise _fail(DTypeError, fn, f"expected a pointwise_filter of the input's dtype "
                    f"{x.dtype.name}, found {pw.name} of dtype {pw.dtype.name}")
    strides = _hw(fn, "strides", strides)
    depthwise = _depthwise(fn, x, dw, strides, padding, _rate(fn, rate, dilations, strides),
                           None)
    return conv2d(depthwise, pw, [1, 1, 1, 1], "VALID", name=name)


__all__ = ["depthwise_conv2d", "depthwise_conv2d_native", "separable_conv2d"]
