"""CPU kernels that are not generated: BLAS matmul, reductions, concatenation.

Each builder takes the plan's preallocated arrays (inputs, then outputs) and returns a
zero-argument callable with everything prebound, so the plan's run loop is just
``for step in steps: step()``. Matmul calls NumPy's BLAS (``np.matmul(..., out=)``):
calling BLAS from the plan needs no SciPy, unlike ``np.dot`` inside ``@njit``.
Fused elementwise kernels are Numba-generated (:mod:`kernels.cpu.codegen`).

>>> import numpy as np
>>> a, b, out = np.ones((2, 3)), np.ones((3, 4)), np.empty((2, 4))
>>> step = build("MatMul", {"transpose_a": False, "transpose_b": False}, [a, b], [out])
>>> _ = step(); float(out[0, 0])
3.0
"""
from __future__ import annotations

import numpy as np

from flowgraph.shapes import normalize_axes

from .. import register
from . import scatter, softmax_xent, transpose  # noqa: F401 - register their kernels
from . import patches  # noqa: F401 - ExtractPatches / PatchesGrad (conv2d's im2col)


def build(op_type, attrs, inputs, outputs):
    """The prebound step for ``op_type``, or ``None`` if there is no CPU kernel (the
    plan then calls the NumPy reference kernel).
    """
    from .. import lookup
    builder = lookup(op_type, "cpu")
    return None if builder is None else builder(attrs, inputs, outputs)


@register("MatMul", "cpu")
def matmul(attrs, inputs, outputs):
    a, b = inputs
    if a.dtype.kind != "f" or a.ndim != 2 or b.ndim != 2:
        return None
    if attrs["transpose_a"]:
        a = a.T
    if attrs["transpose_b"]:
        b = b.T
    out = outputs[0]
    mm = np.matmul
    return lambda: mm(a, b, out=out)


@register("SliceGrad", "cpu")
def slice_grad(attrs, inputs, outputs):
    """Zeros with ``g`` written into the slice ``spec`` (the gradient of a slice)."""
    from flowgraph.ops import slice_spec_to_index
    g, _ = inputs
    out = outputs[0]
    if out.dtype.kind != "f":
        return None
    index = slice_spec_to_index(attrs["spec"])
    try:
        window = out[index]
    except IndexError:
        return None       # the reference raises the error
    if np.shape(window) != g.shape:
        return None
    if not isinstance(window, np.ndarray):     # one element: no view to bind

        def one():
            out.fill(0)
            out[index] = g
        return one
    copyto = np.copyto

    def step():
        out.fill(0)
        copyto(window, g)
    return step


def _reduce(fn):
    def builder(attrs, inputs, outputs):
        x, = inputs
        axes = normalize_axes(attrs["axis"], x.ndim)
        if any(x.shape[a] == 0 for a in axes) and fn is np.max:
            return None   # the reference raises the error
        if x.dtype.kind not in "f":
            return None
        out = outputs[0].reshape(tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
        return lambda: fn(x, axis=axes, out=out, keepdims=True)
    return builder


_sum = _reduce(np.sum)


@register("ReduceSum", "cpu")
def reduce_sum(attrs, inputs, outputs):
    """``np.sum``, except sums over the leading axes of a C-contiguous float array
    (the bias gradient of a dense layer or of an unrolled RNN, ``sum(dZ, axis=0)``;
    a loop's bias gradient over its stacked rows, ``sum(dZs, axis=(0, 1))``), which
    are ``ones @ x`` over the array seen as a matrix (the leading axes its rows), a
    BLAS GEMV: 2-2.5x faster than ``np.sum(x, axis=0)`` at 64x256 to 3200x768 and
    1.7x at 6400x1536 (float32, one AVX2 core of the 2-vCPU AMD EPYC, CPU time);
    ``np.sum`` over two axes of a [20, 16, 256] float32 array took 12 us, the GEMV
    3 us (AVX-512 EPYC). Both add the rows in sequence in the input's dtype (NumPy's
    pairwise summation is along the contiguous axis only), so the rounding is alike;
    a sum of negative zeros may come out as +0.0 instead of -0.0 (equal values)."""
    x, = inputs
    out = outputs[0]
    axes = tuple(sorted(normalize_axes(attrs["axis"], x.ndim))) if x.ndim else ()
    lead = len(axes)
    if (x.ndim >= 2 and 0 < lead < x.ndim and axes == tuple(range(lead))
            and x.dtype in (np.float32, np.float64) and x.flags.c_contiguous
            and out.dtype == x.dtype and out.flags.c_contiguous):
        rows = int(np.prod(x.shape[:lead]))
        if rows > 1 and x.size:
            matrix = x.reshape(rows, x.size // rows)
            ones = np.ones(rows, x.dtype)
            column = out.reshape(matrix.shape[1])
            mm = np.matmul
            return lambda: mm(ones, matrix, out=column)
    return _sum(attrs, inputs, outputs)


register("ReduceMax", "cpu")(_reduce(np.max))
register("ReduceProd", "cpu")(_reduce(np.prod))


@register("Concat", "cpu")
def concat(attrs, inputs, outputs):
    xs, out, axis = tuple(inputs), outputs[0], attrs["axis"]
    cat = np.concatenate
    return lambda: cat(xs, axis=axis, out=out)


@register("BroadcastTo", "cpu")
def copy_to(attrs, inputs, outputs):
    x, out = inputs[0], outputs[0]
    copyto = np.copyto
    return lambda: copyto(out, x)


@register("Copy", "cpu")
def copy_step(attrs, inputs, outputs):
    """``np.copyto``, except a transposed matrix (:mod:`kernels.cpu.transpose`: a
    Numba kernel, 2.7x faster at 192x512 float32), which compiles: see
    ``compiles_when``."""
    if transpose.transposes(attrs, inputs, outputs):
        return transpose.transposed_copy_step(attrs, inputs, outputs)
    return copy_to(attrs, inputs, outputs)


copy_step.compiles_when = transpose.transposes


@register("Reshape", "cpu")
def reshape_copy(attrs, inputs, outputs):
    # Only reached where the plan could not make the reshape a view (a strided input,
    # such as one time step split out of a batch): one copy, through a view of the
    # output with the input's shape (no temporary).
    x, out = inputs[0], outputs[0]
    copyto = np.copyto
    target = _reshaped_view(out, x.shape)
    if target is not None:
        return lambda: copyto(target, x)
    source = _reshaped_view(x, out.shape)
    if source is not None:
        return lambda: copyto(out, source)
    return None


def _reshaped_view(a, shape):
    """``a`` seen with ``shape`` without a copy, or ``None`` where that takes a copy
    (setting ``.shape`` refuses what ``reshape`` would silently copy)."""
    view = a.view()
    try:
        view.shape = shape
    except (AttributeError, ValueError):
        return None
    return view


# --- index ops: in place, no temporaries. An index out of range raises here, and the
# plan's replay on the reference kernels then reports the specified error. ------------

def _in_range(indices, n):
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise IndexError(f"an index outside [0, {n})")


@register("Gather", "cpu")
def gather(attrs, inputs, outputs):
    params, indices = inputs
    out = outputs[0]
    if not out.flags.c_contiguous or params.ndim == 0:
        return None
    take, n = np.take, params.shape[0]

    # mode="clip" once the indices are checked: the same rows, and no temporary
    # (NumPy's default "raise" with out= buffers the output: a [48, 32] gather of 64
    # float32 columns took 29 us against 9 us, one core).
    def gather_rows():
        _in_range(indices, n)
        take(params, indices, axis=0, out=out, mode="clip")
    return gather_rows


# GatherGrad's CPU kernel is the Numba scatter-add of kernels/cpu/scatter.py (registered
# when this module imports it): a second registration here would replace it.


@register("OneHot", "cpu")
def one_hot(attrs, inputs, outputs):
    indices, out = inputs[0], outputs[0]
    # out-of-range indices give all-zero rows (as the reference, and TensorFlow)
    expanded, depth = indices[..., None], np.arange(attrs["depth"])
    equal = np.equal
    return lambda: equal(expanded, depth, out=out)
