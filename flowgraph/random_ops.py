"""Random ops with TF1's seed rules: ``fg.set_random_seed`` (graph level) and the
``seed=`` of each op decide the Philox key of the op (:mod:`flowgraph.philox`).

* graph seed and op seed set: both are used;
* only the graph seed: the op seed is the number of ops in the graph when the op is
  made (TF1's ``graph._last_id``), so ops differ yet a rebuilt graph repeats itself;
* only the op seed: the graph seed is TF1's default, 87654321;
* neither: the session's salt, drawn from fresh entropy per session (TF1: numbers
  differ between sessions).

Every ``run`` draws new numbers: the counter includes the session's run number, which
advances once per committed run that draws (a failed run gives its number back), so a
new session with the same seeds repeats the same sequence of runs.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     fg.set_random_seed(1)
...     u = fg.random_uniform((2, 3), seed=7)
...     with fg.Session() as a, fg.Session() as b:
...         first, second = a.run(u), a.run(u)
...         again = b.run(u)
>>> bool((first == again).all()), bool((first == second).all())
(True, False)
"""
from __future__ import annotations

import numpy as np

from . import api, dtypes
from .graph import Tensor, get_default_graph
from .tensor_shape import Dimension, TensorShape

DEFAULT_GRAPH_SEED = 87654321
_MAXINT32 = 2 ** 31 - 1


def set_random_seed(seed):
    """Set the default graph's random seed (``None`` clears it); random ops and
    initializers made afterwards derive their seeds from it (TF1's rules).

    >>> import flowgraph as fg
    >>> def draw():
    ...     with fg.Graph().as_default():
    ...         fg.set_random_seed(7)
    ...         return fg.Session().run(fg.random_normal((3,)))
    >>> bool((draw() == draw()).all())
    True
    """
    get_default_graph().seed = None if seed is None else int(seed)


def _truncate(seed):
    return int(seed) % _MAXINT32


def get_seed(op_seed, graph=None):
    """TF1's ``get_seed``: ``(graph seed, op seed)`` for an op with ``op_seed``; both
    ``None`` when neither seed is set.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.get_seed(5)
    (87654321, 5)
    """
    graph = graph or get_default_graph()
    if graph.seed is not None:
        if op_seed is None:
            op_seed = len(graph._operations)
        seeds = _truncate(graph.seed), _truncate(op_seed)
    elif op_seed is not None:
        seeds = DEFAULT_GRAPH_SEED, _truncate(op_seed)
    else:
        seeds = None, None
    if seeds == (0, 0):   # TF1 avoids (0, 0), which its kernels read as "no seed"
        return 0, _MAXINT32
    return seeds


def _op_seeds(seed, graph):
    graph_seed, op_seed = get_seed(seed, graph)
    if op_seed is None:   # no seed at all: the session's salt, and this op's index
        op_seed = len(graph._operations)
    return graph_seed, op_seed


def _shape_source(shape):
    """``(static shape, input tensors, shape_from)`` of a ``shape`` argument: a tuple
    or list of ints (and tensors), or a 1-D integer tensor."""
    if isinstance(shape, Tensor) or hasattr(shape, "_as_tensor"):
        tensor = api.convert_to_tensor(shape)
        if tensor.op.type == "Const":
            return tuple(int(d) for d in np.asarray(tensor.op.attrs["value"]).ravel()), [], None
        n = tensor.shape[0] if tensor.shape is not None and len(tensor.shape) == 1 else None
        return (None if n is None else (None,) * n), [tensor], "value"
    if isinstance(shape, TensorShape):          # TF1's v.get_shape(): fully known only
        if not shape.is_fully_defined():
            raise ValueError(f"expected a fully known shape, found {shape}; use "
                             f"fg.shape(x) for a shape known at run time")
        shape = shape.as_list()
    dims = list(shape) if isinstance(shape, (list, tuple, np.ndarray)) else [shape]
    dims = [d.value if isinstance(d, Dimension) else d for d in dims]
    if any(isinstance(d, Tensor) or hasattr(d, "_as_tensor") for d in dims):
        parts = [api.cast(api.convert_to_tensor(d), dtypes.int64)
                 if isinstance(d, Tensor) or hasattr(d, "_as_tensor")
                 else api.constant(int(d), dtypes.int64) for d in dims]
        static = tuple(None if isinstance(d, Tensor) or hasattr(d, "_as_tensor") else int(d)
                       for d in dims)
        return static, [api.stack(parts)], "value"
    static = tuple(int(d) for d in dims)
    if any(d < 0 for d in static):
        raise ValueError(f"expected a shape of sizes >= 0, found {static}")
    return static, [], None


def random_op(type_, shape, dtype, seed, name, like=None, **params):
    """Create a random op of ``type_`` (shape from ``shape``, or from tensor ``like``)."""
    graph = get_default_graph()
    if like is not None:
        static, inputs, shape_from = like.shape, [like], "like"
    else:
        static, inputs, shape_from = _shape_source(shape)
    attrs = {"shape": static, "dtype": dtypes.as_dtype(dtype),
             "seeds": _op_seeds(seed, graph), "shape_from": shape_from, **params}
    return graph.create_op(type_, inputs, attrs, name).outputs[0]


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def random_uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None,
                   name=None):
    """Uniform numbers in ``[minval, maxval)`` (``maxval`` defaults to 1 for floats
    and is required for integers). ``minval``/``maxval`` may be tensors.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     u = fg.random_uniform((1000,), -1.0, 1.0, seed=3)
    ...     x = fg.Session().run(u)
    >>> bool(x.min() >= -1.0 and x.max() < 1.0), x.dtype
    (True, dtype('float32'))
    """
    dtype = dtypes.as_dtype(dtype)
    if dtypes.is_integer(dtype):
        if maxval is None:
            raise ValueError(f"random_uniform: maxval is required for dtype {dtype.name}")
        if not (_is_number(minval) and _is_number(maxval)):
            raise ValueError("random_uniform: integer minval and maxval must be numbers")
        return random_op("RandomUniform", shape, dtype, seed, name, minval=int(minval),
                         maxval=int(maxval))
    if maxval is None:
        maxval = 1.0
    if _is_number(minval) and _is_number(maxval):
        return random_op("RandomUniform", shape, dtype, seed, name, minval=float(minval),
                         maxval=float(maxval))
    unit = random_op("RandomUniform", shape, dtype, seed, name, minval=0.0, maxval=1.0)
    low = api.convert_to_tensor(minval, dtype=dtype)
    return low + unit * (api.convert_to_tensor(maxval, dtype=dtype) - low)


def _normal(type_, shape, mean, stddev, dtype, seed, name):
    dtype = dtypes.as_dtype(dtype)
    if not dtypes.is_floating(dtype):
        raise ValueError(f"{type_}: expected a float dtype, found {dtype.name}")
    if _is_number(mean) and _is_number(stddev):
        return random_op(type_, shape, dtype, seed, name, mean=float(mean),
                         stddev=float(stddev))
    z = random_op(type_, shape, dtype, seed, name, mean=0.0, stddev=1.0)
    return z * api.convert_to_tensor(stddev, dtype=dtype) + api.convert_to_tensor(
        mean, dtype=dtype)


def random_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Normal numbers (Box-Muller in float64, then cast); ``mean``/``stddev`` may be
    tensors.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     z = fg.Session().run(fg.random_normal((20000,), 1.0, 2.0, seed=3))
    >>> bool(abs(z.mean() - 1.0) < 0.1 and abs(z.std() - 2.0) < 0.1)
    True
    """
    return _normal("RandomStandardNormal", shape, mean, stddev, dtype, seed, name)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None,
                     name=None):
    """Normal numbers redrawn until within two standard deviations of the mean.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     z = fg.Session().run(fg.truncated_normal((5000,), seed=3))
    >>> bool(abs(z).max() < 2.0)
    True
    """
    return _normal("TruncatedNormal", shape, mean, stddev, dtype, seed, name)


__all__ = ["set_random_seed", "get_seed", "random_uniform", "random_normal",
           "truncated_normal", "DEFAULT_GRAPH_SEED"]
