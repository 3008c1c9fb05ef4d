"""The image-patches primitives (declared in :mod:`flowgraph.ops`) as graph functions:
``extract_patches`` (im2col: ``[N, H, W, C]`` to ``[N, OH, OW, kh*kw*C]``, each output
position's window with its taps in row-major order, channel ``(i*kw + j)*C + c``, zero
outside the image) and ``patches_grad`` (col2im, its adjoint: each patch element added
back into an ``[N, H, W, C]`` image). Both are linear, so each one's gradient is the
other, to any order. ``fg.nn.conv2d`` is ``extract_patches`` and one matmul, its input
gradient one ``patches_grad``; ``fg.nn.conv2d_transpose`` is a matmul and one
``patches_grad``; ``fg.extract_image_patches`` is TF1's spelling
(:mod:`flowgraph.nn.conv`).

Padding is explicit here (``pads = (top, bottom, left, right)``); TF1's ``"SAME"`` rule
is computed by the callers.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(np.arange(9.0).reshape(1, 3, 3, 1))
...     p = extract_patches(x, (2, 2), (1, 1), (1, 1), (0, 0, 0, 0))
...     back = patches_grad(fg.ones_like(p), (3, 3), (2, 2), (1, 1), (1, 1), (0, 0, 0, 0))
...     with fg.Session() as sess:
...         pv, bv = sess.run([p, back])
>>> pv[0, 0, 0], bv[0, :, :, 0]        # the first window; how many windows hold each pixel
(array([0., 1., 3., 4.]), array([[1., 2., 1.],
       [2., 4., 2.],
       [1., 2., 1.]]))
"""
from __future__ import annotations

import numbers

from . import api as F
from .errors import ShapeError
from .graph import Tensor, location_suffix


def _ints(fn_name, what, values, n, least):
    ok = (not isinstance(values, Tensor) and len(values) == n
          and all(isinstance(v, numbers.Integral) and v >= least for v in values))
    if not ok:
        raise ValueError(f"{fn_name}{location_suffix('called')}: expected {what} as {n} "
                         f"Python ints >= {least}, found {values!r}")
    return tuple(int(v) for v in values)


def _attrs(fn_name, ksizes, strides, rates, pads):
    return {"ksizes": _ints(fn_name, "ksizes", ksizes, 2, 1),
            "strides": _ints(fn_name, "strides", strides, 2, 1),
            "rates": _ints(fn_name, "rates", rates, 2, 1),
            "pads": _ints(fn_name, "pads", pads, 4, 0)}


def extract_patches(x, ksizes, strides, rates, pads, name=None):
    """``[N, OH, OW, kh*kw*C]``: the ``ksizes`` windows of NHWC ``x`` (known height
    and width), ``strides`` apart, taps ``rates`` apart, after zero padding ``pads =
    (top, bottom, left, right)``; ``OH = (H + top + bottom - (kh-1)*dh - 1) // sh + 1``.
    """
    x = F.convert_to_tensor(x)
    if x.shape is not None and len(x.shape) == 4 and None in x.shape[1:3]:
        # the gradient (col2im) needs the image's size when the graph is built
        raise ShapeError(f"extract_patches{location_suffix('called')}: expected the height "
                         f"and width of {x.name} known, found shape {x.shape}")
    return F._out("ExtractPatches", [x], _attrs("extract_patches", ksizes, strides, rates, pads),
                  name)


def patches_grad(g, image, ksizes, strides, rates, pads, name=None):
    """The adjoint of :func:`extract_patches` for an image of spatial size ``image =
    (H, W)``: ``[N, H, W, C]`` where each element of ``g [N, OH, OW, kh*kw*C]`` is added
    at the image position its patch read (padding dropped)."""
    g = F.convert_to_tensor(g)
    attrs = _attrs("patches_grad", ksizes, strides, rates, pads)
    attrs["image"] = _ints("patches_grad", "image", tuple(image), 2, 1)
    return F._out("PatchesGrad", [g], attrs, name)


__all__ = ["extract_patches", "patches_grad"]
