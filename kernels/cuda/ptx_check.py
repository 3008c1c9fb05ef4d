"""Compile every flowgraph CUDA kernel to PTX, without a GPU.

The numba.cuda simulator runs kernels as Python, so it cannot catch code that the
real CUDA target rejects (an unsupported call, a type that does not unify). This
check compiles each kernel source (the scalar template every primitive declares, in
each dtype its shape rule accepts, and every template of :mod:`kernels.cuda.templates`)
with NVVM for one compute capability. It needs NVVM (the ``cuda-toolkit[nvvm]`` wheels or a CUDA toolkit) but
no GPU or driver, and must run without ``NUMBA_ENABLE_CUDASIM``.

Usage: ``python -m kernels.cuda.ptx_check`` prints each failure and exits 1 if any,
0 if all compiled, 3 if NVVM is not available.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .codegen import FusedSpec, kernel_source
from .templates import render_kernel

CC = (8, 0)
# Sample attribute values for the primitives whose shape rule or template reads one
# (test data: an op without attributes needs nothing here). Cast: each output dtype.
_SAMPLE_ATTRS = {"PowScalar": [{"exponent": 3.0}],
                 "Cast": [{"dtype": np.dtype(d)} for d in ("float32", "int32", "bool")]}


class _Spec:
    """What a shape rule reads of an input: a shape and a dtype."""

    def __init__(self, dtype, name):
        self.shape, self.dtype, self.name = (2,), np.dtype(dtype), name


class _Op:
    def __init__(self, op_type, in_dtypes, attrs):
        self.type, self.attrs, self.name, self.location = op_type, attrs, op_type, None
        self.inputs = [_Spec(d, f"x{k}") for k, d in enumerate(in_dtypes)]


def _inputs(prim):
    """An elementwise primitive's number of inputs: those its template reads (at
    least one: ZerosLike reads only its input's shape)."""
    return max(prim.arity, 1)


def _variants(prim):
    """``(input dtypes, attrs, output dtype)`` for each dtype the primitive's shape rule
    accepts: all inputs of one dtype, or (a condition) a bool first input."""
    for dtype in ("float32", "float64", "int32", "bool"):
        n = _inputs(prim)
        for ins in ([dtype] * n, ["bool"] + [dtype] * (n - 1)):
            for attrs in _SAMPLE_ATTRS.get(prim.name, [{}]):
                try:
                    (_, out), = prim.infer(_Op(prim.name, ins, attrs))
                except Exception:
                    continue    # a dtype the rule refuses
                yield ins, attrs, np.dtype(out).name
            if n < 3 or dtype == "bool":
                break


def _python_function(source, entry):
    namespace = {}
    header = "import numpy as np\nimport math\nfrom numba import cuda\n" \
             "from kernels.cuda import runtime as _rt\n"
    exec(compile(header + source, f"<{entry}>", "exec"), namespace)
    return namespace[entry]


def _cases():
    """``(label, source, entry, argument types)`` for every kernel variant."""
    from numba import from_dtype
    from numba.core import types as T

    def arr(dtype):
        return T.Array(from_dtype(np.dtype(dtype)), 1, "C")

    def tup(n):
        return T.UniTuple(T.int64, n)

    def scalar_of(dtype):
        return from_dtype(np.dtype(dtype))

    from flowgraph.ops import all_primitives

    head = [T.int64, tup(2), arr("int64"), T.int64]
    for op_type, prim in sorted(all_primitives().items()):
        if prim.template is None:
            continue
        nin = _inputs(prim)
        for ins, attrs, out in _variants(prim):
            kernel_attrs = tuple(sorted((k, v) for k, v in attrs.items() if k == "exponent"))
            modes = ("full", "scalar", "bcast")[:nin] if nin > 1 else ("bcast",)
            int_div = prim.int_div and np.dtype(ins[0]).kind in "iu"
            spec = FusedSpec(((op_type, kernel_attrs, tuple(("in", k) for k in range(nin)),
                               out, int_div),), modes, (0,))
            args = head + [arr(out)]
            for d in ins:
                args += [arr(d), tup(2)]
            yield (f"{op_type} {','.join(ins)}->{out}", kernel_source(spec), "fused",
                   tuple(args))
    chain = FusedSpec((("Mul", (), (("in", 0), ("in", 1)), "float32", False),
                       ("Sigmoid", (), (("t", 0),), "float32", False),
                       ("Tanh", (), (("t", 1),), "float32", False)), ("full", "bcast"), (0, 2))
    yield ("fused chain", kernel_source(chain), "fused",
           tuple(head + [arr("float32")] * 2 + [arr("float32"), tup(2)] * 2))
    for dtype in ("float32", "float64", "int32", "bool"):
        yield (f"strided_copy {dtype}", render_kernel("strided_copy"), "strided_copy",
               (T.int64, tup(3), arr(dtype), T.int64, tup(3), arr(dtype), T.int64, tup(3)))
        yield (f"fill {dtype}", render_kernel("fill"), "fill",
               (T.int64, arr(dtype), scalar_of(dtype)))
    for dtype in ("float32", "float64", "int32", "int64"):
        for is_sum, is_prod in ((True, False), (False, True), (False, False)):
            yield (f"reduce sum={is_sum} prod={is_prod} {dtype}",
                   render_kernel("reduce", dtype=dtype, threads=128, is_sum=is_sum,
                                 is_prod=is_prod), "reduce",
                   (T.int64, T.int64, tup(2), tup(2), tup(1), tup(1), arr(dtype), arr(dtype),
                    scalar_of(dtype)))
            yield (f"reduce_rows sum={is_sum} prod={is_prod} {dtype}",
                   render_kernel("reduce_rows", is_sum=is_sum, is_prod=is_prod), "reduce_rows",
                   (T.int64, T.int64, tup(2), tup(2), tup(1), tup(1), arr(dtype), arr(dtype),
                    scalar_of(dtype)))
        for better in ("<", ">"):
            for itype in ("int32", "int64"):
                yield (f"arg_reduce {better} {dtype}->{itype}",
                       render_kernel("arg_reduce", better=better), "arg_reduce",
                       (T.int64, T.int64, T.int64, arr(dtype), arr(itype)))
        for combine in ("+", "*"):          # Cumsum, Cumprod
            yield (f"cumsum {combine} {dtype}", render_kernel("cumsum", combine=combine),
                   "cumsum", (T.int64, T.int64, T.int64, arr(dtype), arr(dtype), T.boolean,
                              T.boolean, scalar_of(dtype)))
        yield (f"matmul {dtype}",
               render_kernel("matmul", threads=16, regs=4, bk=16, dtype=dtype), "matmul",
               (arr(dtype), arr(dtype), arr(dtype), T.int64, T.int64, T.int64, T.boolean,
                T.boolean, T.int64, T.int64, T.int64, scalar_of(dtype)))
    for dtype in ("float32", "float64"):
        for itype in ("int32", "int64"):
            for name in ("gather", "gather_grad"):
                yield (f"{name} {dtype}[{itype}]", render_kernel(name), name,
                       (T.int64, T.int64, T.int64, arr(dtype), arr(itype), arr(dtype),
                        arr("int64"), T.int64))
            yield (f"one_hot {dtype}[{itype}]", render_kernel("one_hot"), "one_hot",
                   (T.int64, T.int64, arr(itype), arr(dtype)))
    # conv2d's im2col and col2im (extract_image_patches takes integer images too)
    for dtype in ("float32", "float64", "int32"):
        for name in ("extract_patches", "patches_grad"):
            yield (f"{name} {dtype}", render_kernel(name), name,
                   (T.int64, arr(dtype), arr(dtype)) + (T.int64,) * 13 + (scalar_of(dtype),))


def main() -> int:
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("run without NUMBA_ENABLE_CUDASIM: the check compiles for the real target")
        return 2
    from numba import cuda
    try:
        cuda.compile_ptx(_python_function("def k(x):\n    x[0] = 1\n", "k"),
                         (__import__("numba").float32[:],), cc=CC)
    except Exception as exc:  # no NVVM: nothing can be compiled here
        print(f"NVVM is not available: {type(exc).__name__}: {exc}")
        return 3
    failures, count = [], 0
    for label, source, entry, args in _cases():
        count += 1
        try:
            cuda.compile_ptx(_python_function(source, entry), args, cc=CC)
        except Exception as exc:
            failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:300]}")
    for line in failures:
        print("FAILED", line)
    print(f"{count - len(failures)} of {count} kernels compiled to PTX for sm_{CC[0]}{CC[1]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
