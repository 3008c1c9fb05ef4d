"""Seeing a plan: what ``Session.explain`` prints, and step tracing
(``fg.RunOptions(trace=True)``, ``fg.RunMetadata``, Chrome trace-event JSON).

Every plan describes its steps as :class:`StepInfo` records: the device a step runs
on, its kind and the graph ops it covers. Kinds:

- ``gemm``: a BLAS matrix product; ``fused kernel``: a generated Numba loop over a
  fused elementwise region; ``ufunc chain``: the same region as NumPy ufunc calls;
  ``gemm+fused kernel``: a GEMM run row block by row block with its epilogue;
- ``scatter kernel``: the Numba scatter-add of an embedding's gradient (GatherGrad);
- ``kernel``: another CPU kernel (a reduction, a gather...); ``copy``: a copy (parts
  of a concatenation, a value crossing devices); ``state``: a variable read or update;
- ``send``/``recv``: a value crossing MPI tasks; ``allreduce``: the fused collective;
- on a GPU (a :class:`~flowgraph.placed_plan.PlacedPlan`), the same kinds with the GPU
  as the device: ``gemm``, ``fused kernel`` and ``kernel`` are numba.cuda launches;
- ``reference``: the op's NumPy reference kernel (no compiled kernel for it).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float32, (2, 3))
...     y = fg.tanh(x @ fg.constant(np.ones((3, 4), np.float32)) + 1.0)
...     sess = fg.Session(config=fg.SessionConfig(optimize=True))
...     md = fg.RunMetadata()
...     _ = sess.run(y, {x: np.ones((2, 3))}, options=fg.RunOptions(trace=True),
...                  run_metadata=md)
...     text = sess.explain(y, {x: np.ones((2, 3))})
>>> "gemm" in text and "fused kernel" in text
True
>>> import json
>>> len([e for e in json.loads(md.chrome_trace())["traceEvents"] if e["ph"] == "X"])
2
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepInfo:
    """One plan step as :func:`explain` shows it."""

    kind: str
    device: str
    ops: list = field(default_factory=list)


@dataclass(frozen=True)
class RunOptions:
    """Options of one ``Session.run`` (TF1's ``RunOptions``): ``trace=True`` records
    each plan step's start and end into the ``run_metadata`` passed with it. TF1's
    ``trace_level=RunOptions.FULL_TRACE`` (any level above ``NO_TRACE``) does the same.
    """

    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3

    trace: bool = False
    trace_level: int = 0

    def __post_init__(self):
        if self.trace_level not in (0, 1, 2, 3):
            raise ValueError(f"RunOptions: expected trace_level NO_TRACE (0), SOFTWARE_TRACE "
                             f"(1), HARDWARE_TRACE (2) or FULL_TRACE (3), found "
                             f"{self.trace_level!r}")
        if self.trace_level:
            object.__setattr__(self, "trace", True)     # frozen: set once, here


class RunMetadata:
    """What a traced run recorded (TF1's ``RunMetadata``): ``step_stats``, a list of
    ``(StepInfo, start_ns, end_ns, rank)`` in run order (``time.perf_counter_ns``);
    :meth:`chrome_trace` turns it into a timeline."""

    def __init__(self):
        self.step_stats = []

    def record(self, info, start_ns, end_ns):
        self.step_stats.append((info, start_ns, end_ns, _rank()))

    def chrome_trace(self) -> str:
        """Chrome trace-event JSON (open it in Perfetto or ``chrome://tracing``): one
        complete event per step, one process per MPI rank and one thread per device.
        """
        events, threads = [], {}
        origin = min((s for _, s, _, _ in self.step_stats), default=0)
        for info, start, end, rank in self.step_stats:
            tid = threads.setdefault((rank, info.device), len(threads))
            events.append({"name": info.ops[0] if len(info.ops) == 1 else
                           f"{info.kind} ({len(info.ops)} ops)",
                           "cat": info.kind, "ph": "X", "pid": rank, "tid": tid,
                           "ts": (start - origin) / 1e3, "dur": (end - start) / 1e3,
                           "args": {"device": info.device, "ops": list(info.ops)}})
        meta = []
        for rank in sorted({r for r, _ in threads}):
            meta.append({"name": "process_name", "ph": "M", "pid": rank, "tid": 0,
                         "args": {"name": f"rank {rank}"}})
        for (rank, device), tid in threads.items():
            meta.append({"name": "thread_name", "ph": "M", "pid": rank, "tid": tid,
                         "args": {"name": device}})
        return json.dumps({"traceEvents": meta + events, "displayTimeUnit": "ms"})


def _rank():
    comm = sys.modules.get("flowgraph.distributed.comm")   # never starts MPI itself
    return comm.rank() if comm is not None else 0


def step_infos(plan):
    """The steps of any plan (compiled, reference, placed or partition plan)."""
    infos = getattr(plan, "step_infos", None)
    if infos is not None:
        return list(infos)
    describe = getattr(plan, "describe_steps", None)
    if describe is not None:
        return describe()
    from .devices import DEFAULT_DEVICE
    return [StepInfo("reference", op.device or DEFAULT_DEVICE, [op.name])
            for op in getattr(plan, "ops", ())]


def explain(plan) -> str:
    """The text ``Session.explain`` returns for ``plan``."""
    infos = step_infos(plan)
    kernels = len(getattr(plan, "kernel_sources", ()))
    kinds = {}
    for info in infos:
        kinds[info.kind] = kinds.get(info.kind, 0) + 1
    pending = "" if getattr(plan, "compiled", True) else \
        " so far, more compiling in the background"
    lines = [f"{type(plan).__name__}: {len(infos)} steps, {kernels} distinct kernels{pending} "
             f"({', '.join(f'{n} {k}' for k, n in kinds.items()) or 'nothing to run'})"]
    width = max([len(i.device) for i in infos] + [6])
    kwidth = max([len(i.kind) for i in infos] + [4])
    lines.append(f"{'step':>5}  {'device':<{width}}  {'kind':<{kwidth}}  ops")
    for k, info in enumerate(infos):
        lines.append(f"{k:>5}  {info.device:<{width}}  {info.kind:<{kwidth}}  "
                     f"{', '.join(info.ops)}")
    return "\n".join(lines)


def run_traced(plan, feeds, state, metadata):
    """Run ``plan`` recording its steps; plans without per-step tracing are recorded
    as one step."""
    traced = getattr(plan, "run_traced", None)
    if traced is not None:
        return traced(feeds, state, metadata)
    import time
    start = time.perf_counter_ns()
    out = plan.run(feeds, state)
    infos = step_infos(plan)
    devices = sorted({i.device for i in infos}) or ["/cpu:0"]
    metadata.record(StepInfo("run", ",".join(devices), [o for i in infos for o in i.ops]),
                    start, time.perf_counter_ns())
    return out
