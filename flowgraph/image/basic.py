"""TF1's cheap ``tf.image`` ops, as compositions (slices, pads, reversals, reductions),
for images ``[H, W, C]`` or batches ``[N, H, W, C]``: ``flip_left_right``,
``flip_up_down``, ``per_image_standardization``, ``central_crop``,
``pad_to_bounding_box``, ``crop_to_bounding_box``, ``rgb_to_grayscale`` and
``convert_image_dtype``. Offsets, sizes and fractions are Python numbers (the sizes
they need are known when the graph is built).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant(np.arange(6.0).reshape(2, 3, 1))
...     with fg.Session() as sess:
...         print(sess.run(fg.image.flip_left_right(x))[:, :, 0])
...         print(sess.run(fg.image.pad_to_bounding_box(x, 1, 0, 3, 4))[:, :, 0])
[[2. 1. 0.]
 [5. 4. 3.]]
[[0. 0. 0. 0.]
 [0. 1. 2. 0.]
 [3. 4. 5. 0.]]
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import api as F
from ..array_ops import reverse
from ..contraction_ops import tensordot
from ..errors import DTypeError, ShapeError
from ..graph import location_suffix
from ..slicing_ops import pad
from ..tf1_operators import floordiv


def _fail(cls, fn_name, message):
    return cls(fn_name + location_suffix("called") + f": {message}")


def _image(fn_name, image, need_hw=False):
    x = F.convert_to_tensor(image)
    if x.shape is None or len(x.shape) not in (3, 4):
        raise _fail(ShapeError, fn_name, f"expected an image [height, width, channels] or "
                    f"a batch [batch, height, width, channels], found {x.name} of shape "
                    f"{x.shape}")
    if need_hw and (x.shape[-3] is None or x.shape[-2] is None):
        raise _fail(ShapeError, fn_name, f"expected the height and width of {x.name} known "
                    f"when the graph is built, found shape {x.shape}")
    return x


def _int(fn_name, what, value, least):
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise _fail(ValueError, fn_name, f"expected {what} as a Python int, found {value!r}")
    if value < least:
        raise _fail(ValueError, fn_name, f"{what} must be >= {least}, found {value}")
    return int(value)


def flip_left_right(image):
    """TF1's ``tf.image.flip_left_right``: the width axis reversed (``[H, W, C]`` or
    ``[N, H, W, C]``)."""
    return reverse(_image("flip_left_right", image), [-2])


def flip_up_down(image):
    """TF1's ``tf.image.flip_up_down``: the height axis reversed.

    >>> import numpy as np, flowgraph as fg
    >>> fg.Session().run(fg.image.flip_up_down(np.arange(4.0).reshape(2, 2, 1)))[:, :, 0]
    array([[2., 3.],
           [0., 1.]])
    """
    return reverse(_image("flip_up_down", image), [-3])


def per_image_standardization(image):
    """TF1's ``tf.image.per_image_standardization``: each image cast to float32 and
    scaled to zero mean and unit variance, ``(x - mean) / max(stddev, 1/sqrt(H*W*C))``,
    TF1's formula (``variance = relu(mean(x^2) - mean^2)``).

    >>> import numpy as np, flowgraph as fg
    >>> y = fg.image.per_image_standardization(np.array([1., 3.]).reshape(1, 2, 1))
    >>> fg.Session().run(y).ravel()
    array([-1.,  1.], dtype=float32)
    """
    fn = "per_image_standardization"
    x = _image(fn, image)
    if None in x.shape[-3:]:
        raise _fail(ShapeError, fn, f"expected the height, width and channels of {x.name} "
                    f"known when the graph is built, found shape {x.shape}")
    num_pixels = int(np.prod(x.shape[-3:]))
    x = F.cast(x, np.float32) if x.dtype != np.float32 else x
    axes = [-1, -2, -3]
    mean = F.reduce_mean(x, axes, keepdims=True)
    variance = F.relu(F.reduce_mean(F.square(x), axes, keepdims=True) - F.square(mean))
    min_stddev = F.constant(np.float32(1.0) / np.sqrt(np.float32(num_pixels)))
    return F.divide(x - mean, F.maximum(F.sqrt(variance), min_stddev))


def central_crop(image, central_fraction):
    """TF1's ``tf.image.central_crop``: the central ``central_fraction`` (a Python
    float in ``(0, 1]``) of the height and width, TF1's offsets ``int((size - size *
    fraction) / 2)`` on each side.

    >>> import numpy as np, flowgraph as fg
    >>> y = fg.image.central_crop(np.arange(16.0).reshape(4, 4, 1), 0.5)
    >>> fg.Session().run(y)[:, :, 0]
    array([[ 5.,  6.],
           [ 9., 10.]])
    """
    fn = "central_crop"
    x = _image(fn, image, need_hw=True)
    if not isinstance(central_fraction, numbers.Real) or not 0.0 < central_fraction <= 1.0:
        raise _fail(ValueError, fn, f"central_fraction must be within (0, 1], found "
                    f"{central_fraction!r}")
    if central_fraction == 1.0:
        return x
    h, w = float(x.shape[-3]), float(x.shape[-2])
    top = int((h - h * central_fraction) / 2)
    left = int((w - w * central_fraction) / 2)
    return x[..., top:int(h) - top, left:int(w) - left, :]


def _box(fn, offset_height, offset_width, target_height, target_width):
    """The bounding-box arguments as Python ints: offsets >= 0, sizes >= 1."""
    return (_int(fn, "offset_height", offset_height, 0),
            _int(fn, "offset_width", offset_width, 0),
            _int(fn, "target_height", target_height, 1),
            _int(fn, "target_width", target_width, 1))


def pad_to_bounding_box(image, offset_height, offset_width, target_height, target_width):
    """TF1's ``tf.image.pad_to_bounding_box``: ``image`` placed at ``(offset_height,
    offset_width)`` in a zero image of ``target_height x target_width``."""
    fn = "pad_to_bounding_box"
    x = _image(fn, image, need_hw=True)
    top, left, th, tw = _box(fn, offset_height, offset_width, target_height, target_width)
    h, w = x.shape[-3], x.shape[-2]
    bottom, right = th - top - h, tw - left - w
    if bottom < 0 or right < 0:
        raise _fail(ValueError, fn, f"the image ({h}x{w}) at offset ({top}, {left}) does not "
                    f"fit in the target {th}x{tw}")
    paddings = [[top, bottom], [left, right], [0, 0]]
    return pad(x, ([[0, 0]] if len(x.shape) == 4 else []) + paddings)


def crop_to_bounding_box(image, offset_height, offset_width, target_height, target_width):
    """TF1's ``tf.image.crop_to_bounding_box``: the ``target_height x target_width``
    window of ``image`` whose top-left corner is ``(offset_height, offset_width)``.

    >>> import numpy as np, flowgraph as fg
    >>> y = fg.image.crop_to_bounding_box(np.arange(16.0).reshape(4, 4, 1), 1, 2, 2, 2)
    >>> fg.Session().run(y)[:, :, 0]
    array([[ 6.,  7.],
           [10., 11.]])
    """
    fn = "crop_to_bounding_box"
    x = _image(fn, image, need_hw=True)
    top, left, th, tw = _box(fn, offset_height, offset_width, target_height, target_width)
    h, w = x.shape[-3], x.shape[-2]
    if top + th > h or left + tw > w:
        raise _fail(ValueError, fn, f"the {th}x{tw} box at offset ({top}, {left}) does not "
                    f"fit in the image ({h}x{w})")
    return x[..., top:top + th, left:left + tw, :]


def convert_image_dtype(image, dtype, saturate=False, name=None):
    """TF1's ``tf.image.convert_image_dtype``: float images hold values in ``[0, 1]``,
    integer images in ``[0, dtype.max]``. Float to float is a cast; integer to float
    a cast times ``1 / max``; float to integer a multiplication by ``max + 0.5`` and a
    cast (clipped to the range first with ``saturate``); integer to integer TF1's
    integer scaling. The same dtype returns ``image`` (an identity).

    >>> import numpy as np, flowgraph as fg
    >>> fg.Session().run(fg.image.convert_image_dtype(np.array([0.0, 0.5, 1.0]), fg.float32))
    array([0. , 0.5, 1. ], dtype=float32)
    """
    fn = "convert_image_dtype"
    x = F.convert_to_tensor(image)
    target = np.dtype(dtype)
    if target.kind not in "fiu" or x.dtype.kind not in "fiu":
        raise _fail(DTypeError, fn, f"expected float or integer dtypes, converting "
                    f"{x.dtype.name} ({x.name}) to {target.name}")
    if target == x.dtype:
        return F.identity(x, name=name)
    src_float, dst_float = x.dtype.kind == "f", target.kind == "f"
    if src_float and dst_float:
        return F.cast(x, target, name=name)
    if dst_float:                      # integer to float: cast, then scale
        scale = target.type(1.0 / np.iinfo(x.dtype).max)
        return F.multiply(F.cast(x, target), F.constant(scale), name=name)
    out_max = np.iinfo(target).max
    if src_float:                      # float to integer: scale, then cast
        scaled = F.multiply(x, F.constant(np.dtype(x.dtype).type(out_max + 0.5)))
        if saturate:
            info = np.iinfo(target)
            scaled = F.clip_by_value(scaled, np.dtype(x.dtype).type(info.min),
                                     np.dtype(x.dtype).type(info.max))
        return F.cast(scaled, target, name=name)
    in_max = np.iinfo(x.dtype).max    # integer to integer, in the larger range
    if in_max > out_max:
        scaled = floordiv(x, F.constant(np.dtype(x.dtype).type((in_max + 1) // (out_max + 1))))
        return F.cast(scaled, target, name=name)
    factor = target.type((out_max + 1) // (in_max + 1))
    return F.multiply(F.cast(x, target), F.constant(factor), name=name)


def rgb_to_grayscale(images, name=None):
    """TF1's ``tf.image.rgb_to_grayscale``: ``[..., 3]`` to ``[..., 1]``, the weights
    ``[0.2989, 0.5870, 0.1140]`` applied in float32 (``convert_image_dtype`` there and
    back, as TF1).

    >>> import numpy as np, flowgraph as fg
    >>> fg.Session().run(fg.image.rgb_to_grayscale(np.array([[[1., 1., 1.]]], np.float32)))
    array([[[0.99990004]]], dtype=float32)
    """
    fn = "rgb_to_grayscale"
    x = F.convert_to_tensor(images)
    if x.shape is None or not x.shape or x.shape[-1] != 3:
        raise _fail(ShapeError, fn, f"expected images with 3 channels in the last axis, "
                    f"found {x.name} of shape {x.shape}")
    flt = convert_image_dtype(x, np.float32)
    weights = F.constant(np.array([0.2989, 0.5870, 0.1140], np.float32))
    gray = F.expand_dims(tensordot(flt, weights, [[-1], [-1]]), -1)
    return convert_image_dtype(gray, x.dtype, name=name)


__all__ = ["flip_left_right", "flip_up_down", "per_image_standardization", "central_crop",
           "pad_to_bounding_box", "crop_to_bounding_box", "convert_image_dtype",
           "rgb_to_grayscale"]
