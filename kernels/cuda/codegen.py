"""Fused elementwise CUDA kernels generated from the scalar templates the primitives
declare (:mod:`kernels.scalar`: the same ones the CPU backend renders).

A *fused group* is a run of elementwise ops with one output shape. Its kernel loops
grid-stride over the output's elements, loads each external input once per element
(by flat index, as a scalar, or through broadcast strides), evaluates every op of the
group in registers and stores only the values needed outside the group. Kernels are
generated as Python source, compiled once per distinct structure and kept in memory
and, on a real GPU, in numba's on-disk cache, checked as the CPU kernels' is
(:mod:`kernels.cache`).

>>> spec = FusedSpec(ops=(("Add", (), (("in", 0), ("in", 1)), "float32", False),),
...                  modes=("full", "scalar"), outputs=(0,))
>>> "out0[i] = t0" in kernel_source(spec)
True
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .. import cache
from . import runtime as rt
from ..scalar import has_template, render


@dataclass(frozen=True)
class FusedSpec:
    """The structure of one fused kernel (its cache key).

    ``ops``: ``(op_type, attrs, operands, out_dtype, int_div_check)`` per op, where an
    operand is ``("in", k)`` (external input ``k``) or ``("t", j)`` (op ``j``'s result).
    ``modes``: per external input, ``"full"`` (same shape as the output), ``"scalar"``
    (one element) or ``"bcast"`` (broadcast through strides). ``outputs``: the ops whose
    results are stored.
    """

    ops: tuple
    modes: tuple
    outputs: tuple


def _convert(expr: str, dtype: str) -> str:
    if dtype == "bool":
        return f"(({expr}) != 0)"
    return f"np.{dtype}({expr})"


def kernel_source(spec: FusedSpec) -> str:
    """Python source of the fused kernel ``fused`` for ``spec``."""
    ins = [f"in{k}, st{k}" for k in range(len(spec.modes))]
    outs = [f"out{j}" for j in range(len(spec.outputs))]
    lines = [f"def fused(n, shape, err, code, {', '.join(outs + ins)}):",
             "    for i in range(cuda.grid(1), n, cuda.gridsize(1)):"]
    for k, mode in enumerate(spec.modes):
        if mode == "full":
            lines.append(f"        a{k} = in{k}[i]")
        elif mode == "scalar":
            lines.append(f"        a{k} = in{k}[0]")
        else:
            lines += ["        r = i",
                      "        o = 0",
                      "        for d in range(len(shape) - 1, -1, -1):",
                      "            q = r % shape[d]",
                      "            r //= shape[d]",
                      f"            o += q * st{k}[d]",
                      f"        a{k} = in{k}[o]"]
    for j, (op_type, attrs, operands, out_dtype, int_div_check) in enumerate(spec.ops):
        names = [f"a{idx}" if src == "in" else f"t{idx}" for src, idx in operands]
        if int_div_check:  # integer division by zero is an error, as on the CPU
            lines += [f"        if {names[1]} == 0:",
                      f"            err[0] = code + {j}"]
        # (each op's result is converted to its output dtype in registers, as the
        # NumPy reference rounds after every op)
        expr = render(op_type, names, dict(attrs))
        lines.append(f"        t{j} = {_convert(expr, out_dtype)}")
    for slot, j in enumerate(spec.outputs):
        lines.append(f"        out{slot}[i] = t{j}")
    return "\n".join(lines) + "\n"


def supports(op_type: str) -> bool:
    """True when ``op_type`` has a scalar template (it can join a fused kernel)."""
    return has_template(op_type)


_KERNELS: dict[FusedSpec, object] = {}
_LOCK = threading.Lock()


def fused_kernel(spec: FusedSpec):
    """The compiled (lazily, on first launch) kernel for ``spec``, cached by structure."""
    kernel = _KERNELS.get(spec)
    if kernel is None:
        kernel = _KERNELS.setdefault(spec, load_kernel(kernel_source(spec), "fused"))
    return kernel


_LOADED: dict[tuple, object] = {}


def load_kernel(source: str, entry: str):
    """Compile-on-first-launch ``numba.cuda`` kernel ``entry`` defined by ``source``.

    The module is executed from this text by :func:`kernels.cache.load_module`, which
    also writes it (named by its hash) under ``<cache folder>/cuda`` so that numba's
    on-disk cache, sealed and confined to that folder, can key on it and later
    processes skip the compile. Loaded modules are kept in memory: one per distinct
    source.
    """
    key = (source, entry, rt.simulator_enabled())
    kernel = _LOADED.get(key)
    if kernel is not None:
        return kernel
    with _LOCK:
        kernel = _LOADED.get(key)
        if kernel is None:
            kernel = _LOADED[key] = _import(source, entry)
    return kernel


def _import(source: str, entry: str):
    simulated = rt.simulator_enabled()
    header = ("import numpy as np\n"
              "from kernels.cuda import runtime as _rt\n"
              "cuda = _rt.cuda()\n"
              "math = _rt.math_namespace()\n")
    body = f"{header}\n{source}\n\n{entry} = cuda.jit({entry})\n"
    # Executed from this text, never from the file (kernels.cache); on a real GPU the
    # disk cache is numba-cuda's, sealed and confined to the flowgraph folder.
    module = cache.load_module(body, subdir="cuda", stem=entry)
    kernel = getattr(module, entry)
    if not simulated:
        from numba.cuda.dispatcher import CUDACache
        cache.attach_disk_cache(kernel, module, CUDACache)
    return kernel


def launch(spec: FusedSpec, out_shape, outputs, inputs, strides, err, code, stream):
    """Run the fused kernel: ``outputs``/``inputs`` are flat device arrays,
    ``strides`` the per-input element strides (used by ``"bcast"`` inputs)."""
    n = int(np.prod(out_shape)) if out_shape else 1
    if n == 0:
        return
    kernel = fused_kernel(spec)
    blocks, threads = rt.launch_config(n)
    args = [n, tuple(out_shape) or (1,), err, code] + list(outputs)
    for arr, st in zip(inputs, strides):
        args += [arr, st]
    kernel[blocks, threads, stream](*args)
