"""The CUDA runtime seen by flowgraph: is there a GPU, launch sizes, streams, copies.

Everything that touches ``numba.cuda`` directly lives here or in :mod:`kernels.cuda`,
and it is imported lazily (``import flowgraph`` never imports ``numba.cuda``). Launch
configurations are decided in one place, :func:`launch_config`: on a real GPU a grid
large enough to fill the device, under the simulator (``NUMBA_ENABLE_CUDASIM=1``,
about 1 ms per simulated thread) one block of a few threads; every kernel loops
grid-stride, so any grid gives the same answer.

>>> device_count() >= 0
True
"""
from __future__ import annotations

import functools
import os

import numpy as np

# Threads per block and most blocks per launch on a real GPU; the simulator gets tiny
# values so that a test launching hundreds of kernels stays fast.
_GPU_THREADS, _GPU_MAX_BLOCKS, _GPU_REDUCE_THREADS = 256, 1024, 128
_SIM_THREADS, _SIM_MAX_BLOCKS, _SIM_REDUCE_THREADS = 8, 1, 8
# Matmul (threads per block edge, outputs per thread edge, K step): a 64x64 output tile
# per 16x16 block on a GPU; under the simulator a 4x4 tile per 2x2 block, so that the
# tests cross tile edges with tiny matrices.
_GPU_MATMUL, _SIM_MATMUL = (16, 4, 16), (2, 2, 2)


def simulator_enabled() -> bool:
    """True when numba.cuda runs its Python simulator instead of a GPU."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@functools.lru_cache(maxsize=1)
def cuda():
    """The ``numba.cuda`` module (imported on first use)."""
    # Small launches are routine here (one kernel per op, tiny tensors in tests): do
    # not warn about under-occupied grids unless the user asked for it.
    os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
    from numba import cuda as numba_cuda
    return numba_cuda


@functools.lru_cache(maxsize=1)
def device_count() -> int:
    """How many GPUs numba.cuda sees (1 under the simulator, 0 without a driver)."""
    try:
        nc = cuda()
        if not nc.is_available():
            return 0
        return len(nc.gpus)
    except Exception:  # no driver, no bindings, a broken install: no GPU
        return 0


def launch_config(n: int) -> tuple[int, int]:
    """``(blocks, threads_per_block)`` for a grid-stride kernel over ``n`` items."""
    if simulator_enabled():
        return _SIM_MAX_BLOCKS, _SIM_THREADS
    threads = _GPU_THREADS
    blocks = max(1, min(_GPU_MAX_BLOCKS, (n + threads - 1) // threads))
    return blocks, threads


def reduce_threads() -> int:
    """Threads per block of a block reduction (a power of two)."""
    return _SIM_REDUCE_THREADS if simulator_enabled() else _GPU_REDUCE_THREADS


def reduce_blocks(n_outputs: int) -> int:
    """Blocks of a block reduction over ``n_outputs`` output elements (grid-stride)."""
    if simulator_enabled():
        return 1
    return max(1, min(_GPU_MAX_BLOCKS * 4, n_outputs))


def matmul_config() -> tuple[int, int, int]:
    """``(threads, regs, bk)`` of the matmul kernel: blocks of ``threads x threads``,
    each thread computing ``regs x regs`` outputs, K staged ``bk`` at a time. The
    output tile edge is ``threads * regs``; ``threads * regs * bk`` must be a multiple
    of ``threads**2``."""
    if simulator_enabled():
        return _SIM_MATMUL
    return _GPU_MATMUL


def matmul_grid(rows: int, cols: int, batch: int) -> tuple[int, int, int]:
    """Blocks ``(x, y, z)`` of the tiled matmul; the kernel loops over tiles grid-stride."""
    if simulator_enabled():
        return 1, 1, 1
    threads, regs, _ = _GPU_MATMUL
    tile = threads * regs
    return (max(1, min(65535, (cols + tile - 1) // tile)),
            max(1, min(65535, (rows + tile - 1) // tile)),
            max(1, min(65535, batch)))


def is_device_array(value) -> bool:
    """True for a numba.cuda device array (or the simulator's stand-in)."""
    return hasattr(value, "copy_to_host") and not isinstance(value, np.ndarray)


def to_host(value, stream=None):
    """A host NumPy array for ``value`` (device arrays are copied back)."""
    if is_device_array(value):
        return value.copy_to_host(stream=stream) if stream is not None else value.copy_to_host()
    return value


def to_device(array, stream):
    """Start an asynchronous host-to-device copy of ``array`` on ``stream``."""
    array = np.require(array, requirements="C")  # (ascontiguousarray makes 0-d 1-d)
    return cuda().to_device(array, stream=stream)


def empty(shape, dtype, stream):
    """An uninitialized device array."""
    return cuda().device_array(tuple(shape), dtype=np.dtype(dtype), stream=stream)


def new_stream():
    return cuda().stream()


def shared_dtype(dtype: str):
    """The element type of a shared-memory array: a numba type on a GPU, the NumPy
    dtype under the simulator (which allocates shared arrays with NumPy)."""
    if simulator_enabled():
        return np.dtype(dtype)
    from numba import from_dtype
    return from_dtype(np.dtype(dtype))


def math_namespace():
    """What generated kernels call ``math``: the real module on a GPU; under the
    simulator NumPy's ufuncs, which keep float32 and return inf/nan (as CUDA does)
    where Python's math would raise.
    """
    import math
    if not simulator_enabled():
        return math
    import types
    shim = types.SimpleNamespace(**{k: getattr(math, k) for k in dir(math)
                                    if not k.startswith("_")})
    # every float function of math that NumPy has a ufunc of (so a template may call
    # any of them: math.log1p, math.expm1...); floor, ceil and trunc return integers
    # in math and floats in NumPy, and stay math's
    for name in dir(math):
        if isinstance(getattr(np, name, None), np.ufunc) and name not in (
                "floor", "ceil", "trunc"):
            setattr(shim, name, getattr(np, name))
    return shim
