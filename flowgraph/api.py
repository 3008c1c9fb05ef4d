"""User-facing op functions and the operators on tensors.

Each function converts its arguments (Python scalars are *weak*, see
:mod:`flowgraph.dtypes`), applies NumPy promotion, and creates one or more primitive
ops. Composite functions (softmax, clip_by_value, reduce_mean, stack, ...) are
written with primitives, so their gradients come for free.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (None, 2))
...     y = fg.relu(x * 2.0 - 1.0)
...     with fg.Session() as sess:
...         sess.run(y, {x: [[0.0, 1.0]]})
array([[0., 1.]], dtype=float32)
"""
from __future__ import annotations

import numbers

import numpy as np

from . import dtypes
from . import shapes as S
from .errors import DTypeError, ShapeError
from .graph import Operation, Tensor, get_default_graph, location_suffix

# ---------------------------------------------------------------------------------------
# conversion


def _graph_of(*values):
    for v in values:
        if isinstance(v, Tensor):
            return v.graph
        if hasattr(v, "_as_tensor"):
            return v._as_tensor().graph
        if isinstance(v, (list, tuple)):
            for item in v:
                g = _graph_of(item)
                if g is not None:
                    return g
    return None


def _op(type_, inputs, attrs=None, name=None, **kwargs) -> Operation:
    graph = _graph_of(*inputs) or get_default_graph()
    return graph.create_op(type_, inputs, attrs, name, **kwargs)


def _out(type_, inputs, attrs=None, name=None) -> Tensor:
    return _op(type_, inputs, attrs, name).outputs[0]


def constant(value, dtype=None, name=None, graph=None, *, shape=None) -> Tensor:
    """A constant tensor holding ``value`` (array-like).

    Python floats become float32 and Python ints int32 unless ``dtype`` says otherwise;
    NumPy arrays keep their dtype. ``shape=`` (TF1's ``tf.constant(0.1, shape=[3])``)
    fills that shape with a scalar ``value`` or reshapes one with as many elements.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.constant([1, 2]).dtype, fg.constant(np.zeros(2)).dtype
    (dtype('int32'), dtype('float64'))
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.constant(0.1, shape=[2, 2]))
    array([[0.1, 0.1],
           [0.1, 0.1]], dtype=float32)
    """
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    elif isinstance(value, np.ndarray) or isinstance(value, np.generic):
        dtype = dtypes.as_dtype(value.dtype)
    else:
        dtype = dtypes.default_dtype_for_python(value)
    arr = np.array(value, dtype=dtype)
    if shape is not None:
        shape = tuple(int(d) for d in shape)
        if arr.size == 1:
            arr = np.full(shape, arr.reshape(()), dtype=dtype)
        elif arr.size == int(np.prod(shape)):
            arr = arr.reshape(shape)
        else:
            from .graph import location_suffix
            raise ShapeError(f"Const '{name or 'Const'}'" + location_suffix()
                             + f": expected a scalar or {int(np.prod(shape))} values for "
                             f"shape {S.fmt(shape)}, found {arr.size} values of shape "
                             f"{S.fmt(arr.shape)}")
    arr.setflags(write=False)
    graph = graph or get_default_graph()
    return graph.create_op("Const", [], {"value": arr}, name or "Const").outputs[0]


def convert_to_tensor(value, dtype=None, name=None, graph=None) -> Tensor:
    """A tensor for ``value``: tensors pass through (checked against ``dtype``),
    variables give their value, anything else becomes a constant.
    """
    if hasattr(value, "_as_tensor"):
        value = value._as_tensor()
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != dtypes.as_dtype(dtype):
            raise DTypeError(f"expected a {dtypes.as_dtype(dtype).name} tensor, found "
                             f"{value.name} of dtype {value.dtype.name}")
        return value
    if isinstance(value, Operation):
        raise TypeError(f"expected a tensor, found the operation {value.name!r} "
                        f"(use {value.name!r}.outputs[0] if it has an output)")
    return constant(value, dtype=dtype, name=name, graph=graph)


def _to_tensors(*values, name_hint="op"):
    """Convert a mix of tensors, Python scalars and arrays to tensors of one dtype.

    Strong dtypes (tensors, NumPy arrays and scalars) promote by NumPy's rules; Python
    scalars adopt the strong dtype (see :mod:`flowgraph.dtypes`).
    """
    if all(type(v) is Tensor for v in values) and len({v.dtype for v in values}) == 1:
        return list(values)     # the common case: tensors of one dtype, nothing to do
    graph = _graph_of(*values) or get_default_graph()
    strong = []
    for v in values:
        if hasattr(v, "_as_tensor"):
            v = v._as_tensor()
        if isinstance(v, Tensor):
            strong.append(v.dtype)
        elif dtypes.is_python_scalar(v):
            strong.append(None)
        else:
            arr = np.asarray(v)
            if arr.dtype.kind not in "biuf":
                raise DTypeError(f"{name_hint}: expected numbers, found {arr.dtype} in {v!r:.60}")
            if isinstance(v, (np.ndarray, np.generic)):
                strong.append(dtypes.as_dtype(arr.dtype))
            else:  # nested Python lists: weak like Python scalars
                strong.append(None)
    known = [d for d in strong if d is not None]
    if known:
        target = dtypes.result_type(*known)
        weak = [v for v, d in zip(values, strong) if d is None]
        # A weak scalar of a higher kind (a float meeting an int tensor) gives its
        # default dtype, as documented in flowgraph.dtypes: int32 + 1.5 is float32.
        higher = [d for d in (dtypes.weak_dtype(v, target) for v in weak) if d != target]
        if higher:
            target = dtypes.result_type(*higher)
    else:
        target = dtypes.result_type(*(dtypes.default_dtype_for_python(v) for v in values))
    out = []
    for v in values:
        if hasattr(v, "_as_tensor"):
            v = v._as_tensor()
        if isinstance(v, Tensor):
            out.append(v if v.dtype == target else cast(v, target))
        else:
            out.append(constant(v, dtype=target, graph=graph))
    return out


# ---------------------------------------------------------------------------------------
# sources


def placeholder(dtype, shape=None, name=None) -> Tensor:
    """A value fed at run time. ``None`` dimensions (or ``shape=None``, unknown rank)
    accept any size.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.placeholder(fg.float32, (None, 3), name="x").shape
    (None, 3)
    """
    dtype = dtypes.as_dtype(dtype)
    return _out("Placeholder", [], {"dtype": dtype, "shape": S.as_shape(shape)},
                name or "Placeholder")


def zeros(shape, dtype=dtypes.float32, name=None) -> Tensor:
    """A constant of zeros."""
    return constant(np.zeros(shape, dtypes.as_dtype(dtype)), name=name or "zeros")


def ones(shape, dtype=dtypes.float32, name=None) -> Tensor:
    """A constant of ones."""
    return constant(np.ones(shape, dtypes.as_dtype(dtype)), name=name or "ones")


# ---------------------------------------------------------------------------------------
# elementwise


def _binary(type_, x, y, name=None):
    a, b = _to_tensors(x, y, name_hint=type_)
    return _out(type_, [a, b], name=name)


def add(x, y, name=None):
    """``x + y`` with broadcasting."""
    return _binary("Add", x, y, name)


def subtract(x, y, name=None):
    """``x - y`` with broadcasting."""
    return _binary("Sub", x, y, name)


def multiply(x, y, name=None):
    """``x * y`` with broadcasting."""
    return _binary("Mul", x, y, name)


def divide(x, y, name=None):
    """``x / y`` (true division: integers give float64, as in TensorFlow)."""
    return _binary("Div", x, y, name)


def maximum(x, y, name=None):
    """Elementwise maximum."""
    return _binary("Maximum", x, y, name)


def minimum(x, y, name=None):
    """Elementwise minimum."""
    return _binary("Minimum", x, y, name)


def less(x, y, name=None):
    return _binary("Less", x, y, name)


def less_equal(x, y, name=None):
    return _binary("LessEqual", x, y, name)


def greater(x, y, name=None):
    return _binary("Greater", x, y, name)


def greater_equal(x, y, name=None):
    return _binary("GreaterEqual", x, y, name)


def equal(x, y, name=None):
    """Elementwise ``x == y`` (the ``==`` operator is identity, as in TF1)."""
    return _binary("Equal", x, y, name)


def not_equal(x, y, name=None):
    return _binary("NotEqual", x, y, name)


def _unary(type_, x, name=None):
    return _out(type_, [convert_to_tensor(x)], name=name)


def negative(x, name=None):
    """``-x``."""
    return _unary("Neg", x, name)


def relu(x, name=None):
    """``max(x, 0)``."""
    return _unary("Relu", x, name)


def tanh(x, name=None):
    """Hyperbolic tangent."""
    return _unary("Tanh", x, name)


def sigmoid(x, name=None):
    """``1 / (1 + exp(-x))``, computed without overflow."""
    return _unary("Sigmoid", x, name)


def exp(x, name=None):
    return _unary("Exp", x, name)


def log(x, name=None):
    return _unary("Log", x, name)


def log1p(x, name=None):
    """``log(1 + x)``, accurate for small ``x`` where ``log(1 + x)`` rounds (TF1's
    ``tf.log1p``); float only.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.log1p(fg.constant([0.0, 1e-10], fg.float64))
    ...     print(fg.Session().run(y).tolist())
    [0.0, 9.999999999500001e-11]
    """
    return _unary("Log1p", x, name)


def sin(x, name=None):
    """Elementwise sine, in radians (TF1's ``tf.sin``); float only. Its gradient is
    ``cos(x)``, itself differentiable to any order.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.sin(fg.constant([0.0, np.pi / 2], fg.float64))
    ...     print(fg.Session().run(y).tolist())
    [0.0, 1.0]
    """
    return _unary("Sin", x, name)


def cos(x, name=None):
    """Elementwise cosine, in radians (TF1's ``tf.cos``); float only. Its gradient is
    ``-sin(x)``, itself differentiable to any order.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.cos(fg.constant([0.0, np.pi], fg.float64))
    ...     print(fg.Session().run(y).tolist())
    [1.0, -1.0]
    """
    return _unary("Cos", x, name)


def erf(x, name=None):
    """Elementwise error function ``2/sqrt(pi) * integral_0^x exp(-t**2) dt`` (TF1's
    ``tf.erf``); float only. Its gradient is ``2/sqrt(pi) * exp(-x**2)``, itself
    differentiable to any order.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.erf(fg.constant([0.0, 1.0, -30.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 0.842701, -1.0]
    """
    return _unary("Erf", x, name)


# TF1's tf.tan ... tf.expm1, tf.atan2: elementwise primitives (flowgraph/ops.py)
def tan(x, name=None):
    """Elementwise tangent (TF1's ``tf.tan``, ``tf.math.tan``); float only. Gradient
    ``1 + tan(x)**2``, differentiable to any order.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     print(fg.Session().run(fg.tan(fg.constant([0.0, 0.785398],
    ...                                               fg.float64))).round(6).tolist())
    [0.0, 1.0]
    """
    return _unary("Tan", x, name)


def atan(x, name=None):
    """Elementwise arctangent (TF1's ``tf.atan``); float only. Gradient ``1/(1 + x**2)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.atan(fg.constant([0.0, 1.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 0.785398]
    """
    return _unary("Atan", x, name)


def asin(x, name=None):
    """Elementwise arcsine (TF1's ``tf.asin``); float only, NaN outside ``[-1, 1]``.
    Gradient ``1/sqrt(1 - x**2)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.asin(fg.constant([0.0, 1.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 1.570796]
    """
    return _unary("Asin", x, name)


def acos(x, name=None):
    """Elementwise arccosine (TF1's ``tf.acos``); float only, NaN outside ``[-1, 1]``.
    Gradient ``-1/sqrt(1 - x**2)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.acos(fg.constant([1.0, 0.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 1.570796]
    """
    return _unary("Acos", x, name)


def sinh(x, name=None):
    """Elementwise hyperbolic sine (TF1's ``tf.sinh``); float only. Gradient ``cosh``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.sinh(fg.constant([0.0, 1.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 1.175201]
    """
    return _unary("Sinh", x, name)


def cosh(x, name=None):
    """Elementwise hyperbolic cosine (TF1's ``tf.cosh``); float only. Gradient ``sinh``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.cosh(fg.constant([0.0, 1.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [1.0, 1.543081]
    """
    return _unary("Cosh", x, name)


def asinh(x, name=None):
    """Elementwise inverse hyperbolic sine (TF1's ``tf.asinh``); float only. Gradient
    ``1/cosh(asinh(x))`` (TF1's form).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.asinh(fg.constant([0.0, 1.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 0.881374]
    """
    return _unary("Asinh", x, name)


def acosh(x, name=None):
    """Elementwise inverse hyperbolic cosine (TF1's ``tf.acosh``); float only, NaN below
    1. Gradient ``1/sinh(acosh(x))`` (TF1's form; infinite at 1).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.acosh(fg.constant([1.0, 2.0], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 1.316958]
    """
    return _unary("Acosh", x, name)


def atanh(x, name=None):
    """Elementwise inverse hyperbolic tangent (TF1's ``tf.atanh``); float only, NaN
    outside ``[-1, 1]``, infinite at +-1. Gradient ``1/(1 - x**2)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.atanh(fg.constant([0.0, 0.5], fg.float64))
    ...     print(fg.Session().run(y).round(6).tolist())
    [0.0, 0.549306]
    """
    return _unary("Atanh", x, name)


def expm1(x, name=None):
    """``exp(x) - 1``, accurate for small ``x`` (TF1's ``tf.expm1``); float only.
    Gradient ``exp(x)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.expm1(fg.constant([0.0, 1e-10], fg.float64))
    ...     print(fg.Session().run(y).tolist())
    [0.0, 1.00000000005e-10]
    """
    return _unary("Expm1", x, name)


def erfc(x, name=None):
    """Elementwise complementary error function ``1 - erf(x)``, computed without the
    cancellation of that difference for large ``x`` (TF1's ``tf.math.erfc``, ``tf.erfc``);
    float only. Gradient ``-2/sqrt(pi) * exp(-x**2)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y = fg.erfc(fg.constant([0.0, 10.0], fg.float64))
    ...     print(fg.Session().run(y).tolist())
    [1.0, 2.088487583762545e-45]
    """
    return _unary("Erfc", x, name)


def atan2(y, x, name=None):
    """Elementwise ``atan(y / x)`` in the right quadrant, in ``[-pi, pi]`` (TF1's
    ``tf.atan2(y, x)``: ``y`` first); float only, broadcasting, one dtype. Gradients
    ``x/(x**2 + y**2)`` to ``y`` and ``-y/(x**2 + y**2)`` to ``x``, as TF1's.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     y, x = fg.constant([1.0, 0.0], fg.float64), fg.constant([0.0, -1.0], fg.float64)
    ...     a = fg.atan2(y, x)
    ...     print(fg.Session().run(a).round(6).tolist())
    [1.570796, 3.141593]
    """
    return _binary("Atan2", y, x, name)


def square(x, name=None):
    return _unary("Square", x, name)


def sqrt(x, name=None):
    return _unary("Sqrt", x, name)


def abs(x, name=None):  # noqa: A001 - the API name
    return _unary("Abs", x, name)


def sign(x, name=None):
    return _unary("Sign", x, name)


def floor(x, name=None):
    """The largest integer not above ``x``, elementwise (a float; TF1's ``tf.floor``);
    no gradient flows through it, as in TF1. Float only."""
    return _unary("Floor", x, name)


def ceil(x, name=None):
    """The smallest integer not below ``x``, elementwise (a float; TF1's ``tf.ceil``);
    no gradient. Float only."""
    return _unary("Ceil", x, name)


def round_(x, name=None):
    """``fg.round``: ``x`` rounded to the nearest integer, halves to even (TF1's ``tf.round``,
    ``np.round``); no gradient. Float only.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([-1.5, -0.5, 0.5, 1.5, 2.5, 2.7], fg.float64)
    ...     fg.Session().run([fg.round(x), fg.floor(x), fg.ceil(x)])[0].tolist()
    [-2.0, -0.0, 0.0, 2.0, 2.0, 3.0]
    """
    return _unary("Round", x, name)


def identity(x, name=None):
    """The same value, as a new op (a place to hang a name or a device)."""
    return _unary("Identity", x, name)


def stop_gradient(x, name=None):
    """The same value; gradients do not flow through it."""
    return _unary("StopGradient", x, name)


def pow_scalar(x, exponent, name=None):
    """``x ** exponent`` for a Python number ``exponent`` (``Tensor.__pow__``)."""
    if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        raise TypeError(f"expected a Python number as the exponent, found {exponent!r}")
    x = convert_to_tensor(x)
    if dtypes.is_integer(x.dtype) and (exponent < 0 or exponent != int(exponent)):
        x = cast(x, dtypes.DEFAULT_FLOAT)
    return _out("PowScalar", [x], {"exponent": float(exponent)}, name)


def cast(x, dtype, name=None):
    """``x`` converted to ``dtype``."""
    x = convert_to_tensor(x)
    dtype = dtypes.as_dtype(dtype)
    return _out("Cast", [x], {"dtype": dtype}, name)


def where(condition, x, y, name=None):
    """``x`` where ``condition`` else ``y`` (all three broadcast)."""
    cond = convert_to_tensor(condition)
    a, b = _to_tensors(x, y, name_hint="Where")
    return _out("Where", [cond, a, b], name=name)


def clip_by_value(x, clip_value_min, clip_value_max, name=None):
    """``min(max(x, lo), hi)``."""
    return minimum(maximum(x, clip_value_min), clip_value_max, name=name)


def zeros_like(x, dtype=None, name=None):
    x = convert_to_tensor(x)
    attrs = {"dtype": dtypes.as_dtype(dtype)} if dtype is not None else {}
    return _out("ZerosLike", [x], attrs, name)


def ones_like(x, dtype=None, name=None):
    x = convert_to_tensor(x)
    attrs = {"dtype": dtypes.as_dtype(dtype)} if dtype is not None else {}
    return _out("OnesLike", [x], attrs, name)


def add_n(inputs, name=None):
    """The sum of a list of tensors of one shape and dtype."""
    inputs = list(inputs)
    total = inputs[0]
    for t in inputs[1:]:
        total = add(total, t)
    return total if name is None else identity(total, name=name)


# ---------------------------------------------------------------------------------------
# linear algebra and shapes


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    """Matrix product (batched over leading dimensions, which broadcast)."""
    a, b = _to_tensors(a, b, name_hint="MatMul")
    return _out("MatMul", [a, b], {"transpose_a": bool(transpose_a),
                                   "transpose_b": bool(transpose_b)}, name)


def transpose(x, perm=None, name=None):
    """Permute dimensions (reverse them when ``perm`` is None)."""
    x = convert_to_tensor(x)
    if perm is None:
        if x.shape is None:
            raise ShapeError(f"transpose of {x.name}: expected a known rank when perm is "
                             "None, found an unknown rank")
        perm = list(range(len(x.shape)))[::-1]
    return _out("Transpose", [x], {"perm": tuple(int(p) for p in perm)}, name)


def reshape(x, shape, name=None):
    """``x`` with a new shape; one entry may be -1.

    ``shape`` may be a 1-d integer tensor, or a list mixing ints and scalar integer
    tensors (TF1's ``tf.reshape(x, [tf.shape(x)[0], -1])``); the compiler folds it
    when the feed shapes determine it.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 2, 3))
    ...     flat = fg.reshape(x, [fg.shape(x)[0], -1])
    ...     fg.Session().run(flat, {x: np.ones((4, 2, 3), np.float32)}).shape
    (4, 6)
    """
    x = convert_to_tensor(x)
    if isinstance(shape, Tensor) or (isinstance(shape, (list, tuple)) and any(
            isinstance(d, Tensor) for d in shape)):
        return _reshape_to(x, shape, name)
    shape = tuple(-1 if d is None else int(d) for d in shape)
    return _out("Reshape", [x], {"shape": shape}, name)


def _reshape_to(x, shape, name):
    """``reshape`` to the value of a shape tensor (or a list with tensors in it)."""
    if not isinstance(shape, Tensor):
        parts = [d if isinstance(d, Tensor) else constant(-1 if d is None else int(d),
                                                          dtypes.int32) for d in shape]
        for d in parts:
            if d.shape is not None and d.shape != ():
                raise ShapeError(f"reshape of {x.name}: expected the shape's entries to be "
                                 f"ints or scalar tensors, found {d.name} of shape {d.shape}")
            if not dtypes.is_integer(d.dtype):
                raise DTypeError(f"reshape of {x.name}: expected integer shape entries, "
                                 f"found {d.name} of dtype {d.dtype.name}")
        # the static shape keeps the entries given as ints (TF1: [batch, -1, 200] is
        # (?, ?, 200))
        hint = tuple(None if isinstance(d, Tensor) or d is None or int(d) < 0 else int(d)
                     for d in shape)
        shape = stack([cast(d, dtypes.int32) for d in parts])
    else:
        hint = None
    from .ops import static_value
    known = static_value(shape)
    if known is not None:                      # known now: a plain Reshape
        return reshape(x, [int(d) for d in known], name)
    return _out("ReshapeTo", [x, shape], {"hint": hint}, name=name or "reshape")


def reshape_like(x, like, name=None):
    """``x`` reshaped to the run-time shape of ``like``."""
    return _out("ReshapeLike", [convert_to_tensor(x), convert_to_tensor(like)], name=name)


def broadcast_like(x, like, name=None):
    """``x`` broadcast to the run-time shape of ``like``."""
    return _out("BroadcastLike", [convert_to_tensor(x), convert_to_tensor(like)], name=name)


def sum_like(x, like, name=None):
    """``x`` summed down to the run-time shape of ``like`` (undoes broadcasting)."""
    return _out("SumLike", [convert_to_tensor(x), convert_to_tensor(like)], name=name)


def expand_dims(x, axis, name=None):
    """Insert a dimension of size 1 at ``axis``."""
    return _out("ExpandDims", [convert_to_tensor(x)], {"axis": int(axis)}, name)


def squeeze(x, axis=None, name=None, squeeze_dims=None):
    """Remove dimensions of size 1 (all of them when ``axis`` is None and known);
    ``squeeze_dims`` is TF1's older name of ``axis``."""
    x = convert_to_tensor(x)
    axis = _alias("squeeze", "axis", axis, "squeeze_dims", squeeze_dims)
    if axis is None:
        if x.shape is None or None in x.shape:
            raise ShapeError(f"squeeze of {x.name}: expected a known shape when axis is "
                             f"None, found {S.fmt(x.shape)}")
        axis = tuple(i for i, d in enumerate(x.shape) if d == 1)
    return _out("Squeeze", [x], {"axis": axis}, name)


def concat(values, axis, name=None):
    """Join tensors along ``axis``."""
    values = _to_tensors(*values, name_hint="Concat")
    return _out("Concat", values, {"axis": int(axis)}, name)


def split(x, num_or_size_splits, axis=0, name=None):
    """Split ``x`` along ``axis`` into ``num`` equal parts or parts of the given sizes
    (one size may be -1: the rest of the dimension, as TF1)."""
    x = convert_to_tensor(x)
    if isinstance(num_or_size_splits, numbers.Integral):
        num = int(num_or_size_splits)
        dim = None if x.shape is None else x.shape[S.normalize_axis(axis, len(x.shape))]
        if dim is None:
            raise ShapeError(f"split of {x.name}: expected a known dimension {axis} to split "
                             f"into {num} parts, found shape {S.fmt(x.shape)}")
        if num <= 0 or dim % num:
            raise ShapeError(f"split of {x.name}: expected dimension {axis} ({dim}) to be "
                             f"divisible by {num}")
        sizes = (dim // num,) * num
    else:
        sizes = tuple(int(s) for s in num_or_size_splits)
        if -1 in sizes:
            sizes = _infer_split_size(x, sizes, axis)
    if x.shape is not None:
        axis = S.normalize_axis(axis, len(x.shape))
    return list(_op("Split", [x], {"axis": int(axis), "sizes": sizes}, name).outputs)


def _infer_split_size(x, sizes, axis):
    """TF1's ``size_splits`` with one ``-1``: that part takes the rest of the (static)
    dimension."""
    dim = None if x.shape is None else x.shape[S.normalize_axis(axis, len(x.shape))]
    rest = sum(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or dim is None or rest > dim:
        raise ShapeError(f"split of {x.name}: expected at most one -1 in sizes {list(sizes)} "
                         f"and a known dimension {axis} of at least {rest}, found shape "
                         f"{S.fmt(x.shape)}")
    return tuple(dim - rest if s == -1 else s for s in sizes)


def split_like(x, likes, axis, name=None):
    """``x`` cut along ``axis`` into pieces the run-time sizes of ``likes``."""
    x = convert_to_tensor(x)
    if x.shape is not None:
        axis = S.normalize_axis(axis, len(x.shape))
    return list(_op("SplitLike", [x] + list(likes), {"axis": int(axis)}, name).outputs)


def stack(values, axis=0, name=None):
    """Stack tensors of one shape along a new ``axis``."""
    values = _to_tensors(*values, name_hint="Stack")
    return concat([expand_dims(v, axis) for v in values], axis, name=name)


def unstack(x, num=None, axis=0, name=None):
    """The slices of ``x`` along ``axis``, as a list."""
    x = convert_to_tensor(x)
    if x.shape is None:
        raise ShapeError(f"unstack of {x.name}: expected a known rank")
    axis = S.normalize_axis(axis, len(x.shape))
    num = num if num is not None else x.shape[axis]
    if num is None:
        raise ShapeError(f"unstack of {x.name}: expected a known dimension {axis} or num=, "
                         f"found shape {S.fmt(x.shape)}")
    return [squeeze(part, axis) for part in split(x, [1] * num, axis, name=name)]


def strided_slice(x, spec, name=None):
    """``x[spec]`` for a normalized static index spec (see ``Tensor.__getitem__``)."""
    return _out("StridedSlice", [convert_to_tensor(x)], {"spec": tuple(spec)}, name)


def slice_grad(g, like, spec, name=None):
    """Zeros shaped like ``like`` with ``g`` written at ``like[spec]``."""
    return _out("SliceGrad", [convert_to_tensor(g), convert_to_tensor(like)],
                {"spec": tuple(spec)}, name)


def _normalize_index(key):
    if not isinstance(key, tuple):
        key = (key,)
    spec = []
    for k in key:
        if k is Ellipsis:
            spec.append(("ellipsis",))
        elif k is None:
            spec.append(("newaxis",))
        elif isinstance(k, slice):
            parts = []
            for part in (k.start, k.stop, k.step):
                if part is not None and not isinstance(part, numbers.Integral):
                    raise TypeError(f"expected static int slice bounds, found {part!r}")
                parts.append(None if part is None else int(part))
            if parts[2] == 0:
                raise ValueError("slice step cannot be zero")
            spec.append(("slice", *parts))
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool):
            spec.append(("index", int(k)))
        else:
            raise TypeError(f"expected static indices (ints, slices, None, ...), found "
                            f"{type(k).__name__}; use fg.gather for tensor indices")
    if sum(1 for e in spec if e[0] == "ellipsis") > 1:
        raise ValueError("an index can only have a single ellipsis")
    return tuple(spec)


def gather(params, indices, axis=0, name=None):
    """Rows of ``params`` (along ``axis``) picked by integer ``indices``; out-of-range
    indices raise ``InvalidArgumentError`` at run time.
    """
    params = convert_to_tensor(params)
    indices = convert_to_tensor(indices)
    if axis == 0:
        return _out("Gather", [params, indices], name=name)
    if params.shape is None:
        raise ShapeError(f"gather of {params.name} along axis {axis}: expected a known rank")
    rank = len(params.shape)
    axis = S.normalize_axis(axis, rank)
    perm = [axis] + [i for i in range(rank) if i != axis]
    moved = gather(transpose(params, perm), indices)
    k = indices.ndim
    back = list(range(k, k + axis)) + list(range(k)) + list(range(k + axis, k + rank - 1))
    return transpose(moved, back, name=name)


def gather_grad(g, indices, like, name=None):
    """Zeros shaped like ``like`` with the rows of ``g`` added at ``indices``."""
    return _out("GatherGrad", [convert_to_tensor(g), convert_to_tensor(indices),
                               convert_to_tensor(like)], name=name)


def gather_grad_sq(g, indices, like, name=None):
    """``reduce_sum(square(gather_grad(g, indices, like)))`` from the rows used only:
    the squared norm of an embedding's gradient without its table of zeros.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     sq = gather_grad_sq(np.ones((3, 2)), np.array([4, 1, 4]), np.zeros((5, 2)))
    ...     float(fg.Session().run(sq))      # rows 1 and 4: 1 + 1 + 4 + 4
    10.0
    """
    return _out("GatherGradSq", [convert_to_tensor(g), convert_to_tensor(indices),
                                 convert_to_tensor(like)], name=name)


def one_hot(indices, depth, dtype=dtypes.float32, on_value=None, off_value=None, name=None,
            axis=-1):
    """One-hot rows of length ``depth``; out-of-range indices give rows of zeros. With
    ``axis`` (TF1), the new ``depth`` axis goes there instead of last."""
    dtype = dtypes.as_dtype(dtype)
    if int(depth) < 0:
        raise ShapeError(f"one_hot: expected a depth >= 0, found {depth}")
    indices = convert_to_tensor(indices)
    last = axis in (-1, None) or (indices.shape is not None and axis == len(indices.shape))
    out = _out("OneHot", [indices], {"depth": int(depth), "dtype": dtype},
               name if last and on_value is None and off_value is None else None)
    if on_value is not None or off_value is not None:
        on = 1 if on_value is None else on_value
        off = 0 if off_value is None else off_value
        out = add(multiply(out, on - off), off, name=name if last else None)
    if not last:
        if indices.shape is None or not -len(indices.shape) - 1 <= axis <= len(indices.shape):
            raise ShapeError(f"one_hot of {indices.name}: expected axis -1 or in "
                             f"[0, {0 if indices.shape is None else len(indices.shape)}] for "
                             f"indices of shape {S.fmt(indices.shape)}, found {axis}")
        r = len(indices.shape)
        axis = axis % (r + 1)
        perm = list(range(axis)) + [r] + list(range(axis, r))
        out = transpose(out, perm, name=name)
    return out


def sparse_softmax_xent(logits, labels, name=None):
    """``(loss, probs)`` per row: ``logsumexp(logits) - logits[label]`` and
    ``softmax(logits)``, in one row kernel (no one-hot). Use
    ``fg.nn.sparse_softmax_cross_entropy_with_logits``, which checks the labels first.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     loss, probs = sparse_softmax_xent(fg.constant([[0.0, 0.0]]), [1])
    ...     fg.Session().run(probs)
    array([[0.5, 0.5]], dtype=float32)
    """
    op = _op("SparseSoftmaxXent", [convert_to_tensor(logits), convert_to_tensor(labels)],
             name=name)
    return op.outputs[0], op.outputs[1]


def softmax_xent(logits, labels, name=None):
    """``(loss, probs)`` per row for labels of the logits' shape:
    ``sum(labels) * logsumexp(logits) - sum(labels * logits)`` (which is
    ``-sum(labels * log_softmax(logits))``) and ``softmax(logits)``, in one row kernel.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     loss, _ = softmax_xent(fg.constant([[0.0, 0.0]]), fg.constant([[0.5, 0.5]]))
    ...     round(float(fg.Session().run(loss)[0]), 4)
    0.6931
    """
    op = _op("SoftmaxXent", [convert_to_tensor(logits), convert_to_tensor(labels)],
             name=name)
    return op.outputs[0], op.outputs[1]


def sparse_softmax_xent_grad(probs, labels, g, name=None):
    """``g[..., None] * (probs - one_hot(labels))``, one pass over the rows: the
    gradient of :func:`sparse_softmax_xent`'s loss from its ``probs``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     probs = fg.constant([[0.5, 0.5]])
    ...     fg.Session().run(sparse_softmax_xent_grad(probs, [1], fg.constant([2.0])))
    array([[ 1., -1.]], dtype=float32)
    """
    return _out("SparseSoftmaxXentGrad", [convert_to_tensor(t) for t in (probs, labels, g)],
                name=name)


# ---------------------------------------------------------------------------------------
# reductions


def _axes_attr(x, axis):
    if axis is None:
        return None
    if isinstance(axis, numbers.Integral):
        return int(axis)
    return tuple(int(a) for a in axis)


def _alias(fn_name, name, value, old_name, old_value):
    """``value``, or TF1's deprecated spelling ``old_value`` of the same argument
    (``squeeze_dims=``, ``dim=``); both given is a ``ValueError``, as TF1."""
    if old_value is None:
        return value
    if value is not None:
        raise ValueError(f"{fn_name}: expected {name}= or {old_name}=, found both")
    return old_value


def tf1_reduction_args(fn_name, axis, keepdims, reduction_indices, keep_dims):
    """``(axis, keepdims)`` from TF1's aliases ``reduction_indices=`` and ``keep_dims=``.

    >>> tf1_reduction_args("reduce_sum", None, False, [1], True)
    ([1], True)
    """
    if reduction_indices is not None:
        if axis is not None:
            raise ValueError(f"{fn_name}: expected axis= or reduction_indices=, found both")
        axis = reduction_indices
    if keep_dims is not None:
        keepdims = keep_dims
    return axis, bool(keepdims)


def reduce_sum(x, axis=None, keepdims=False, name=None, reduction_indices=None,
               keep_dims=None):
    """Sum over ``axis`` (all axes when None). ``reduction_indices`` and ``keep_dims``
    are TF1's names for ``axis`` and ``keepdims``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.Session().run(fg.reduce_sum([[1, 2], [3, 4]], reduction_indices=1))
    array([3, 7], dtype=int32)
    """
    axis, keepdims = tf1_reduction_args("reduce_sum", axis, keepdims, reduction_indices,
                                        keep_dims)
    x = convert_to_tensor(x)
    if x.dtype == dtypes.bool_:
        x = cast(x, dtypes.DEFAULT_INT)
    return _out("ReduceSum", [x], {"axis": _axes_attr(x, axis), "keepdims": bool(keepdims)},
                name)


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):
    """Cumulative sum along ``axis`` (TF1's ``tf.cumsum``; a negative axis counts from
    the end): ``[a, b, c]`` gives ``[a, a + b, a + b + c]``. ``exclusive=True`` leaves
    each element out of its own sum (``[0, a, a + b]``), ``reverse=True`` sums from the
    end (``[a + b + c, b + c, c]``). Numeric dtypes, kept (int32 stays int32); the
    gradient is the cumsum of the gradient the other way round, as in TF1. ``axis`` is
    a Python int (TF1 also takes a tensor).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([1, 2, 3])
    ...     fg.Session().run([fg.cumsum(x), fg.cumsum(x, exclusive=True, reverse=True)])
    [array([1, 3, 6], dtype=int32), array([5, 3, 0], dtype=int32)]
    """
    if isinstance(axis, (Tensor, bool)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"cumsum: expected a Python int axis, found {axis!r}")
    x = convert_to_tensor(x)
    return _out("Cumsum", [x], {"axis": int(axis), "exclusive": bool(exclusive),
                                "reverse": bool(reverse)}, name)


def cumprod(x, axis=0, exclusive=False, reverse=False, name=None):
    """Cumulative product along ``axis`` (TF1's ``tf.cumprod``, ``tf.math.cumprod``; a
    negative axis counts from the end): ``[a, b, c]`` gives ``[a, a * b, a * b * c]``;
    ``exclusive=True`` gives ``[1, a, a * b]``, ``reverse=True`` ``[a * b * c, b * c,
    c]``. Numeric dtypes, kept. The gradient is TF1's, ``cumsum(cumprod(x) * g)`` the
    other way round divided by ``x``: as in TF1 it is NaN or infinite where an input is
    exactly 0 (correct for non-zero inputs), to any order. ``axis`` is a Python int.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([1, 2, 3])
    ...     fg.Session().run([fg.cumprod(x), fg.cumprod(x, exclusive=True, reverse=True)])
    [array([1, 2, 6], dtype=int32), array([6, 3, 1], dtype=int32)]
    """
    if isinstance(axis, (Tensor, bool)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"cumprod{location_suffix('called')}: expected a Python int axis, "
                        f"found {axis!r}")
    x = convert_to_tensor(x)
    return _out("Cumprod", [x], {"axis": int(axis), "exclusive": bool(exclusive),
                                 "reverse": bool(reverse)}, name)


def reduce_max(x, axis=None, keepdims=False, name=None, reduction_indices=None,
               keep_dims=None):
    """Maximum over ``axis``; the gradient is shared equally among ties."""
    axis, keepdims = tf1_reduction_args("reduce_max", axis, keepdims, reduction_indices,
                                        keep_dims)
    x = convert_to_tensor(x)
    return _out("ReduceMax", [x], {"axis": _axes_attr(x, axis), "keepdims": bool(keepdims)},
                name)


def reduce_mean(x, axis=None, keepdims=False, name=None, reduction_indices=None,
                keep_dims=None):
    """Mean over ``axis`` (integers give float64, as NumPy does)."""
    axis, keepdims = tf1_reduction_args("reduce_mean", axis, keepdims, reduction_indices,
                                        keep_dims)
    x = convert_to_tensor(x)
    total = reduce_sum(x, axis, keepdims)
    if x.shape is not None:
        axes = S.normalize_axes(_axes_attr(x, axis), len(x.shape))
        dims = [x.shape[a] for a in axes]
        if None not in dims:
            count = int(np.prod(dims))
            if dtypes.is_floating(x.dtype):
                return multiply(total, 1.0 / count if count else float("nan"), name=name)
            return divide(total, count, name=name)
    count = _out("Size", [x], {"axis": _axes_attr(x, axis),
                               "dtype": x.dtype if dtypes.is_floating(x.dtype)
                               else x.dtype})
    return divide(total, count, name=name)


# ---------------------------------------------------------------------------------------
# control


def group(*ops, name=None):
    """An operation that runs all of ``ops`` (operations, tensors or lists of them)."""
    flat = []
    for o in ops:
        if isinstance(o, (list, tuple)):
            flat.extend(o)
        else:
            flat.append(o)
    deps = [o.op if isinstance(o, Tensor) else o for o in flat]
    graph = deps[0].graph if deps else get_default_graph()
    return graph.create_op("NoOp", [], name=name or "group_deps", control_inputs=deps)


def no_op(name=None):
    """An operation that does nothing."""
    return get_default_graph().create_op("NoOp", [], name=name or "NoOp")


def copy_to(x, device, name=None):
    """``x`` copied to ``device`` (placement inserts these automatically)."""
    x = convert_to_tensor(x)
    return x.graph.create_op("Copy", [x], name=name or "copy", device=device).outputs[0]


# ---------------------------------------------------------------------------------------
# operators on tensors


def _rev(fn):
    return lambda self, other: fn(other, self)


def _getitem(self, key):
    return strided_slice(self, _normalize_index(key))


OPERATORS = {
    "__add__": add, "__radd__": _rev(add),
    "__sub__": subtract, "__rsub__": _rev(subtract),
    "__mul__": multiply, "__rmul__": _rev(multiply),
    "__truediv__": divide, "__rtruediv__": _rev(divide),
    "__matmul__": matmul, "__rmatmul__": _rev(matmul),
    "__neg__": negative, "__abs__": abs,
    "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
    "__getitem__": _getitem,
}


def install_operators(cls, operators=OPERATORS):
    """Set ``operators`` (``{"__add__": add, ...}``) as methods of ``cls`` (``Tensor``,
    ``Variable``); ``**``, ``//``, ``%`` and the bool operators come from
    :mod:`flowgraph.tf1_operators`, which installs its own table this way."""
    for attr, fn in operators.items():
        setattr(cls, attr, fn)


install_operators(Tensor)
