"""The CUDA backend: the steps of a GPU stretch, launched on the run's stream.

One step per scheduled unit: a fused elementwise region (made by the fusion pass, on
this device only) is one generated numba.cuda kernel (:mod:`kernels.cuda.codegen`);
a ``MatMul`` is the tiled GEMM of :mod:`kernels.cuda` (kind ``gemm``); a ``Const`` is
uploaded once per plan; variable reads and updates keep the variable on the device
between runs (the session stores the device array; only fetched values come back);
any other node runs its registered numba.cuda kernel. Launches are asynchronous:
the host waits only in a copy to the host and at the end of the run, where an error
recorded by a kernel (an index out of range) is raised.

Nodes with no GPU kernel never get here: :func:`flowgraph.backends.legalize` moves
them to the host.

>>> CudaBackend.kind
'gpu'
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import NumericsError, ShapeError, describe_op
from . import Backend, Step

_GPU_KINDS = frozenset({"elementwise", "reduction", "matmul", "shape", "index", "copy"})


def _contiguous(value):
    """``value`` as a C-contiguous ndarray of its own shape (0-d stays 0-d, unlike
    ``np.ascontiguousarray``)."""
    value = np.asarray(value)
    return value if value.flags.c_contiguous else np.array(value, order="C")


class _NodeOp:
    """A node as the GPU kernels read an op: type, attrs, input and output specs;
    errors name the graph op it came from."""

    class _Spec:
        __slots__ = ("shape", "dtype")

        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

    def __init__(self, node):
        self.type, self.attrs = node.type, node.attrs
        self.name, self.location = node.name, node.location
        self.inputs = [self._Spec(v[0].shapes[v[1]], v[0].dtypes[v[1]]) for v in node.inputs]
        self.outputs = [self._Spec(s, d) for s, d in zip(node.shapes, node.dtypes)]


class NonFinite(NumericsError):
    """A GPU step made a NaN or Inf (``check_numerics``): the plan replays the run on
    the reference path, which names the op as specified."""

    def __init__(self, node):
        super().__init__(f"{describe_op(node)}: produced a NaN or Inf")
        self.node = node


class CudaBackend(Backend):
    """One GPU (``/gpu:N``)."""

    kind = "gpu"

    def __init__(self, device, config):
        super().__init__(device, config)
        from kernels import cuda as gpu   # imports numba.cuda: only now
        self.gpu, self.rt = gpu, gpu.rt
        self.index = int(device.rsplit(":", 1)[1])
        self._constants = {}       # Const node -> its device array, uploaded once
        self.kernel_sources = set()   # the distinct fused kernels (their structure)
        self._lock = threading.Lock()

    # -- the lowering table ------------------------------------------------------------
    def runs(self, node) -> bool:
        kind = node.kind
        if node.type in ("Const", "BroadcastTo") or kind in ("state", "control"):
            return True
        if kind not in _GPU_KINDS:
            return False
        return self.gpu.lookup(node.type, "gpu") is not None

    # -- steps -------------------------------------------------------------------------
    def stretch(self, units, reads, writes, wanted, plan):
        steps = []
        for kind, p in units:
            step = self._group_step(p, wanted) if kind == "group" else self._node_step(p)
            if step is not None:
                if self.config.check_numerics:
                    step.run = self._checked(step.run, p.nodes[-1] if kind == "group" else p)
                steps.append(step)
        return steps

    def _group_step(self, group, wanted):
        members = {m: j for j, m in enumerate(group.nodes)}
        external, entries = [], []
        for m in group.nodes:
            operands = []
            for v in m.inputs:
                if v[0] in members:
                    operands.append(("t", members[v[0]]))
                else:
                    if v not in external:
                        external.append(v)
                    operands.append(("in", external.index(v)))
            attrs = tuple(sorted((k, a) for k, a in m.attrs.items() if k == "exponent"))
            int_div = m.primitive.int_div and m.inputs[0][0].dtypes[m.inputs[0][1]].kind in "iu"
            entries.append((m.type, attrs, tuple(operands), m.dtypes[0].name, int_div))
        out = [j for j, m in enumerate(group.nodes) if wanted((m, 0))]
        if not out:
            return None
        dtypes = [m.dtypes[0] for m in group.nodes]
        shape, gpu = group.shape, self.gpu
        self.kernel_sources.add(repr((entries, out)))
        checks = [_NodeOp(m) for m, e in zip(group.nodes, entries) if e[4]]

        def fused_kernel(inputs, ctx, state):
            code = 0
            for op in checks:       # one code for the group: the first op names it
                code = code or ctx.code(op, "integer division by zero")
            return gpu.elementwise_group(ctx, entries, out, shape, dtypes, inputs, code)
        return Step("fused kernel", self.device, [m.name for m in group.nodes],
                    [(v, "gpu") for v in external],
                    [((group.nodes[j], 0), "gpu") for j in out], fused_kernel)

    def _node_step(self, n):
        if n.kind == "control":
            return None     # NoOp: orders the run (the schedule did), runs nothing
        reads = [(v, "gpu") for v in n.inputs]
        writes = [((n, k), "gpu") for k in range(len(n.shapes))]
        if n.type == "Const":   # uploaded at its first run: not a step explain shows
            return Step("const", self.device, [n.name], reads, writes, self._const(n),
                        infos=[])
        if n.kind == "state":
            return Step("state", self.device, [n.name], reads, writes, self._state(n))
        if n.type == "BroadcastTo":
            run = self._broadcast(n)
        else:
            run = self._kernel(n)
        kind = "gemm" if n.primitive.step_kind == "gemm" else "kernel"
        return Step(kind, self.device, [n.name], reads, writes, run)

    def _const(self, n):
        constants, lock, rt = self._constants, self._lock, self.rt

        def const(inputs, ctx, state):
            value = constants.get(n)
            if value is None:
                with lock:
                    value = rt.to_device(_contiguous(n.attrs["value"]), ctx.stream)
                    ctx.stream.synchronize()   # complete before other runs' streams use it
                    constants[n] = value
            return (value,)
        return const

    def _broadcast(self, n):
        gpu, shape, dtype = self.gpu, n.shapes[0], n.dtypes[0]

        def broadcast(inputs, ctx, state):
            (x,) = inputs
            return (gpu.materialize(ctx, x, gpu.broadcast_strides(x.shape, shape), shape,
                                    dtype),)
        return broadcast

    def _kernel(self, n):
        from ..errors import FlowgraphError, InvalidArgumentError
        fn, op, shapes = self.gpu.lookup(n.type, "gpu"), _NodeOp(n), n.shapes

        def kernel(inputs, ctx, state):
            try:
                outs = fn(op, ctx, *inputs)
            except FlowgraphError as exc:
                if describe_op(op) in str(exc):
                    raise
                raise type(exc)(f"{describe_op(op)}: {exc}") from None
            except Exception as exc:
                found = ", ".join(f"{tuple(v.shape)} {v.dtype}" for v in inputs)
                raise InvalidArgumentError(
                    f"{describe_op(op)}: the GPU kernel failed on inputs [{found}]: "
                    f"{type(exc).__name__}: {exc}") from exc
            for v, s in zip(outs, shapes):
                if tuple(v.shape) != tuple(s):
                    raise ShapeError(f"{describe_op(op)}: produced shape {tuple(v.shape)} "
                                     f"at run time, expected {tuple(s)}")
            return outs
        return kernel

    def _on_gpu(self, value, ctx):
        rt = self.rt
        return value if rt.is_device_array(value) else rt.to_device(
            _contiguous(value), ctx.stream)

    def _state(self, n):
        """Variables on a GPU: read and assigned as device arrays, kept there."""
        var, gpu, on_gpu, op = n.attrs.get("variable"), self.gpu, self._on_gpu, n.origin

        def state_op(inputs, ctx, state):
            if n.type == "Variable":
                raw = state.read_raw(var)
                value = on_gpu(raw, ctx)
                if value is not raw:   # first use on the GPU: resident from now on
                    state.resident[var] = (raw, value)
                return (value,)
            if n.type == "ReadVariable":
                return (on_gpu(state.read_latest_raw(var), ctx),)
            if n.type == "InitVariables":
                for v in n.attrs["variables"]:
                    state.pending[v] = v.initial_value
                return ()
            if n.type == "SparseRowsSGD":
                # the rows used, on the host (an embedding update: a few rows)
                from ..executor import sparse_rows_sgd, to_host
                ctx.stream.synchronize()
                value = sparse_rows_sgd(var, to_host(state.read_raw(var)),
                                        *[to_host(x) for x in inputs])
                value.setflags(write=False)
                state.pending[var] = value
                return (on_gpu(value, ctx),)
            value = inputs[0]
            if n.type in ("AssignAdd", "AssignSub"):
                current = on_gpu(state.read_latest_raw(var), ctx)
                entry = ("Add" if n.type == "AssignAdd" else "Sub", (),
                         (("in", 0), ("in", 1)), var.dtype.name, False)
                shape = np.broadcast_shapes(tuple(current.shape), tuple(value.shape))
                if tuple(shape) != tuple(var.shape):
                    raise ShapeError(f"{describe_op(op)}: expected a value of the "
                                     f"variable's shape {var.shape}, found "
                                     f"{tuple(value.shape)}")
                value = gpu.elementwise_group(ctx, [entry], [0], shape, [var.dtype],
                                              [current, value])[0]
            elif tuple(value.shape) != tuple(var.shape):
                raise ShapeError(f"{describe_op(op)}: expected a value of the variable's "
                                 f"shape {var.shape}, found {tuple(value.shape)}")
            elif value.dtype != var.dtype:
                value = on_gpu(value.copy_to_host(stream=ctx.stream).astype(var.dtype), ctx)
            state.pending[var] = value
            return (value,)
        return state_op

    def _checked(self, run, node):
        def checked(inputs, ctx, state):
            outs = run(inputs, ctx, state)
            for v in outs:
                if v.dtype.kind == "f":
                    host = v.copy_to_host(stream=ctx.stream)
                    ctx.stream.synchronize()
                    if not np.isfinite(host).all():
                        raise NonFinite(node)
            return outs
        return checked

    # -- the run -----------------------------------------------------------------------
    def context(self):
        return self.gpu.GpuContext()

    def upload(self, host, ctx):
        return self.rt.to_device(_contiguous(host), ctx.stream)

    def download(self, value, ctx):
        host = value.copy_to_host(stream=ctx.stream)
        ctx.stream.synchronize()
        return host

    def synchronize(self, ctx):
        ctx.stream.synchronize()

    def finish(self, ctx):
        ctx.raise_recorded_error()     # synchronizes the stream
