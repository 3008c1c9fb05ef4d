"""The device plan: runs a placed graph whose ops are not all on the CPU.

Each op runs where placement put it: GPU ops with the numba.cuda kernels of
:mod:`kernels.cuda` (consecutive elementwise GPU ops of one static shape are fused into
one generated kernel), CPU ops through the CPU compiler: each stretch of consecutive
CPU steps is one :class:`~flowgraph.plan.CompiledPlan` (all CPU passes, fusion,
GEMMs, planned buffers) whose feeds are the values it reads from elsewhere and whose
fetches are the values read after it, so fusion never crosses a device (a stretch the
compiler does not take runs on the NumPy reference kernels, as with
``optimize=False``). Every value that crosses
devices is copied once per run per destination (a feed used on the GPU is uploaded
once, however many ops read it); GPU launches are asynchronous on the run's stream
and the host waits only where a CPU op needs a GPU value and to return fetches.
Variables placed on a GPU stay there between runs: the session keeps their device
arrays, and only fetched values come back to the host.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.device("/gpu:0"):  # on the CPU where there is no GPU (soft placement)
...         y = fg.constant([1.0, -2.0]) * 3.0
...     fg.Session(config=fg.SessionConfig(allow_soft_placement=True)).run(y)
array([ 3., -6.], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from .devices import DEFAULT_DEVICE, local_device
from .errors import (FlowgraphError, InvalidArgumentError, PlacementError, ShapeError,
                     describe_op)
from .executor import ReferencePlan, check_finite, evaluate_op
from .placement import device_kind

_ALIASES = ("Identity", "StopGradient", "Copy")


class _FusedGroup:
    """Consecutive (in schedule order) elementwise GPU ops of one static output shape."""

    def __init__(self, op):
        self.ops = [op]
        self.shape = op.outputs[0].shape


class DevicePlan:
    """A plan whose ops run on the CPU and on GPUs (see the module docstring).

    ``transfers`` lists the copies one run makes: ``(tensor name, "cpu->gpu")`` or
    ``(tensor name, "gpu->cpu")``, fetches included.
    """

    def __init__(self, graph, fetch_tensors, target_ops, feed_tensors, chosen, config,
                 feed_arrays=None):
        from kernels import cuda as gpu_kernels  # imports numba.cuda: only now
        self._gpu = gpu_kernels
        reference = ReferencePlan(graph, fetch_tensors, target_ops, feed_tensors,
                                  config.check_numerics)  # checks the feeds
        self.graph = graph
        self.fetch_tensors = list(fetch_tensors)
        self.feed_tensors = list(feed_tensors)
        self.check_numerics = config.check_numerics
        self.ops = reference.ops
        devices = {op: chosen.get(op, op.device or DEFAULT_DEVICE) for op in self.ops}
        # MPI collectives exchange host buffers, and an op with no GPU kernel has only
        # its host kernels: they run on the CPU wherever they are placed (slower, never
        # failing), and the plan copies their inputs and outputs. Loops (While, If) also
        # run on the host: their bodies are plans of their own (documented fallback).
        self.location = {op: "cpu" if self._host_only(op) else device_kind(d)
                         for op, d in devices.items()}
        gpus = sorted({local_device(d) for d in devices.values() if device_kind(d) == "gpu"})
        if len(gpus) > 1:
            op = next(op for op, d in devices.items() if local_device(d) == gpus[1])
            raise PlacementError(
                f"{describe_op(op)}: placed on {gpus[1]} while other ops of this run are on "
                f"{gpus[0]}; a run spanning several GPUs is not supported yet (expected "
                "one GPU per run, found " + ", ".join(gpus) + ")")
        self.gpu_index = int(gpus[0].rsplit(":", 1)[1]) if gpus else 0
        self.steps = self._schedule()
        self.kernel_sources = set()
        if config.optimize and feed_arrays is not None:
            self.steps = self._compile_cpu_stretches(graph, target_ops, feed_arrays, config)
        self.transfers = self._transfers()
        self._constants = {}  # Const op -> its device array, uploaded once per plan

    # --- building ----------------------------------------------------------------------
    def _host_only(self, op) -> bool:
        kind = op.primitive.kind
        if kind in ("collective", "loop"):
            return True
        return (kind != "state" and op.type not in ("Const", "Placeholder")
                and self._gpu.lookup(op.type, "gpu") is None)

    def _where(self, tensor) -> str:
        if tensor in set(self.feed_tensors) or tensor.op not in self.location:
            return "cpu"
        return self.location[tensor.op]

    def _fusable(self, op) -> bool:
        shape = op.outputs[0].shape if len(op.outputs) == 1 else None
        return (op.primitive.kind == "elementwise" and op.type not in _ALIASES
                and self._gpu.codegen.supports(op.type) and shape is not None
                and None not in shape)

    def _schedule(self):
        steps, group = [], None

        def flush():
            if group is None:
                return
            if len(group.ops) == 1:
                steps.append(("gpu", group.ops[0]))
            else:
                steps.append(("fused", self._fused_step(group)))

        # Sources (constants, variable reads) do not depend on anything: running them
        # first lets the elementwise ops that use them fuse into one kernel.
        sources = [op for op in self.ops if op.type in ("Const", "Variable")
                   and not op.control_inputs]
        steps.extend((self.location[op], op) for op in sources)
        hoisted = set(sources)
        for op in self.ops:
            if op in hoisted:
                continue
            if self.location[op] == "gpu" and self._fusable(op):
                # Every op since the group began is in the group, so this op's inputs
                # come from the group or from before it: it can always join (vertical
                # and horizontal fusion alike) when its shape matches.
                if group is not None and op.outputs[0].shape == group.shape:
                    group.ops.append(op)
                    continue
                flush()
                group = _FusedGroup(op)
                continue
            flush()
            group = None
            steps.append((self.location[op], op))
        flush()
        return steps

    def _compile_cpu_stretches(self, graph, target_ops, feed_arrays, config):
        """The schedule with each stretch of consecutive CPU steps as one compiled
        ``("segment", _CpuSegment)`` step (see the module doc)."""
        from . import passes
        try:   # concrete shapes of every value of the run, from the feed shapes
            whole = passes.lower(self.fetch_tensors, target_ops, self.feed_tensors,
                                 [a.shape for a in feed_arrays])
        except passes.NotCompilable:
            return self.steps
        shapes = dict(zip(self.feed_tensors, (a.shape for a in feed_arrays)))
        for n in whole.nodes:
            if n.type != "Feed":
                shapes.update(zip(n.origin.outputs, n.shapes))
        fetched, targets = set(self.fetch_tensors), set(target_ops)
        steps, stretch = [], []

        def flush():
            if stretch:
                steps.extend(self._cpu_segment(graph, stretch, shapes, fetched, targets,
                                               config))
                stretch.clear()

        for step in self.steps:
            if step[0] == "cpu":
                stretch.append(step[1])
            else:
                flush()
                steps.append(step)
        flush()
        return steps

    def _cpu_segment(self, graph, ops, shapes, fetched, targets, config):
        from . import passes
        from .plan import CompiledPlan
        members = set(ops)
        inputs = list(dict.fromkeys(t for op in ops for t in op.inputs
                                    if t.op not in members or t in self.feed_tensors))
        read_later = {t for op in self.ops if op not in members for t in op.inputs}
        outputs = [t for op in ops for t in op.outputs
                   if (t in read_later or t in fetched) and t not in inputs]
        effects = [op for op in ops if op in targets or op.primitive.kind not in
                   passes.PURE_KINDS | {"source"}]
        try:
            prog = passes.lower(outputs, effects, inputs, [shapes[t] for t in inputs],
                                ops=ops)
            prog = passes.run_pipeline(prog)
            plan = CompiledPlan(prog, graph, outputs, effects, inputs, config)
        except Exception:  # noqa: BLE001 - anything the compiler cannot take: reference
            return [("cpu", op) for op in ops]
        self.kernel_sources |= plan.kernel_sources
        return [("segment", _CpuSegment(ops, inputs, outputs, plan))]

    def _fused_step(self, group):
        members = set(group.ops)
        external, operands_of = [], []
        for op in group.ops:
            operands = []
            for t in op.inputs:
                if t.op in members:
                    operands.append(("t", group.ops.index(t.op)))
                else:
                    if t not in external:
                        external.append(t)
                    operands.append(("in", external.index(t)))
            operands_of.append(operands)
        fetched = set(self.fetch_tensors)
        used_outside = {t for op in self.ops if op not in members for t in op.inputs}
        wanted = [j for j, op in enumerate(group.ops)
                  if op.outputs[0] in used_outside or op.outputs[0] in fetched]
        entries = [self._gpu.spec_entry(op, operands)
                   for op, operands in zip(group.ops, operands_of)]
        return {"ops": group.ops, "inputs": external, "entries": entries,
                "wanted": wanted, "shape": group.shape,
                "int_div": any(e[4] for e in entries)}

    def _step_io(self, step):
        kind, item = step
        if kind == "fused":
            return item["inputs"], [item["ops"][j].outputs[0] for j in item["wanted"]], "gpu"
        if kind == "segment":
            return item.inputs, item.outputs, "cpu"
        return list(item.inputs), list(item.outputs), kind

    def _transfers(self):
        seen, out = set(), []
        for step in self.steps:
            inputs, _, where = self._step_io(step)
            for t in inputs:
                if self._where(t) != where and (t, where) not in seen:
                    seen.add((t, where))
                    out.append((t.name, f"{self._where(t)}->{where}"))
        for t in self.fetch_tensors:
            if self._where(t) == "gpu" and (t, "cpu") not in seen:
                seen.add((t, "cpu"))
                out.append((t.name, "gpu->cpu"))
        return out

    def describe_steps(self):
        """What ``Session.explain`` shows: every step in run order, with a ``copy``
        step where a value first crosses devices."""
        from .explain import StepInfo
        gpu, seen, infos = f"/gpu:{self.gpu_index}", set(), []
        for step in self.steps:
            kind, item = step
            inputs, _, where = self._step_io(step)
            for t in inputs:
                if self._where(t) != where and (t, where) not in seen:
                    seen.add((t, where))
                    infos.append(StepInfo("copy", gpu if where == "gpu" else DEFAULT_DEVICE,
                                          [f"{t.name} {self._where(t)}->{where}"]))
            if kind == "segment":
                infos.extend(item.plan.step_infos)
            elif kind == "fused":
                infos.append(StepInfo("gpu fused kernel", gpu, [op.name for op in item["ops"]]))
            elif kind == "gpu":
                infos.append(StepInfo("gpu kernel", gpu, [item.name]))
            else:
                infos.append(StepInfo("reference", DEFAULT_DEVICE, [item.name]))
        return infos

    # --- running -----------------------------------------------------------------------
    def wait_compiled(self, timeout=None):
        """Block until the compiled CPU stretches run their compiled kernels
        (Session.wait_compiled)."""
        done = True
        for kind, item in self.steps:
            if kind == "segment":
                done = item.plan.wait_compiled(timeout) and done
        return done

    def run(self, feeds, state, metadata=None):
        if self.gpu_index:  # numba.cuda launches on the current device: select ours
            with self._gpu.rt.cuda().gpus[self.gpu_index]:
                return self._run(feeds, state, metadata)
        return self._run(feeds, state, metadata)

    def run_traced(self, feeds, state, metadata):
        """``run``, recording each step's start and end (``metadata.record``); GPU
        steps are waited for, so that their events show their real duration."""
        return self.run(feeds, state, metadata)

    def _run(self, feeds, state, metadata=None):
        ctx = self._gpu.GpuContext()
        values = {(t, "cpu"): v for t, v in feeds.items()}
        with np.errstate(all="ignore"):
            for step in self.steps:
                kind, item = step
                if metadata is not None:
                    self._run_step_traced(step, values, ctx, state, metadata)
                elif kind == "fused":
                    self._run_fused(item, values, ctx)
                elif kind == "segment":
                    self._run_segment(item, values, ctx, state)
                elif kind == "gpu":
                    self._run_gpu(item, values, ctx, state)
                else:
                    self._run_cpu(item, values, ctx, state)
        pending = [(t, values.get((t, "cpu"))) for t in self.fetch_tensors]
        copies = {t: values[(t, "gpu")].copy_to_host(stream=ctx.stream)
                  for t, v in pending if v is None}
        ctx.raise_recorded_error()  # synchronizes the stream: the copies are done
        return [copies[t] if v is None else v for t, v in pending]

    def _run_step_traced(self, step, values, ctx, state, metadata):
        import time

        from .explain import StepInfo
        kind, item = step
        if kind == "segment":   # its compiled plan records its own steps
            feeds = {t: self._get(values, t, "cpu", ctx) for t in item.inputs}
            outs = item.plan.run_traced(feeds, state, metadata)
            for t, v in zip(item.outputs, outs):
                v.setflags(write=False)
                values[(t, "cpu")] = v
            return
        start = time.perf_counter_ns()
        gpu = f"/gpu:{self.gpu_index}"
        if kind == "fused":
            self._run_fused(item, values, ctx)
            info = StepInfo("gpu fused kernel", gpu, [op.name for op in item["ops"]])
        elif kind == "gpu":
            self._run_gpu(item, values, ctx, state)
            info = StepInfo("gpu kernel", gpu, [item.name])
        else:
            self._run_cpu(item, values, ctx, state)
            info = StepInfo("reference", DEFAULT_DEVICE, [item.name])
        ctx.stream.synchronize()
        metadata.record(info, start, time.perf_counter_ns())

    def _get(self, values, tensor, where, ctx):
        """``tensor``'s value on ``where``, copied there once per run."""
        value = values.get((tensor, where))
        if value is not None:
            return value
        if where == "gpu":
            value = self._gpu.rt.to_device(values[(tensor, "cpu")], ctx.stream)
        else:
            value = values[(tensor, "gpu")].copy_to_host(stream=ctx.stream)
            ctx.stream.synchronize()
            value.setflags(write=False)
        values[(tensor, where)] = value
        return value

    def _store(self, op, outs, values, where):
        if len(outs) != len(op.outputs):
            raise FlowgraphError(f"{describe_op(op)}: a {where} kernel returned "
                                 f"{len(outs)} values, expected {len(op.outputs)}")
        for t, v in zip(op.outputs, outs):
            if where == "gpu" and tuple(v.shape) != tuple(
                    d if d is not None else v.shape[i] for i, d in enumerate(t.shape or v.shape)):
                raise ShapeError(f"{describe_op(op)}: produced shape {tuple(v.shape)} at run "
                                 f"time, expected {t.shape}")
            values[(t, where)] = v

    def _run_segment(self, segment, values, ctx, state):
        feeds = {t: self._get(values, t, "cpu", ctx) for t in segment.inputs}
        for t, v in zip(segment.outputs, segment.plan.run(feeds, state)):
            v.setflags(write=False)
            values[(t, "cpu")] = v

    def _run_cpu(self, op, values, ctx, state):
        inputs = [self._get(values, t, "cpu", ctx) for t in op.inputs]
        outs = evaluate_op(op, inputs, state, self.check_numerics)
        self._store(op, outs, values, "cpu")

    def _run_gpu(self, op, values, ctx, state):
        if op.primitive.kind == "state":
            outs = self._run_gpu_state(op, values, ctx, state)
        elif op.primitive.kind == "random":
            # Host fallback: the numbers are drawn on the host as the compiled CPU plan
            # draws them (bit-identical to the CPU paths) and uploaded.
            if op.attrs.get("shape_from") == "like":  # only the shape is read
                t = op.inputs[0]
                value = values.get((t, "cpu"))
                if value is None:
                    value = values[(t, "gpu")]
                inputs = [np.broadcast_to(np.zeros((), t.dtype), tuple(value.shape))]
            else:
                inputs = [self._get(values, t, "cpu", ctx) for t in op.inputs]
            from kernels.philox_cpu import contiguous_blocks
            host = evaluate_op(op, inputs, state, self.check_numerics, contiguous_blocks)
            outs = tuple(self._gpu.rt.to_device(v, ctx.stream) for v in host)
        else:
            if op.type == "Const":
                const = self._constants.get(op)
                if const is None:
                    const = self._gpu.rt.to_device(op.attrs["value"], ctx.stream)
                    ctx.stream.synchronize()  # complete before other runs' streams use it
                    self._constants[op] = const
                outs = (const,)
            else:
                inputs = [self._get(values, t, "gpu", ctx) for t in op.inputs]
                kernel = self._gpu.lookup(op.type, "gpu")
                try:
                    outs = kernel(op, ctx, *inputs)
                except FlowgraphError as exc:
                    if describe_op(op) in str(exc):
                        raise
                    raise type(exc)(f"{describe_op(op)}: {exc}") from None
                except Exception as exc:
                    found = ", ".join(f"{tuple(v.shape)} {v.dtype}" for v in inputs)
                    raise InvalidArgumentError(
                        f"{describe_op(op)}: the GPU kernel failed on inputs [{found}]: "
                        f"{type(exc).__name__}: {exc}") from exc
        self._store(op, outs, values, "gpu")
        if self.check_numerics:
            check_finite(op, [v.copy_to_host(stream=ctx.stream) for v in outs])

    def _on_gpu(self, value, ctx):
        rt = self._gpu.rt
        return value if rt.is_device_array(value) else rt.to_device(value, ctx.stream)

    def _run_gpu_state(self, op, values, ctx, state):
        """Variables on a GPU: read and assigned as device arrays, kept there."""
        var = op.attrs.get("variable")
        if op.type == "Variable":
            raw = state.read_raw(var)
            value = self._on_gpu(raw, ctx)
            if value is not raw:  # first use on the GPU: keep it resident from now on
                state.resident[var] = (raw, value)
            return (value,)
        if op.type == "ReadVariable":
            return (self._on_gpu(state.read_latest_raw(var), ctx),)
        if op.type == "InitVariables":
            for v in op.attrs["variables"]:
                state.pending[v] = v.initial_value
            return ()
        value = self._get(values, op.inputs[0], "gpu", ctx)
        if op.type in ("AssignAdd", "AssignSub"):
            current = self._on_gpu(state.read_latest_raw(var), ctx)
            entry = ("Add" if op.type == "AssignAdd" else "Sub", (),
                     (("in", 0), ("in", 1)), var.dtype.name, False)
            shape = np.broadcast_shapes(tuple(current.shape), tuple(value.shape))
            if tuple(shape) != tuple(var.shape):
                raise ShapeError(f"{describe_op(op)}: expected a value of the variable's "
                                 f"shape {var.shape}, found {tuple(value.shape)}")
            value = self._gpu.elementwise_group(ctx, [entry], [0], shape, [var.dtype],
                                                [current, value])[0]
        elif tuple(value.shape) != tuple(var.shape):
            raise ShapeError(f"{describe_op(op)}: expected a value of the variable's shape "
                             f"{var.shape}, found {tuple(value.shape)}")
        state.pending[var] = value
        return (value,)

    def _run_fused(self, step, values, ctx):
        inputs = [self._get(values, t, "gpu", ctx) for t in step["inputs"]]
        ops = step["ops"]
        code = 0
        if step["int_div"]:
            code = ctx.code(ops[0], "integer division by zero")
            for op in ops[1:]:
                ctx.code(op, "integer division by zero")
        try:
            outs = self._gpu.elementwise_group(
                ctx, step["entries"], step["wanted"], step["shape"],
                [op.outputs[0].dtype for op in ops], inputs, code)
        except ValueError as exc:  # inputs that do not broadcast to the static shape
            op = ops[0]
            found = ", ".join(f"{t.name} {tuple(v.shape)}"
                              for t, v in zip(step["inputs"], inputs))
            raise ShapeError(f"{describe_op(op)}: expected inputs that broadcast to "
                             f"{step['shape']}, found [{found}]: {exc}") from None
        for j, out in zip(step["wanted"], outs):
            values[(ops[j].outputs[0], "gpu")] = out
            if self.check_numerics:
                check_finite(ops[j], [out.copy_to_host(stream=ctx.stream)])


class _CpuSegment:
    """A stretch of consecutive CPU ops compiled as one plan: it reads ``inputs``
    (values from feeds or other devices) and returns ``outputs`` (values read later)."""

    def __init__(self, ops, inputs, outputs, plan):
        self.ops, self.inputs, self.outputs, self.plan = ops, inputs, outputs, plan
