"""numba.cuda kernels for every primitive, registered as ``(op type, "gpu")`` in
:mod:`kernels`.

A GPU kernel function has the signature ``fn(op, ctx, *inputs) -> tuple of device
arrays``: ``inputs`` are device arrays (contiguous, C order), ``ctx`` is the run's
:class:`GpuContext` (its stream, and the error buffer that index checks write to).
Launches are asynchronous on ``ctx.stream``; the host never waits inside a kernel
function. Elementwise ops are generated from the scalar templates
(:mod:`kernels.cuda.codegen`); the others are a handful of reusable kernels:

- ``strided_copy``: transpose, broadcast, slicing, slice gradients, concat and split
  are all "copy elements between two strided views", with the strides computed on
  the host;
- reductions (sums, maxima) over any axes: a thread per output when outputs are many,
  else a block per output combining in shared memory; cumulative sums: a thread per
  line along the axis;
- a tiled shared-memory matmul (register-blocked) with the transpose flags and batch
  dimensions;
- gather (with index checks), the gather gradient (atomic adds) and one_hot;
- image patches (im2col, a thread per patch element) and their adjoint (col2im, a
  thread per image element gathering its taps in order: no atomics);
- the softmax cross-entropy over class indices and its gradient (row kernels).

Run-time errors found on the device (an index out of range, an integer division by
zero) are recorded in ``ctx.err`` as a code naming the op and raised by the plan after
the stream is synchronized, so a bad index never reads out of bounds and never stalls
the stream.

>>> contiguous_strides((2, 3, 4))
(12, 4, 1)
"""
from __future__ import annotations

import functools

import numpy as np

from flowgraph import shapes as S
from flowgraph.errors import InvalidArgumentError, ShapeError
from flowgraph.ops import slice_spec_to_index

from . import codegen
from . import runtime as rt
from .templates import render_kernel
from .. import lookup, register  # noqa: F401  (lookup: used by the CUDA backend)


# --- the run's context ---------------------------------------------------------------

class GpuContext:
    """One run on the GPU: a stream, an error buffer, and what each error code means.

    ``err`` holds ``[code, detail]``; a kernel that finds bad input writes its code
    (and the bad value) there and goes on without touching memory it must not.
    """

    def __init__(self):
        self.stream = rt.new_stream()
        self.err = rt.to_device(np.zeros(2, np.int64), self.stream)
        self._codes: dict[int, tuple] = {}

    def code(self, op, message_format, **info) -> int:
        """A fresh error code for ``op``; ``message_format`` is formatted with ``info``
        and ``found`` (the bad value the kernel recorded)."""
        code = len(self._codes) + 1
        self._codes[code] = (op, message_format, info)
        return code

    def raise_recorded_error(self):
        """After the stream is synchronized: raise the error a kernel recorded, if any."""
        recorded = self.err.copy_to_host(stream=self.stream)
        self.stream.synchronize()  # every launch of the run, and this copy, are done
        code, found = int(recorded[0]), int(recorded[1])
        if code:
            from flowgraph.errors import describe_op
            op, fmt, info = self._codes[code]
            raise InvalidArgumentError(f"{describe_op(op)}: "
                                       f"{fmt.format(found=found, **info)}")


# --- shape helpers ---------------------------------------------------------------------

def contiguous_strides(shape) -> tuple:
    """Element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for d in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(d), 1)
    return tuple(reversed(strides))


def broadcast_strides(in_shape, out_shape) -> tuple:
    """Element strides that read a contiguous ``in_shape`` array as ``out_shape``
    (0 along broadcast dimensions)."""
    in_shape, out_shape = tuple(in_shape), tuple(out_shape)
    lead = len(out_shape) - len(in_shape)
    own = contiguous_strides(in_shape)
    return tuple(0 if i < lead or in_shape[i - lead] == 1 and out_shape[i] != 1
                 else own[i - lead] for i in range(len(out_shape)))


def _kshape(shape) -> tuple:
    """Kernel metadata tuples are never empty (a 0-d array is one element)."""
    return tuple(int(d) for d in shape) or (1,)


def _kstrides(strides) -> tuple:
    return tuple(int(s) for s in strides) or (0,)


def flat(arr):
    """A 1-d view of a contiguous device array."""
    if arr.ndim == 1:
        return arr
    return arr.reshape(max(arr.size, 1) if arr.ndim == 0 else arr.size)


def view_of(arr, shape):
    """``arr`` (contiguous) seen with ``shape``: no copy."""
    shape = tuple(int(d) for d in shape)
    return arr if tuple(arr.shape) == shape else arr.reshape(shape)


def _size(shape) -> int:
    return int(np.prod(shape)) if len(shape) else 1


# --- reusable kernels ------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _kernel(name, **constants):
    """The compiled kernel ``name`` of :mod:`kernels.cuda.templates` for ``constants``."""
    return codegen.load_kernel(render_kernel(name, **constants), name)


def strided_copy(ctx, shape, src, src_off, src_st, dst, dst_off, dst_st):
    """Copy ``prod(shape)`` elements between two strided views of flat arrays."""
    n = _size(shape)
    if n == 0:
        return
    blocks, threads = rt.launch_config(n)
    _kernel("strided_copy")[blocks, threads, ctx.stream](
        n, _kshape(shape), flat(src), int(src_off), _kstrides(src_st), flat(dst),
        int(dst_off), _kstrides(dst_st))


def filled(ctx, shape, dtype, value):
    """A new device array of ``shape`` filled with ``value``."""
    out = rt.empty(shape, dtype, ctx.stream)
    n = _size(shape)
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel("fill")[blocks, threads, ctx.stream](n, flat(out), np.dtype(dtype).type(value))
    return out


def materialize(ctx, arr, in_shape_strides, out_shape, dtype, offset=0):
    """A new contiguous ``out_shape`` array read from ``arr`` through strides."""
    out = rt.empty(out_shape, dtype, ctx.stream)
    strided_copy(ctx, out_shape, arr, offset, in_shape_strides, out, 0,
                 contiguous_strides(out_shape))
    return out


# --- elementwise (fused groups) ----------------------------------------------------------

def elementwise_group(ctx, spec_ops, outputs_wanted, out_shape, out_dtypes, inputs, code=0):
    """Run a fused elementwise group.

    ``spec_ops``: ``(op_type, attrs, operands, out_dtype, int_div_check)`` per op (see
    :class:`kernels.cuda.codegen.FusedSpec`); ``outputs_wanted``: indices of the ops
    whose results are returned; ``inputs``: device arrays broadcastable to
    ``out_shape``. Returns the wanted outputs, each of ``out_shape``.
    """
    out_shape = tuple(int(d) for d in out_shape)
    modes, strides = [], []
    for arr in inputs:
        if tuple(np.broadcast_shapes(tuple(arr.shape), out_shape)) != out_shape:
            raise ValueError(f"shape {tuple(arr.shape)} does not broadcast to {out_shape}")
        if tuple(arr.shape) == out_shape:
            modes.append("full")
            strides.append((0,))
        elif arr.size == 1:
            modes.append("scalar")
            strides.append((0,))
        else:
            modes.append("bcast")
            strides.append(_kstrides(broadcast_strides(arr.shape, out_shape)))
    spec = codegen.FusedSpec(tuple(spec_ops), tuple(modes), tuple(outputs_wanted))
    outs = [rt.empty(out_shape, out_dtypes[j], ctx.stream) for j in outputs_wanted]
    codegen.launch(spec, _kshape(out_shape), [flat(o) for o in outs],
                   [flat(a) for a in inputs], strides, ctx.err, code, ctx.stream)
    return outs


def spec_entry(op, operands):
    """The fused-kernel description of one elementwise op."""
    from flowgraph.primitives import get_primitive
    attrs = tuple(sorted((k, v) for k, v in op.attrs.items() if k == "exponent"))
    int_div = get_primitive(op.type).int_div and op.inputs[0].dtype.kind in "iu"
    return (op.type, attrs, tuple(operands), op.outputs[0].dtype.name, int_div)


def _elementwise_op(op, ctx, *inputs):
    out_shape = np.broadcast_shapes(*(tuple(a.shape) for a in inputs))
    code = ctx.code(op, "integer division by zero") if spec_entry(op, [])[4] else 0
    entry = spec_entry(op, [("in", k) for k in range(len(inputs))])
    return tuple(elementwise_group(ctx, [entry], [0], out_shape,
                                   [op.outputs[0].dtype], list(inputs), code))


def _alias(op, ctx, x):
    return (x,)


def _register_elementwise():
    """Every primitive with a scalar template runs as a generated kernel (an alias
    returns its input: one device array, no copy)."""
    from flowgraph.ops import all_primitives
    for name, prim in all_primitives().items():
        if prim.alias:
            register(name, "gpu")(_alias)
        elif prim.template is not None and prim.kind == "elementwise":
            register(name, "gpu")(_elementwise_op)


_register_elementwise()


# --- shape ops ---------------------------------------------------------------------------

def _reshape_target(op, x, target):
    target = [int(d) for d in target]
    if target.count(-1) == 1:
        known = int(np.prod([d for d in target if d != -1]))
        if known == 0 or x.size % known:
            raise ShapeError(f"cannot reshape an array of shape {tuple(x.shape)} "
                             f"({x.size} elements) into {tuple(op.attrs.get('shape', target))}")
        target[target.index(-1)] = x.size // known
    if _size(target) != x.size:
        raise ShapeError(f"cannot reshape an array of shape {tuple(x.shape)} ({x.size} "
                         f"elements) into {tuple(op.attrs.get('shape', target))}")
    return tuple(target)


@register("Reshape", "gpu")
def _reshape(op, ctx, x):
    return (view_of(x, _reshape_target(op, x, op.attrs["shape"])),)


@register("ReshapeLike", "gpu")
def _reshape_like(op, ctx, x, like):
    return (view_of(x, _reshape_target(op, x, like.shape)),)


@register("ReshapeTo", "gpu")
def _reshape_to(op, ctx, x, shape):
    # Only where the shape was not folded at compile time: it comes to the host.
    (host_shape,) = _host_values(ctx, shape)
    if host_shape.ndim != 1:
        raise InvalidArgumentError(f"expected a 1-d shape, found {host_shape.tolist()}")
    return (view_of(x, _reshape_target(op, x, host_shape)),)


@register("ExpandDims", "gpu")
def _expand_dims(op, ctx, x):
    axis = S.normalize_axis(op.attrs["axis"], x.ndim + 1)
    shape = tuple(x.shape)
    return (view_of(x, shape[:axis] + (1,) + shape[axis:]),)


@register("Squeeze", "gpu")
def _squeeze(op, ctx, x):
    axes = S.normalize_axes(op.attrs["axis"], x.ndim)
    if any(tuple(x.shape)[a] != 1 for a in axes):
        raise ShapeError(f"expected size 1 along axes {axes}, found shape {tuple(x.shape)}")
    return (view_of(x, tuple(d for i, d in enumerate(x.shape) if i not in axes)),)


@register("Transpose", "gpu")
def _transpose(op, ctx, x):
    perm = list(op.attrs["perm"])
    own = contiguous_strides(x.shape)
    out_shape = tuple(tuple(x.shape)[p] for p in perm)
    return (materialize(ctx, x, tuple(own[p] for p in perm), out_shape, x.dtype),)


@register("BroadcastLike", "gpu")
def _broadcast_like(op, ctx, x, like):
    out_shape = tuple(like.shape)
    try:
        np.broadcast_shapes(tuple(x.shape), out_shape)
    except ValueError:
        raise ShapeError(f"cannot broadcast shape {tuple(x.shape)} to {out_shape}") from None
    if len(x.shape) > len(out_shape):
        raise ShapeError(f"cannot broadcast shape {tuple(x.shape)} to {out_shape}")
    return (materialize(ctx, x, broadcast_strides(x.shape, out_shape), out_shape, x.dtype),)


def _slice_view(shape, spec):
    """``(offset, strides, shape)`` in elements of ``x[spec]`` for a C-contiguous ``x``
    of ``shape``: NumPy computes the view on a zero-size-item stand-in that is never
    read."""
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=tuple(shape),
                                            strides=contiguous_strides(shape))
    index = slice_spec_to_index(spec)
    if not any(i is Ellipsis for i in index):
        index = index + (Ellipsis,)  # so that all-integer indices give a view, too
    try:
        view = dummy[index]
    except IndexError as exc:
        raise InvalidArgumentError(f"index out of range for shape {tuple(shape)}: {exc}") \
            from None
    offset = (view.__array_interface__["data"][0] - dummy.__array_interface__["data"][0])
    return offset, tuple(view.strides), tuple(view.shape)


@register("StridedSlice", "gpu")
def _strided_slice(op, ctx, x):
    offset, strides, shape = _slice_view(x.shape, op.attrs["spec"])
    return (materialize(ctx, x, strides, shape, x.dtype, offset),)


@register("SliceGrad", "gpu")
def _slice_grad(op, ctx, g, like):
    offset, strides, shape = _slice_view(like.shape, op.attrs["spec"])
    if tuple(g.shape) != shape:
        raise ShapeError(f"expected a gradient of shape {shape}, found {tuple(g.shape)}")
    out = filled(ctx, like.shape, g.dtype, 0)
    strided_copy(ctx, shape, g, 0, contiguous_strides(shape), out, offset, strides)
    return (out,)


@register("Concat", "gpu")
def _concat(op, ctx, *xs):
    axis = S.normalize_axis(op.attrs["axis"], xs[0].ndim)
    rest = [tuple(tuple(x.shape)[:axis] + tuple(x.shape)[axis + 1:]) for x in xs]
    if any(r != rest[0] for r in rest) or any(x.ndim != xs[0].ndim for x in xs):
        raise ShapeError(f"expected equal sizes except along axis {op.attrs['axis']}, "
                         f"found {[tuple(x.shape) for x in xs]}")
    out_shape = list(xs[0].shape)
    out_shape[axis] = sum(tuple(x.shape)[axis] for x in xs)
    out = rt.empty(out_shape, xs[0].dtype, ctx.stream)
    out_st = contiguous_strides(out_shape)
    start = 0
    for x in xs:
        strided_copy(ctx, x.shape, x, 0, contiguous_strides(x.shape), out,
                     start * out_st[axis], out_st)
        start += tuple(x.shape)[axis]
    return (out,)


def _split_pieces(ctx, x, axis, sizes):
    st = contiguous_strides(x.shape)
    outs, start = [], 0
    for size in sizes:
        shape = tuple(tuple(x.shape)[:axis]) + (int(size),) + tuple(tuple(x.shape)[axis + 1:])
        outs.append(materialize(ctx, x, st, shape, x.dtype, start * st[axis]))
        start += size
    return tuple(outs)


@register("Split", "gpu")
def _split(op, ctx, x):
    sizes, axis = op.attrs["sizes"], S.normalize_axis(op.attrs["axis"], x.ndim)
    if sum(sizes) != tuple(x.shape)[axis]:
        raise ShapeError(f"expected sizes {list(sizes)} to add up to dimension {axis} of "
                         f"shape {tuple(x.shape)}, found a sum of {sum(sizes)}")
    return _split_pieces(ctx, x, axis, sizes)


@register("SplitLike", "gpu")
def _split_like(op, ctx, g, *likes):
    axis = S.normalize_axis(op.attrs["axis"], g.ndim)
    sizes = [tuple(like.shape)[axis] for like in likes]
    if sum(sizes) != tuple(g.shape)[axis]:
        raise ShapeError(f"expected pieces adding up to dimension {axis} of shape "
                         f"{tuple(g.shape)}, found sizes {sizes}")
    return _split_pieces(ctx, g, axis, sizes)


# --- reductions ------------------------------------------------------------------------

def reduce(ctx, kind, x, axes, keepdims):
    """Sum (``kind="sum"``), product (``"prod"``) or maximum (``"max"``) of ``x`` over
    ``axes``: a thread per output when outputs are many, else a block per output
    reducing in shared memory."""
    shape = tuple(x.shape)
    axes = tuple(sorted(axes))
    if kind == "max" and any(shape[a] == 0 for a in axes):
        raise InvalidArgumentError(f"reduce_max over an empty axis (input shape {shape})")
    st = contiguous_strides(shape)
    keep = [i for i in range(len(shape)) if i not in axes]
    keep_shape = tuple(shape[i] for i in keep)
    out_shape = (tuple(1 if i in axes else d for i, d in enumerate(shape)) if keepdims
                 else keep_shape)
    n_out = _size(keep_shape)
    if kind in ("sum", "prod") and (x.size == 0 or not axes):
        if not axes:
            return view_of(x, out_shape)
        return filled(ctx, out_shape, x.dtype, 0 if kind == "sum" else 1)
    out = rt.empty(out_shape, x.dtype, ctx.stream)
    if n_out == 0:
        return out
    n_red = _size([shape[a] for a in axes])
    args = (n_out, n_red, _kshape(keep_shape), _kstrides([st[i] for i in keep]),
            _kshape([shape[a] for a in axes]), _kstrides([st[a] for a in axes]))
    if kind in ("sum", "prod"):
        init = x.dtype.type(0 if kind == "sum" else 1)
    elif x.dtype.kind == "f":
        init = x.dtype.type(-np.inf)
    else:
        init = np.iinfo(x.dtype).min
        init = x.dtype.type(init)
    if n_out >= n_red:
        blocks, threads = rt.launch_config(n_out)
        kernel = _kernel("reduce_rows", is_sum=kind == "sum", is_prod=kind == "prod")
        kernel[blocks, threads, ctx.stream](*args, flat(x), flat(out), init)
    else:
        threads = rt.reduce_threads()
        kernel = _kernel("reduce", dtype=x.dtype.name, threads=threads, is_sum=kind == "sum",
                         is_prod=kind == "prod")
        kernel[rt.reduce_blocks(n_out), threads, ctx.stream](*args, flat(x), flat(out), init)
    return out


@register("ReduceSum", "gpu")
def _reduce_sum(op, ctx, x):
    return (reduce(ctx, "sum", x, S.normalize_axes(op.attrs["axis"], x.ndim),
                   op.attrs["keepdims"]),)


@register("ReduceMax", "gpu")
def _reduce_max(op, ctx, x):
    return (reduce(ctx, "max", x, S.normalize_axes(op.attrs["axis"], x.ndim),
                   op.attrs["keepdims"]),)


@register("ReduceProd", "gpu")
def _reduce_prod(op, ctx, x):
    return (reduce(ctx, "prod", x, S.normalize_axes(op.attrs["axis"], x.ndim),
                   op.attrs["keepdims"]),)


def _arg_reduce(better):
    def kernel_fn(op, ctx, x):
        shape = tuple(x.shape)
        axis = S.normalize_axis(op.attrs["axis"], len(shape))
        n = shape[axis]
        if n == 0:
            raise InvalidArgumentError(f"{op.type} over an empty axis {axis} (input shape "
                                       f"{shape})")
        out_shape = shape[:axis] + shape[axis + 1:]
        out = rt.empty(out_shape, op.attrs["output_type"], ctx.stream)
        n_out = _size(out_shape)
        if n_out:
            blocks, threads = rt.launch_config(n_out)
            _kernel("arg_reduce", better=better)[blocks, threads, ctx.stream](
                n_out, n, _size(shape[axis + 1:]), flat(x), flat(out))
        return (out,)
    return kernel_fn


register("ArgMax", "gpu")(_arg_reduce(">"))
register("ArgMin", "gpu")(_arg_reduce("<"))


def _scan(combine, identity):
    """Cumsum's (``+``, 0) and Cumprod's (``*``, 1) kernel function."""
    def kernel_fn(op, ctx, x):
        return _scan_run(op, ctx, x, combine, identity)
    return kernel_fn


def _scan_run(op, ctx, x, combine, identity):
    shape = tuple(x.shape)
    if not shape:
        raise ShapeError("expected an input of rank 1 or more, found a scalar")
    axis = S.normalize_axis(op.attrs["axis"], len(shape))
    out = rt.empty(shape, x.dtype, ctx.stream)
    n, inner = shape[axis], _size(shape[axis + 1:])
    n_lines = _size(shape[:axis]) * inner
    if n_lines and n:
        blocks, threads = rt.launch_config(n_lines)
        _kernel("cumsum", combine=combine)[blocks, threads, ctx.stream](
            n_lines, n, inner, flat(x), flat(out), bool(op.attrs["exclusive"]),
            bool(op.attrs["reverse"]), x.dtype.type(identity))
    return (out,)


register("Cumsum", "gpu")(_scan("+", 0))
register("Cumprod", "gpu")(_scan("*", 1))


@register("SumLike", "gpu")
def _sum_like(op, ctx, x, like):
    target = tuple(like.shape)
    lead = x.ndim - len(target)
    if lead < 0 or any(t not in (1, d) for t, d in zip(target, tuple(x.shape)[lead:])):
        raise ShapeError(f"cannot reduce shape {tuple(x.shape)} to {target}")
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(target)
                                      if d == 1 and tuple(x.shape)[lead + i] != 1)
    return (view_of(reduce(ctx, "sum", x, axes, True), target),)


@register("Size", "gpu")
def _size_op(op, ctx, x):
    # Only the input's shape is read: the count is made on the host and uploaded.
    axes = S.normalize_axes(op.attrs["axis"], x.ndim)
    count = int(np.prod([tuple(x.shape)[a] for a in axes]))
    return (rt.to_device(np.asarray(count, op.attrs["dtype"]), ctx.stream),)


@register("Shape", "gpu")
def _shape_op(op, ctx, x):
    # Only the input's shape is read: made on the host and uploaded, like Size.
    return (rt.to_device(np.asarray(tuple(x.shape), op.attrs["out_type"]), ctx.stream),)


def _host_values(ctx, *arrays):
    """Device arrays copied to the host (waits for the stream): for the few ops whose
    output *shape* is an input's value (Range, Fill), which the host must know to
    allocate the output. Tiny copies; the compiler folds them when values are known."""
    values = [a.copy_to_host(stream=ctx.stream) for a in arrays]
    ctx.stream.synchronize()
    return values


@register("Range", "gpu")
def _range_op(op, ctx, start, limit, delta):
    # Host fallback (documented): the length depends on the values; the numbers are
    # made on the host from the three scalars and uploaded.
    from flowgraph.ops import get_primitive
    values = _host_values(ctx, start, limit, delta)
    return (rt.to_device(np.ascontiguousarray(get_primitive("Range").ref(op, *values)),
                         ctx.stream),)


@register("Fill", "gpu")
def _fill_op(op, ctx, dims, value):
    # The shape comes to the host; the value stays on the device and is broadcast.
    (host_dims,) = _host_values(ctx, dims)
    if host_dims.ndim != 1 or (host_dims.size and host_dims.min() < 0):
        raise InvalidArgumentError(f"expected a 1-d list of sizes >= 0, found "
                                   f"{host_dims.tolist()}")
    out_shape = tuple(int(d) for d in host_dims)
    return (materialize(ctx, value, (0,) * len(out_shape), out_shape, value.dtype),)


@register("SegmentCount", "gpu")
@register("CaseIndex", "gpu")
@register("UniqueIds", "gpu")
def _host_scalar_op(op, ctx, x):
    # Host fallback (documented), as Range: segment_sum's row count (which the host
    # needs to allocate), tf.case's branch (which the host needs to choose) and
    # scatter_update's distinct indices, from a small input copied down, checked by
    # the reference kernel, and uploaded.
    from flowgraph.ops import get_primitive
    (host,) = _host_values(ctx, x)
    return (rt.to_device(np.ascontiguousarray(get_primitive(op.type).ref(op, host)),
                         ctx.stream),)


@register("TopK", "gpu")
@register("MaskPositions", "gpu")
def _host_select_op(op, ctx, *xs):
    # Host fallback (documented), as SegmentCount: tf.nn.top_k's sort (values, int32
    # indices and the flat positions its gradient scatters at) and boolean_mask's true
    # positions (a length the host needs to allocate) from inputs copied down, computed
    # by the reference kernel, and uploaded.
    from flowgraph.ops import get_primitive
    out = get_primitive(op.type).ref(op, *_host_values(ctx, *xs))
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(rt.to_device(np.ascontiguousarray(o), ctx.stream) for o in outs)


# --- matmul ------------------------------------------------------------------------------

def _batched(ctx, x, batch_shape):
    """``x`` with batch dimensions ``batch_shape`` as (array, per-batch stride)."""
    mat = tuple(tuple(x.shape)[-2:])
    own_batch = tuple(tuple(x.shape)[:-2])
    if _size(own_batch) == 1:
        return x, 0
    if own_batch == tuple(batch_shape):
        return x, mat[0] * mat[1]
    full = tuple(batch_shape) + mat
    return materialize(ctx, x, broadcast_strides(x.shape, full), full, x.dtype), \
        mat[0] * mat[1]


def matmul(ctx, a, b, transpose_a=False, transpose_b=False):
    """``a @ b`` (with the transpose flags) on the device."""
    (m, ka), (kb, n) = tuple(a.shape)[-2:], tuple(b.shape)[-2:]
    if transpose_a:
        m, ka = ka, m
    if transpose_b:
        kb, n = n, kb
    if ka != kb:
        raise ShapeError(f"expected the inner dimensions to agree, found {tuple(a.shape)} @ "
                         f"{tuple(b.shape)} (transpose_a={transpose_a}, "
                         f"transpose_b={transpose_b}): {ka} != {kb}")
    batch = np.broadcast_shapes(tuple(tuple(a.shape)[:-2]), tuple(tuple(b.shape)[:-2]))
    out = rt.empty(tuple(batch) + (m, n), a.dtype, ctx.stream)
    nbatch = _size(batch)
    if out.size == 0:
        return out
    if ka == 0:
        return filled(ctx, out.shape, a.dtype, 0)
    a_arr, a_bs = _batched(ctx, a, batch)
    b_arr, b_bs = _batched(ctx, b, batch)
    threads, regs, bk = rt.matmul_config()
    grid = rt.matmul_grid(m, n, nbatch)
    kernel = _kernel("matmul", threads=threads, regs=regs, bk=bk, dtype=a.dtype.name)
    kernel[grid, (threads, threads), ctx.stream](
        flat(a_arr), flat(b_arr), flat(out), m, n, ka, bool(transpose_a),
        bool(transpose_b), a_bs, b_bs, nbatch, a.dtype.type(0))
    return out


@register("MatMul", "gpu")
def _matmul(op, ctx, a, b):
    return (matmul(ctx, a, b, op.attrs["transpose_a"], op.attrs["transpose_b"]),)


# --- gather / one_hot --------------------------------------------------------------------

def _index_code(op, ctx, nrows):
    return ctx.code(op, "expected indices in [0, {n}), found {found}", n=nrows)


@register("Gather", "gpu")
def _gather(op, ctx, params, indices):
    if params.ndim == 0:
        raise ShapeError("expected params of rank 1 or more, found a scalar")
    nrows, row = tuple(params.shape)[0], _size(tuple(params.shape)[1:])
    out = rt.empty(tuple(indices.shape) + tuple(tuple(params.shape)[1:]), params.dtype, ctx.stream)
    n = out.size
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel("gather")[blocks, threads, ctx.stream](
            n, row, nrows, flat(params), flat(indices), flat(out), ctx.err,
            _index_code(op, ctx, nrows))
    return (out,)


@register("GatherGrad", "gpu")
def _gather_grad(op, ctx, g, indices, like):
    nrows, row = tuple(like.shape)[0], _size(tuple(like.shape)[1:])
    expected = tuple(indices.shape) + tuple(tuple(like.shape)[1:])
    if tuple(g.shape) != expected:
        # the CPU kernels' (the reference's) error and message: a run-time argument
        raise InvalidArgumentError(
            f"expected rows of shape {S.fmt(expected)} (the indices' shape "
            f"{S.fmt(tuple(indices.shape))} + a row of the table), found "
            f"{S.fmt(tuple(g.shape))}")
    out = filled(ctx, like.shape, g.dtype, 0)
    n = g.size
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel("gather_grad")[blocks, threads, ctx.stream](
            n, row, nrows, flat(g), flat(indices), flat(out), ctx.err,
            _index_code(op, ctx, nrows))
    return (out,)


@register("GatherGradSq", "gpu")
def _gather_grad_sq(op, ctx, g, indices, like):
    """On a GPU the dense way: GatherGrad's scatter into a table of zeros, then the
    sum of its squares (a GPU's bandwidth makes the table cheap; the CPU's kernel,
    the reference, works on the rows used only)."""
    (dense,) = _gather_grad(op, ctx, g, indices, like)
    if dense.size == 0:
        return (filled(ctx, (), dense.dtype, 0),)
    square = ("Square", (), (("in", 0),), dense.dtype.name, False)
    squared = elementwise_group(ctx, [square], [0], tuple(dense.shape), [dense.dtype],
                                [dense])[0]
    return (reduce(ctx, "sum", squared, range(len(dense.shape)), False),)


@register("OneHot", "gpu")
def _one_hot(op, ctx, indices):
    depth = op.attrs["depth"]
    out = rt.empty(tuple(indices.shape) + (depth,), op.attrs["dtype"], ctx.stream)
    n = out.size
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel("one_hot")[blocks, threads, ctx.stream](n, depth, flat(indices), flat(out))
    return (out,)


def _label_code(op, ctx, classes):
    return ctx.code(op, "expected labels in [0, {n}), found {found}", n=classes)


@register("SparseSoftmaxXent", "gpu")
def _sparse_xent(op, ctx, x, labels):
    c = tuple(x.shape)[-1]
    rows = tuple(x.shape)[:-1]
    loss = rt.empty(rows, x.dtype, ctx.stream)
    probs = rt.empty(tuple(x.shape), x.dtype, ctx.stream)
    n = _size(rows)
    if n and c:
        blocks, threads = rt.launch_config(n)
        _kernel("sparse_xent")[blocks, threads, ctx.stream](
            n, c, flat(x), flat(labels), flat(loss), flat(probs), ctx.err,
            _label_code(op, ctx, c))
    return (loss, probs)


@register("SoftmaxXent", "gpu")
def _dense_xent(op, ctx, x, labels):
    if tuple(labels.shape) != tuple(x.shape):
        raise ShapeError(f"expected labels of the logits' shape {tuple(x.shape)}, found "
                         f"{tuple(labels.shape)}")
    c = tuple(x.shape)[-1]
    rows = tuple(x.shape)[:-1]
    loss = rt.empty(rows, x.dtype, ctx.stream)
    probs = rt.empty(tuple(x.shape), x.dtype, ctx.stream)
    n = _size(rows)
    if n and c:
        blocks, threads = rt.launch_config(n)
        _kernel("dense_xent")[blocks, threads, ctx.stream](
            n, c, flat(x), flat(labels), flat(loss), flat(probs))
    return (loss, probs)


@register("SparseSoftmaxXentGrad", "gpu")
def _sparse_xent_grad(op, ctx, probs, labels, g):
    c = tuple(probs.shape)[-1]
    out = rt.empty(tuple(probs.shape), probs.dtype, ctx.stream)
    n = out.size
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel("sparse_xent_grad")[blocks, threads, ctx.stream](
            n, c, flat(probs), flat(labels), flat(g), flat(out), ctx.err,
            _label_code(op, ctx, c))
    return (out,)


# --- image patches (conv2d's im2col and col2im) ---------------------------------------------

def _patch_launch(name, op, ctx, src, out_shape):
    from flowgraph.ops import patches_hw
    a = op.attrs
    image = a.get("image") or tuple(src.shape)[1:3]
    oh, ow = patches_hw(image, a)
    c = tuple(out_shape)[3] if name == "patches_grad" else tuple(src.shape)[3]
    out = rt.empty(tuple(out_shape), src.dtype, ctx.stream)
    n = out.size
    if n:
        blocks, threads = rt.launch_config(n)
        _kernel(name)[blocks, threads, ctx.stream](
            n, flat(src), flat(out), image[0], image[1], c, oh, ow, *a["ksizes"],
            *a["strides"], *a["rates"], a["pads"][0], a["pads"][2], src.dtype.type(0))
    return (out,)


@register("ExtractPatches", "gpu")
def _extract_patches(op, ctx, x):
    from flowgraph.ops import patches_hw
    kh, kw = op.attrs["ksizes"]
    if len(x.shape) != 4:      # the reference's (CPU) errors, word for word
        raise InvalidArgumentError(f"expected a rank-4 NHWC image, found shape "
                                   f"{tuple(x.shape)}")
    n, h, w, c = tuple(x.shape)
    return _patch_launch("extract_patches", op, ctx, x,
                         (n, *patches_hw((h, w), op.attrs), kh * kw * c))


@register("PatchesGrad", "gpu")
def _patches_grad(op, ctx, g):
    from flowgraph.ops import patches_hw
    kh, kw = op.attrs["ksizes"]
    if len(g.shape) != 4:
        raise InvalidArgumentError(f"expected rank-4 patches, found shape {tuple(g.shape)}")
    n, oh, ow, k = tuple(g.shape)
    if (oh, ow) != patches_hw(op.attrs["image"], op.attrs) or k % (kh * kw):
        raise InvalidArgumentError(f"expected patches [N, {patches_hw(op.attrs['image'], op.attrs)}, "
                         f"kh*kw*C] (kh*kw = {kh * kw}), found {tuple(g.shape)}")
    return _patch_launch("patches_grad", op, ctx, g, (n, *op.attrs["image"], k // (kh * kw)))


@register("NoOp", "gpu")
def _no_op(op, ctx, *inputs):
    return ()


@register("Const", "gpu")
def _const(op, ctx):
    return (rt.to_device(op.attrs["value"], ctx.stream),)
