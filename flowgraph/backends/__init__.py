"""Backends: how a compiled plan runs on one kind of device.

Every compiled run takes one path, ``lower -> place -> passes -> plan``
(:func:`flowgraph.compiler.compile_plan`). When every node landed on the CPU the plan
is one :class:`~flowgraph.plan.CompiledPlan`. Otherwise it is a
:class:`~flowgraph.placed_plan.PlacedPlan`: the optimized program is scheduled once,
cut into *stretches* (consecutive units on one device), and each stretch becomes
steps through its device's :class:`Backend`, with a copy step wherever a value
crosses devices.

A backend says, for its device kind:

- ``runs(node)``: its lowering table: can it run this node? A node placed on a device
  whose backend cannot run it runs on the host instead (the CPU backend, compiled),
  with copies around it: slower, never a ``KeyError`` (:func:`legalize`);
- ``stretch(...)``: the steps of a stretch: fused elementwise regions, GEMMs, other
  kernels, variable reads and updates;
- ``context()``, ``upload``/``download``, ``synchronize``/``finish``: the per-run
  context (a stream), copies to and from the host, and waiting for the device;
- buffers: the CPU backend plans them by liveness (:mod:`flowgraph.buffers`: pooled,
  reused, views and windows without copies; a value arriving from a GPU is copied into
  its planned feed buffer); the CUDA backend's kernels allocate their outputs on the
  run's stream (numba.cuda's allocator; not pooled yet).

The two backends:

- :class:`~flowgraph.backends.cpu.CpuBackend`: a stretch is one
  :class:`~flowgraph.plan.CompiledPlan`: generated Numba kernels or ufunc chains for
  fused regions, BLAS GEMMs, registered CPU kernels, reference kernels for the rest,
  buffers planned by liveness;
- :class:`~flowgraph.backends.cuda.CudaBackend`: one step per unit: fused regions as
  generated numba.cuda kernels (:mod:`kernels.cuda.codegen`), the tiled GEMM and the
  other kernels of :mod:`kernels.cuda` (launch sizes chosen in one place,
  :func:`kernels.cuda.runtime.launch_config`, every kernel grid-stride), variables
  kept on the device between runs.

>>> backend_class("/gpu:0").__name__, backend_class("/cpu:0").__name__
('CudaBackend', 'CpuBackend')
"""
from __future__ import annotations

from ..devices import DEFAULT_DEVICE
from ..explain import StepInfo


class Step:
    """One step of a placed plan: ``run(inputs, ctx, state) -> outputs``.

    ``reads`` and ``writes`` are ``((node, index), kind)`` keys: the value and the
    device kind (``"cpu"``/``"gpu"``) it is read from or written to. ``infos`` is what
    ``explain`` shows (a CPU stretch shows its compiled plan's steps).
    """

    __slots__ = ("kind", "device", "reads", "writes", "run", "infos", "run_traced",
                 "plan")

    def __init__(self, kind, device, ops, reads, writes, run, infos=None,
                 run_traced=None, plan=None):
        self.kind, self.device = kind, device
        self.reads, self.writes, self.run = list(reads), list(writes), run
        self.infos = infos if infos is not None else [StepInfo(kind, device, list(ops))]
        self.run_traced = run_traced   # (inputs, ctx, state, metadata) -> outputs
        self.plan = plan               # a CPU stretch's CompiledPlan

    def __repr__(self):
        return f"<Step {self.kind} on {self.device}: {[i.ops for i in self.infos]}>"


class Backend:
    """The interface of a device kind (see the module docstring)."""

    kind = None     # "cpu" or "gpu": the key of the values a step reads and writes

    def __init__(self, device, config):
        self.device, self.config = device, config

    def runs(self, node) -> bool:
        """Can this backend run ``node``? (Else it runs on the host.)"""
        raise NotImplementedError

    def stretch(self, units, reads, writes, wanted, plan):
        """The steps of ``units`` (scheduled, all on this device). ``reads``: values
        produced elsewhere; ``writes``: values read after the stretch (or fetched);
        ``wanted(value)``: is the value read outside its unit (or fetched)?
        ``plan``: the placed plan (its reference arguments, its failure hook)."""
        raise NotImplementedError

    def context(self):
        """The per-run context steps get as ``ctx`` (``None``: nothing)."""
        return None

    def upload(self, host, ctx):
        """``host`` (an ndarray) as a value on this device."""
        raise NotImplementedError

    def download(self, value, ctx):
        """A value of this device as a host ndarray, complete when this returns."""
        raise NotImplementedError

    def finish(self, ctx):
        """Wait for the run's work and raise any error recorded on the device."""

    def synchronize(self, ctx):
        """Wait for the work launched so far (traced runs time each step)."""


def backend_class(device):
    """The backend class for a canonical device string."""
    from ..placement import device_kind
    if device_kind(device) == "gpu":
        from .cuda import CudaBackend
        return CudaBackend
    from .cpu import CpuBackend
    return CpuBackend


def host_fallback(op, device):
    """The placement pass's lowering check, per graph op: the device ``op`` runs on
    given the device it landed on. Collectives (MPI exchanges host buffers), loops
    (their bodies are plans of their own), random ops (drawn on the host as every path
    draws them, bit for bit), io ops (Print writes the host's stderr) and ops with no
    kernel for the device run on the CPU."""
    if device == DEFAULT_DEVICE:
        return device
    kind = op.primitive.kind
    if kind in ("collective", "loop", "random", "io"):
        return DEFAULT_DEVICE
    if kind in ("state", "control", "source"):
        return device
    from kernels import cuda as _registers  # noqa: F401  (registers the GPU kernels)
    from kernels import lookup
    if lookup(op.type, "gpu") is None:
        return DEFAULT_DEVICE
    return device


def legalize(prog, backends):
    """After the passes: a node on a device whose backend cannot run it (a node a
    pass made, say) moves to the host (``prog.moved``), and a constant read only on
    another device moves there (uploaded once per plan instead of copied per run)."""
    readers = {}
    for n in prog.nodes:
        for v in n.inputs:
            readers.setdefault(v[0], []).append(n)
    for n in prog.nodes:
        d = prog.device(n)
        if d != DEFAULT_DEVICE and n.group is None and not backends[d].runs(n):
            prog.moved[n] = DEFAULT_DEVICE
    for n in prog.nodes:
        if n.type == "Const" and n in readers:
            where = {prog.device(r) for r in readers[n]}
            if len(where) == 1 and prog.device(n) not in where:
                d = where.pop()
                if backends.get(d) is not None and backends[d].runs(n):
                    prog.moved[n] = d
    return prog
