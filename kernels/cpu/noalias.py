"""A Numba compiler pipeline that tells LLVM a kernel's arrays do not overlap.

LLVM vectorizes a loop that stores through one array and loads or stores through
others only after a run-time check that their ranges are disjoint (or not at all, past
``-vectorize-memory-check-threshold`` pairs). A generated fused loop runs once per row
over a dozen or more arrays, so those checks run on every row: in an LSTM cell's
forward kernel (16 arrays, 128 x 128 float32) about 75 ns per row, on rows that
compute in about 400 ns (AVX-512 EPYC, one core).

Compiled with :class:`NoAlias`, every pointer argument of the kernel is ``noalias``
(Numba's ``noalias`` flag, which its own parallel loops use): no check is made, the
loop is vectorized unconditionally. That is a promise that memory one argument
writes is reached through no other argument, so
:func:`kernels.cpu.codegen.prepare_fused` uses it only when it has checked that on
the arrays the kernel is bound to (:func:`kernels.cpu.codegen.writes_are_disjoint`).
Windows of one array passed as one argument are not separated by it: LLVM still
checks those against each other.

The generated source names :data:`VERSION`: a change here gives its kernels new cache
keys (Numba's disk cache tracks only the kernel's own file).
"""
from __future__ import annotations

from numba.core.compiler import Compiler

VERSION = "1"


class NoAlias(Compiler):
    """Numba's default pipeline with ``flags.noalias`` set (use as
    ``@njit(pipeline_class=NoAlias)``). The flags are the compilation's own, made
    for it by the dispatcher: setting one here changes no other function."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()
