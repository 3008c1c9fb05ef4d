"""Dtypes and type promotion.

flowgraph's dtypes are plain :class:`numpy.dtype` objects, so anything NumPy accepts
as a dtype is accepted here (``fg.float32``, ``np.float32``, ``"float32"``).

Promotion rules (documented in the README):

* Between tensors and NumPy arrays: NumPy's rules (``np.promote_types``).
* A Python scalar is *weak*: it takes the dtype of the tensor it meets, as in NumPy 2
  and JAX. ``x_float32 * 2.0`` stays float32; ``x_int32 + 1`` stays int32. A Python
  float meeting an integer or bool tensor gives the default float (float32); a Python
  int meeting a bool tensor gives the default int (int32).

>>> import flowgraph as fg
>>> fg.dtypes.result_type(fg.float32, fg.float64)
dtype('float64')
"""
from __future__ import annotations

import numpy as np

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

SUPPORTED = (float32, float64, int32, int64, bool_)
DEFAULT_FLOAT = float32
DEFAULT_INT = int32

# TensorFlow 1.x dtype names that NumPy reads differently: NumPy's "float" is float64,
# TF1's is float32 (a TF1 program's dtype="float" must not silently become float64).
TF1_NAMES = {"float": float32, "double": float64}

_KIND_ORDER = {"b": 0, "i": 1, "u": 1, "f": 2}


def as_dtype(value) -> np.dtype:
    """Return the flowgraph dtype for ``value`` (a dtype, type or string).

    >>> as_dtype("float64")
    dtype('float64')
    >>> as_dtype("float"), as_dtype("double")    # TF1's names, not NumPy's
    (dtype('float32'), dtype('float64'))
    """
    from .errors import DTypeError

    if isinstance(value, str) and value in TF1_NAMES:
        return TF1_NAMES[value]
    try:
        dtype = np.dtype(value)
    except TypeError as exc:
        raise DTypeError(f"expected a dtype, found {value!r}") from exc
    if dtype not in SUPPORTED:
        raise DTypeError(
            f"expected one of {', '.join(d.name for d in SUPPORTED)}, found {dtype.name}")
    return dtype


def is_floating(dtype) -> bool:
    """True for float32 and float64."""
    return np.dtype(dtype).kind == "f"


def is_integer(dtype) -> bool:
    """True for the integer dtypes."""
    return np.dtype(dtype).kind in "iu"


def result_type(*dtypes) -> np.dtype:
    """NumPy promotion between strong dtypes."""
    out = np.dtype(dtypes[0])
    for d in dtypes[1:]:
        out = np.promote_types(out, d)
    return out


def weak_dtype(value, strong: np.dtype) -> np.dtype:
    """The dtype a Python scalar (or nested list) takes when it meets a tensor of dtype
    ``strong``.

    The value adopts ``strong`` unless it is of a higher kind (a float meeting an
    integer tensor), in which case the result is the default dtype of its kind.

    >>> weak_dtype(2.0, float64), weak_dtype(2.0, int32)
    (dtype('float64'), dtype('float32'))
    """
    kind = _python_scalar_kind(value) if is_python_scalar(value) else np.asarray(value).dtype.kind
    if _KIND_ORDER[kind] <= _KIND_ORDER[strong.kind]:
        return strong
    return DEFAULT_FLOAT if kind == "f" else DEFAULT_INT


def default_dtype_for_python(value) -> np.dtype:
    """The dtype of a Python scalar or nested list converted on its own."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return DEFAULT_FLOAT
    if arr.dtype.kind in "iu":
        return DEFAULT_INT
    if arr.dtype.kind == "b":
        return bool_
    from .errors import DTypeError

    raise DTypeError(f"expected numbers or booleans, found {arr.dtype} from {value!r:.80}")


def _python_scalar_kind(scalar) -> str:
    if isinstance(scalar, (bool, np.bool_)):
        return "b"
    if isinstance(scalar, int):
        return "i"
    return "f"


def is_python_scalar(value) -> bool:
    """True for ``bool``, ``int`` and ``float`` (not NumPy scalars: those are strong)."""
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)
