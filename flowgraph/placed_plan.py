"""The compiled plan of a placed run: ops on the CPU and on a GPU.

The compiler (:func:`flowgraph.compiler.compile_plan`) lowers the run with every
node's device (placement is a pass), runs every pass over the whole placed program
(CSE, matmul stacking, fusion: each only within one device) and hands the result
here. The plan

1. schedules the units once, staying on a device while it has ready work, so that
   the run switches devices as rarely as its dependencies allow;
2. cuts the schedule into *stretches* of one device and has each device's backend
   (:mod:`flowgraph.backends`) emit the stretch's steps: a CPU stretch is one
   compiled CPU plan, a GPU stretch a step per kernel launch;
3. puts a copy step where a value is read on a device it was not made on: once per
   value and destination per run (a feed read on the GPU is uploaded once, whatever
   reads it), and fetched GPU values come back at the end. Only fetched values come
   back; GPU variables stay on the device between runs.

A step that fails (or, with ``check_numerics``, makes a NaN) stops the run; the
reference plan then runs the same inputs and names the op as the specification does.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.device("/gpu:0"):  # on the CPU where there is no GPU (soft placement)
...         y = fg.constant([1.0, -2.0]) * 3.0
...     fg.Session(config=fg.SessionConfig(allow_soft_placement=True)).run(y)
array([ 3., -6.], dtype=float32)
"""
from __future__ import annotations

import threading
import time

import numpy as np

from .backends import Step, backend_class
from .devices import DEFAULT_DEVICE
from .errors import PlacementError
from .plan import replay_reference
from .schedule import schedule


class _StretchFailed(Exception):
    """Raised by a CPU stretch's compiled plan in place of its own replay."""

    def __init__(self, exc, origin):
        super().__init__(str(exc))
        self.exc, self.origin = exc, origin


class PlacedPlan:
    """A compiled run over several devices (see the module docstring):
    ``run(feeds, state) -> [fetched arrays]``.

    ``backends``: ``{device: Backend}`` already made (by ``compile_plan``), reused.
    ``steps`` lists the :class:`~flowgraph.backends.Step` s in run order;
    ``transfers`` the copies one run makes, ``(tensor name, "cpu->gpu")`` or
    ``(tensor name, "gpu->cpu")``, fetches included.
    """

    def __init__(self, prog, graph, fetch_tensors, target_ops, feed_tensors, config,
                 backends=None):
        self.feed_tensors = list(feed_tensors)
        self.fetch_tensors = list(fetch_tensors)
        self.reference_args = (graph, fetch_tensors, target_ops, feed_tensors)
        self._check_numerics = config.check_numerics
        self._lock = threading.Lock()
        devices = {n: prog.device(n) for n in prog.nodes}
        backends = dict(backends or {})
        for d in dict.fromkeys(devices.values()):
            if d not in backends:
                backends[d] = backend_class(d)(d, config)
        self.backends = backends
        gpus = sorted(d for d, b in backends.items() if b.kind == "gpu")
        if len(gpus) > 1:    # (compile_plan refuses these before lowering)
            raise PlacementError(f"a run spanning several GPUs ({', '.join(gpus)})")
        self._gpu = backends[gpus[0]] if gpus else None

        def unit_device(unit):
            kind, p = unit
            return devices[p.nodes[0] if kind == "group" else p]
        units = [u for u in schedule(prog, unit_device)
                 if not (u[0] == "node" and u[1].type == "Feed")]
        stretches = []
        for unit in units:
            d = unit_device(unit)
            if not stretches or stretches[-1][0] != d:
                stretches.append((d, []))
            stretches[-1][1].append(unit)
        self.steps, self.transfers = [], []
        self._build(prog, stretches)

    # -- building ----------------------------------------------------------------------
    def _build(self, prog, stretches):
        users, fetched = prog.users(), set(prog.fetches)
        stretch_of, unit_of = {}, {}
        for i, (_, units) in enumerate(stretches):
            for kind, p in units:
                for n in (p.nodes if kind == "group" else [p]):
                    stretch_of[n], unit_of[n] = i, p

        def wanted(v):
            return v in fetched or any(unit_of.get(u) is not unit_of[v[0]]
                                       for u in users.get(v, ()))
        self._feeds = [((n, 0), n.feed) for n in prog.nodes if n.type == "Feed"]
        available = {(v, "cpu") for v, _ in self._feeds}     # (value, kind) made so far
        for i, (device, units) in enumerate(stretches):
            nodes = [n for kind, p in units for n in (p.nodes if kind == "group" else [p])]
            reads = list(dict.fromkeys(v for n in nodes for v in n.inputs
                                       if stretch_of.get(v[0]) != i))
            writes = list(dict.fromkeys(
                (n, k) for n in nodes for k in range(len(n.shapes))
                if (n, k) in fetched or any(stretch_of[u] != i for u in users.get((n, k), ()))))
            for step in self.backends[device].stretch(units, reads, writes, wanted, self):
                for key in step.reads:
                    if key not in available:
                        self._copy(key, available)
                self.steps.append(step)
                available.update(step.writes)
        self._fetches = [(v, "cpu") for v in prog.fetches]
        for key in self._fetches:
            if key not in available:
                self._copy(key, available)
        fed = {v for v, _ in self._feeds}
        self._fetch_copies = [v in fed for v in prog.fetches]

    def _copy(self, key, available):
        """A copy step making ``key`` (value, kind) from the value's other copy."""
        v, kind = key
        source = "gpu" if kind == "cpu" else "cpu"
        if (v, source) not in available:
            raise AssertionError(f"internal error: {v} is on no device before it is read")
        gpu = self._gpu
        name = _value_name(v)
        if kind == "gpu":
            def copy(inputs, ctx, state):
                return (gpu.upload(inputs[0], ctx),)
            device = gpu.device
        else:
            def copy(inputs, ctx, state):
                return (gpu.download(inputs[0], ctx),)
            device = DEFAULT_DEVICE
        direction = f"{source}->{kind}"
        self.steps.append(Step("copy", device, [f"{name} {direction}"], [(v, source)],
                               [key], copy))
        self.transfers.append((name, direction))
        available.add(key)

    # -- what the session and explain read -----------------------------------------------
    @property
    def step_infos(self):
        return [info for step in self.steps for info in step.infos]

    @property
    def kernel_sources(self):
        gpu = self._gpu.kernel_sources if self._gpu is not None else set()
        return gpu.union(*[s.plan.kernel_sources for s in self.steps if s.plan is not None])

    @property
    def compiled(self):
        return all(s.plan.compiled for s in self.steps if s.plan is not None)

    def wait_compiled(self, timeout=None):
        """Block until every CPU stretch runs its compiled kernels."""
        done = True
        for s in self.steps:
            if s.plan is not None:
                done = s.plan.wait_compiled(timeout) and done
        return done

    def stretch_failed(self, exc, origin):
        """A CPU stretch's compiled plan failed: the whole run is replayed (run)."""
        if isinstance(exc, _StretchFailed):
            raise exc
        raise _StretchFailed(exc, origin)

    # -- running -----------------------------------------------------------------------
    def run(self, feeds, state, metadata=None):
        gpu = self._gpu
        if gpu is not None and gpu.index:   # numba.cuda launches on the current device
            with gpu.rt.cuda().gpus[gpu.index]:
                return self._run(feeds, state, metadata)
        return self._run(feeds, state, metadata)

    def run_traced(self, feeds, state, metadata):
        """``run``, recording each step's start and end (``metadata.record``); GPU
        steps are waited for, so that their events show their real duration."""
        return self.run(feeds, state, metadata)

    def _run(self, feeds, state, metadata):
        with self._lock:
            gpu = self._gpu
            ctx = gpu.context() if gpu is not None else None
            values = {(v, "cpu"): feeds[t] for v, t in self._feeds}
            try:
                with np.errstate(all="ignore"):
                    if metadata is None:
                        for step in self.steps:
                            outs = step.run([values[k] for k in step.reads], ctx, state)
                            for k, out in zip(step.writes, outs):
                                values[k] = out
                    else:
                        self._run_traced(values, ctx, state, metadata)
                out = [values[k] for k in self._fetches]
                if gpu is not None:
                    gpu.finish(ctx)
            except _StretchFailed as failed:
                replay_reference(self.reference_args, self._check_numerics, feeds, state,
                                 failed.exc, failed.origin, named=True)
            except Exception as exc:     # noqa: BLE001 - the reference names the op
                origin = getattr(exc, "node", None)
                replay_reference(self.reference_args, self._check_numerics, feeds, state,
                                 None if origin is not None else exc, origin, named=True)
            return [np.array(a) if copy else a for a, copy in zip(out, self._fetch_copies)]

    def _run_traced(self, values, ctx, state, metadata):
        clock, gpu = time.perf_counter_ns, self._gpu
        for step in self.steps:
            inputs = [values[k] for k in step.reads]
            if step.run_traced is not None:     # a CPU stretch records its own steps
                outs = step.run_traced(inputs, ctx, state, metadata)
            elif not step.infos:                # (a constant's upload)
                outs = step.run(inputs, ctx, state)
            else:
                start = clock()
                outs = step.run(inputs, ctx, state)
                if gpu is not None:
                    gpu.synchronize(ctx)
                metadata.record(step.infos[0], start, clock())
            for k, out in zip(step.writes, outs):
                values[k] = out


def _value_name(v):
    """The tensor name of a program value (``x:0``)."""
    n, k = v
    if n.feed is not None and not isinstance(n.feed, tuple):
        return n.feed.name
    return f"{n.name}:{k}"
