"""TF1's ``tf.linspace`` (``tf.lin_space``) and ``tf.meshgrid``, as compositions:
``start + range(num) * (stop - start) / (num - 1)`` with the last value exactly
``stop`` (NumPy's), and each input reshaped to its axis and broadcast (``broadcast_like``)
to the grid's shape. Gradients (to ``start``/``stop``, to each meshgrid input) come from
those ops.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x, y = fg.meshgrid(fg.linspace(0.0, 1.0, 3), fg.constant([10.0, 20.0]))
...     fg.Session().run([x, y])
[array([[0. , 0.5, 1. ],
       [0. , 0.5, 1. ]], dtype=float32), array([[10., 10., 10.],
       [20., 20., 20.]], dtype=float32)]
"""
from __future__ import annotations

import numbers

import numpy as np

from . import api as F
from . import dtypes
from .array_ops import logical_and as _logical_and
from .array_ops import range as _range
from .errors import DTypeError, ShapeError
from .graph import Tensor, location_suffix


def linspace(start, stop, num, name=None):
    """TF1's ``tf.linspace(start, stop, num)`` (also ``tf.lin_space``): ``num`` evenly
    spaced values from ``start`` to ``stop``, both included (``[start]`` for ``num ==
    1``). ``start`` and ``stop`` are float scalars of one dtype (Python numbers:
    float32); ``num`` a positive Python int (a static length) or an integer scalar tensor.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.linspace(10.0, 12.0, 3))
    array([10., 11., 12.], dtype=float32)
    """
    where = "linspace" + location_suffix("called")
    start, stop = F._to_tensors(start, stop, name_hint="linspace")
    if start.dtype.kind != "f" or stop.dtype != start.dtype:
        raise DTypeError(f"{where}: expected float start and stop of one dtype, found "
                         f"{start.dtype.name} and {stop.dtype.name}")
    for t in (start, stop):
        if t.shape is not None and t.shape != ():
            raise ShapeError(f"{where}: expected scalar start and stop, found {t.name} of "
                             f"shape {t.shape}")
    dtype = start.dtype
    if isinstance(num, Tensor):
        if not dtypes.is_integer(num.dtype):
            raise DTypeError(f"{where}: expected an integer num, found {num.dtype.name}")
        steps = F.cast(F.maximum(num - 1, F.ones_like(num)), dtype)
        index = F.cast(_range(num), dtype)
        last = F.cast(num - 1, dtype)
    else:
        if not isinstance(num, numbers.Integral) or isinstance(num, bool) or num < 1:
            raise ValueError(f"{where}: expected num a positive int or an integer tensor, "
                             f"found {num!r}")
        num = int(num)
        steps = max(num - 1, 1)
        index = F.constant(np.arange(num, dtype=dtype))
        last = num - 1
    values = start + index * ((stop - start) / steps)
    # the last value is stop itself, as NumPy's (start + (n-1) * step may round off);
    # for num == 1 the only value is start
    zeros = F.zeros_like(index)
    is_last = _logical_and(F.equal(index, zeros + last), F.greater(index, zeros))
    out = F.where(is_last, zeros + stop, values)
    return F.identity(out, name=name) if name else out


lin_space = linspace          # TF1's older name


def meshgrid(*args, **kwargs):
    """TF1's ``tf.meshgrid(*args, indexing='xy', name=None)``: for 1-d inputs of sizes
    ``n1, ..., nk``, ``k`` tensors of shape ``(n1, ..., nk)`` where the ``i``-th holds
    input ``i`` along axis ``i``; ``indexing='xy'`` (the default, Cartesian) swaps the
    first two axes' roles (shape ``(n2, n1, n3, ...)``), ``'ij'`` is matrix indexing.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     a, b = fg.meshgrid([1, 2, 3], [4, 5], indexing="ij")
    ...     a.shape, fg.Session().run(b).tolist()
    ((3, 2), [[4, 5], [4, 5], [4, 5]])
    """
    where = "meshgrid" + location_suffix("called")
    indexing = kwargs.pop("indexing", "xy")
    name = kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"{where}: unexpected keyword argument(s) {sorted(kwargs)}")
    if indexing not in ("xy", "ij"):
        raise ValueError(f"{where}: expected indexing 'xy' or 'ij', found {indexing!r}")
    xs = [F.reshape(F.convert_to_tensor(x), [-1]) for x in args]
    if not xs:
        return []
    for x in xs[1:]:
        if x.dtype != xs[0].dtype:
            raise DTypeError(f"{where}: expected inputs of one dtype, found " + ", ".join(
                sorted({t.dtype.name for t in xs})))
    k = len(xs)
    shaped = []
    for i, x in enumerate(xs):
        axis = i
        if indexing == "xy" and k >= 2 and i < 2:
            axis = 1 - i
        shape = [1] * k
        shape[axis] = -1
        shaped.append(F.reshape(x, shape))
    # the grid's shape, read at run time from a broadcasting sum of zeros of each
    like = F.zeros_like(shaped[0])
    for s in shaped[1:]:
        like = like + F.zeros_like(s)
    outs = [F.broadcast_like(s, like) for s in shaped]
    if name:
        outs = [F.identity(o, name=f"{name}_{i}") for i, o in enumerate(outs)]
    return outs


__all__ = ["linspace", "lin_space", "meshgrid"]
