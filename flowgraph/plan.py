"""Plans: an optimized :class:`~flowgraph.passes.Program` as a linear schedule of
prebound kernel calls over preallocated buffers.

Building a plan:

1. **Schedule** (:mod:`flowgraph.schedule`). Units (a fused group or a single node)
   are ordered topologically, by the original creation order where free; state ops
   keep their relative order.
2. **Values and buffers** (:mod:`flowgraph.buffers`). Every output is a *buffer* (from
   the pool), a *view* of another value (reshape, transpose, split, basic slicing: no
   copy), or a constant. Walking the schedule, a buffer goes back to the pool after
   its last reader (over all views of it) and is reused, best size first. A fused
   elementwise kernel may write in place over an input it reads last (same element
   count, plain layout): loads precede stores in the generated loop, so it is safe.
   Two kinds of buffer keep their contents between runs instead: a concatenation's
   with constant parts (written on the first run only), and a variable's read buffer
   where the kernel computing its new value writes over it (the next run's read copies
   nothing while the session holds the array this plan committed: ``_mirrors``).
3. **Steps** (:mod:`flowgraph.backends.cpu_steps`, the CPU backend's lowering). Each
   unit becomes a zero-argument callable with its arrays bound, so
   :meth:`CompiledPlan.run` is a tight loop; this module adds the row-blocked GEMM
   epilogues, the background compiler's swaps, running and replaying.

Fetched values are copied out at the end (the buffers are reused by the next run), and
a plan runs one call at a time (a lock), as its buffers are shared.
"""
from __future__ import annotations

import threading
import time

import numpy as np

# (uses_ufuncs, schedule: importable from here as before)
from .backends.cpu_steps import CpuSteps, uses_ufuncs  # noqa: F401
from .buffers import BufferLayout, _nbytes  # noqa: F401
from .devices import DEFAULT_DEVICE
from .errors import FlowgraphError, NumericsError, describe_op
from .executor import ReferencePlan, RunState
from .explain import StepInfo
from .schedule import schedule  # noqa: F401


class CompiledPlan(BufferLayout, CpuSteps):
    """A compiled run: ``run(feeds, state) -> [fetched arrays]``, like
    :class:`~flowgraph.executor.ReferencePlan` (its specification).

    ``kernel_sources`` lists the distinct generated kernels; ``memory_stats`` gives
    the bytes of all pooled buffers and of the largest live set.
    """

    def __init__(self, prog, graph, fetch_tensors, target_ops, feed_tensors, config,
                 device=DEFAULT_DEVICE, on_failure=None):
        self.feed_tensors = list(feed_tensors)
        self.fetch_tensors = list(fetch_tensors)
        self._reference_args = (graph, fetch_tensors, target_ops, feed_tensors)
        self._check_numerics = config.check_numerics
        self._compile_mode = getattr(config, "compile", "eager")
        self._lock = threading.Lock()
        self._state = [None]
        self.kernel_sources = set()
        self.device = device      # where every step runs (the placement's device)
        # ``on_failure(exc, origin)``: raises in place of the reference replay (a plan
        # that is one stretch of a placed plan: the placed plan replays the whole run)
        self._on_failure = on_failure
        self._kernels = None     # set by tiering.KernelSet: the generated kernels' progress
        # a loop body's plan keeps these feeds' buffers (loaded once per loop run)
        self._pinned_feeds = frozenset(getattr(config, "pinned_feeds", ()))
        # ... and these feeds' buffers, after their last reader, hold the fetches
        # in the same positions (a loop variable's new value: buffers.BufferLayout)
        self._carried_feeds = tuple(getattr(config, "carried_feeds", ()))
        self._subplans = []      # loop bodies' plans (flowgraph.loop_step): waited for too
        # variable -> [the array this plan's assignment committed last, while the
        # variable's read buffer still holds it] (buffers: _resident)
        self._mirrors = {}
        units = schedule(prog)
        self.n_units = len(units)
        self._layout(prog, units)
        self._build_steps(prog, units)
        from . import tiering
        tiering.start(self)

    @property
    def distinct_kernels(self):
        """The number of distinct generated kernels the plan runs (known once the
        background compiler has looked at them all: see :meth:`wait_compiled`)."""
        return len(self.kernel_sources)

    @property
    def compiled(self):
        """Are all generated kernels compiled (nothing left to compile)?"""
        return (self._kernels is None or self._kernels.finished()) and all(
            p.compiled for p in self._subplans)

    def wait_compiled(self, timeout=None):
        """Block until every generated kernel of the plan is compiled and in use
        (``compile="background"``); True when done, False on timeout."""
        done = True
        for sub in list(self._subplans):
            done = sub.wait_compiled(timeout) and done
        if self._kernels is None:
            return done
        done = self._kernels.wait(timeout) and done
        with self._lock:
            self._apply_swaps()
        return done

    # -- values and buffers ----------------------------------------------------------

    # -- steps -------------------------------------------------------------------------
    def _build_steps(self, prog, units):
        from kernels.cpu import codegen
        from kernels import cpu  # noqa: F401 - registers the CPU kernels

        arrays = self._arrays
        steps, checked = [], []
        self._finishers = []    # run once after the steps (waiting for MPI sends)
        self._kernel_slots = []   # (kernel job, index in steps, the unit's step list)
        self._swaps = []          # (index, unit steps, compiled step), staged to swap in
        self._feed_loads = []
        self._feed_values = {}    # feed tensor -> its value (flowgraph.loop_rows)
        # (kind, unit, index of its first step, its steps): which steps run which unit,
        # for rebinding a unit to other arrays (flowgraph.loop_rows)
        self._unit_spans = []
        self._scratch = {}
        self._interim_scratch = {}
        quiet = True      # no step is a NumPy call that could raise an FP warning
        epilogues = self._epilogues(prog, units)
        self.step_infos = []    # one per entry of _checked_steps: what explain shows
        # values some node or the fetches read (a state op stores only those)
        self._read_values = set(prog.users()).union(prog.fetches)
        for kind, p in units:
            if kind == "node" and p in epilogues:
                continue          # runs in row blocks with the region that follows it
            if kind == "group" and p in epilogues:
                unit_steps = [self._epilogue_step(epilogues[p], p, arrays)]
                quiet = False     # BLAS calls through NumPy
                outs, origin = self._group_outputs[p], p.nodes[-1]
                step_kind, covered = "gemm+fused kernel", [epilogues[p]] + p.nodes
            elif kind == "group":
                unit_steps = self._group_steps(p, arrays)
                quiet = quiet and not uses_ufuncs(p)
                outs, origin = self._group_outputs[p], p.nodes[-1]
                step_kind = "ufunc chain" if uses_ufuncs(p) else "fused kernel"
                covered = p.nodes
                if unit_steps and not uses_ufuncs(p):
                    # A generated kernel: compiled now, in the background, or never
                    # (tiering); until then the step is a chain of ufunc calls.
                    self._kernel_slots.append((self._kernel_job(p, arrays), len(steps),
                                               unit_steps))
            else:
                n = p
                # (a loop writes only the outputs something reads: loop_passes.
                # mark_live_outputs; check_numerics must not check the others' stale
                # or uninitialized contents)
                live = n.attrs.get("_live") if n.type == "While" else None
                outs = [(n, k) for k in range(len(n.shapes)) if self._kinds[(n, k)] == "buffer"
                        and (live is None or live[k])]
                origin = n
                if n.type == "Feed":
                    self._feed_loads.append((arrays[(n, 0)], n.feed))
                    self._feed_values[n.feed] = (n, 0)
                    continue
                if n.type == "Const" or self._kinds.get((n, 0)) == "view" or (
                        n.kind == "control") or n in self._elided:
                    continue
                covered = [n]
                if n in self._concat_copies:
                    unit_steps = [self._concat_copy_step(n, arrays)]
                    step_kind = "copy"
                else:
                    step, step_kind = self._node_step(n, arrays)
                    unit_steps = [step]
                    later = getattr(step, "later", None)
                    if later is not None:       # its Numba kernel compiles in the background
                        self._kernel_slots.append((later, len(steps), unit_steps))
                    quiet = quiet and n.kind == "state"
            if unit_steps:
                self._unit_spans.append(("epilogue" if p in epilogues else kind, p,
                                         len(steps), len(unit_steps)))
            steps.extend(unit_steps)
            if unit_steps:
                checked.append((unit_steps, [arrays[v] for v in outs
                                             if arrays[v].dtype.kind == "f"], origin))
                self.step_infos.append(StepInfo(step_kind, self.device,
                                                [m.name for m in covered]))
        self._quiet = quiet
        # Generated kernels raise no FP warnings; their interim ufunc chains may.
        self._quiet_compiled = quiet
        self._quiet = quiet and not self._kernel_slots
        self.memory_stats["scratch_bytes"] = sum(a.nbytes for a in self._scratch.values())
        self._steps = steps
        self._checked_steps = checked
        self._fetch_arrays = [arrays[v] for v in prog.fetches]
        self._fetch_values = list(prog.fetches)
        self._nonfinite_const = self._check_numerics and any(
            a.dtype.kind == "f" and not np.isfinite(a).all()
            for v, a in arrays.items() if self._kinds[v] == "const")

    def _epilogues(self, prog, units):
        """``{matmul: group, group: matmul}`` for matmuls whose output only the fused
        region scheduled right after them reads, when that output is large enough to
        leave the cache: the two then run in row blocks (GEMM a block, run the region on
        it while it is in cache), a bias/activation epilogue fused with the GEMM.
        """
        if self._compile_mode != "eager" or EPILOGUE_MIN_BYTES == float("inf"):
            return {}     # (row-blocked epilogues compile at once: eager mode only)
        users, fetched = prog.users(), set(prog.fetches)
        pairs = {}
        running = [(k, p) for k, p in units   # units that run a step (not constants, views)
                   if k == "group" or (p.type not in ("Const", "Feed")
                                       and self._kinds.get((p, 0)) != "view")]
        for (kind, m), (next_kind, g) in zip(running, running[1:]):
            if kind != "node" or m.type != "MatMul" or next_kind != "group":
                continue
            v = (m, 0)
            readers = users.get(v, ())
            rows = m.shapes[0][0] if len(m.shapes[0]) == 2 else 0
            if (readers and all(r.group is g for r in readers) and v not in fetched
                    and self._kinds[v] == "buffer" and not m.attrs["transpose_a"]
                    and g.shape == m.shapes[0] and not uses_ufuncs(g)
                    and _nbytes(v) >= EPILOGUE_MIN_BYTES and rows >= 2 * _block_rows(m)
                    and self._group_outputs[g] and self._row_blockable(m, g)
                    and not any(o in self._also_into for o in self._group_outputs[g])):
                pairs[m], pairs[g] = g, m
        return pairs

    def _row_blockable(self, m, g):
        """Every array of the region has the GEMM's rows or is broadcast along them,
        and no output of the region is memory the GEMM still reads."""
        rows = m.shapes[0][0]
        members = set(g.nodes)
        operands = [self._arrays[v] for n in g.nodes for v in n.inputs if v[0] not in members]
        outputs = [self._arrays[v] for v in self._group_outputs[g]]
        gemm_inputs = [self._arrays[v] for v in m.inputs]
        for a in operands + outputs:
            if a.ndim == 2 and a.shape[0] == rows:
                if not a.flags.c_contiguous or id(a) in self._parents:
                    return False
            elif a.ndim == 2 and a.shape[0] != 1:
                return False
        return not any(np.shares_memory(o, x) for o in outputs for x in gemm_inputs)

    def _epilogue_step(self, m, group, arrays):
        from kernels.cpu import build
        rows, block = m.shapes[0][0], _block_rows(m)
        out = arrays[(m, 0)]
        a, b = (arrays[v] for v in m.inputs)
        members = set(group.nodes)
        used = [v for n in group.nodes for v in n.inputs if v[0] not in members]
        used += self._group_outputs[group]
        pairs = []
        for start in range(0, rows, block):
            stop = min(start + block, rows)
            part = {v: arrays[v][start:stop] for v in used
                    if arrays[v].ndim == 2 and arrays[v].shape[0] == rows}
            gemm = build("MatMul", m.attrs, [a[start:stop], b], [out[start:stop]])
            region = self._fused_kernel(group, {**arrays, **part}, (stop - start,)
                                        + tuple(group.shape[1:]))
            pairs.append((gemm, region))

        def gemm_with_epilogue():
            for gemm, region in pairs:
                gemm()
                region()
        return gemm_with_epilogue


    def _apply_swaps(self):
        """Put compiled kernels in place of their interim steps (under the plan's
        lock, between runs: a run never changes kernels midway)."""
        while self._swaps:
            index, unit_steps, step = self._swaps.pop()
            self._steps[index] = step
            unit_steps[0] = step
        if self._kernels is not None and self._kernels.finished() and not self._swaps:
            self._quiet = self._quiet_compiled
            self._interim_scratch.clear()   # the chains that used it are gone


    # -- running -----------------------------------------------------------------------
    def run(self, feeds, state: RunState):
        with self._lock:
            if self._swaps:
                self._apply_swaps()
            self._state[0] = state
            try:
                for buf, tensor in self._feed_loads:
                    np.copyto(buf, feeds[tensor])
                if self._check_numerics:
                    with np.errstate(all="ignore"):
                        self._run_checked(feeds, state)
                elif self._quiet:
                    for step in self._steps:   # generated kernels raise no FP warnings
                        step()
                else:
                    with np.errstate(all="ignore"):   # NumPy calls might (overflow...)
                        for step in self._steps:
                            step()
                for finish in self._finishers:
                    finish()
            except NumericsError:
                raise
            except Exception as exc:
                self._replay(feeds, state, exc)
            finally:
                self._state[0] = None
            return [a.copy() for a in self._fetch_arrays]

    def run_traced(self, feeds, state, metadata):
        """``run``, recording each step's start and end (``metadata.record``). A
        separate loop, so that the untraced one pays nothing for tracing."""
        clock, record = time.perf_counter_ns, metadata.record
        with self._lock:
            if self._swaps:
                self._apply_swaps()
            self._state[0] = state
            try:
                for buf, tensor in self._feed_loads:
                    np.copyto(buf, feeds[tensor])
                if self._check_numerics and self._nonfinite_const:
                    self._replay(feeds, state, None)
                with np.errstate(all="ignore"):
                    for (unit_steps, outs, origin), info in zip(self._checked_steps,
                                                                self.step_infos):
                        start = clock()
                        for step in unit_steps:
                            step()
                        record(info, start, clock())
                        if self._check_numerics and not all(np.isfinite(o).all()
                                                            for o in outs):
                            self._replay(feeds, state, None, origin)
                for finish in self._finishers:
                    finish()
            except NumericsError:
                raise
            except Exception as exc:
                self._replay(feeds, state, exc)
            finally:
                self._state[0] = None
            return [a.copy() for a in self._fetch_arrays]

    def _run_checked(self, feeds, state):
        if self._nonfinite_const:
            self._replay(feeds, state, None)
        for unit_steps, outs, origin in self._checked_steps:
            for step in unit_steps:
                step()
            for out in outs:
                if not np.isfinite(out).all():
                    self._replay(feeds, state, None, origin)

    def _replay(self, feeds, state, exc, origin=None):
        """Run the reference plan on the same inputs: it names the original op that
        failed (or first made a NaN/Inf) exactly as the specification does.
        """
        if self._on_failure is not None:
            self._on_failure(exc, origin)
        replay_reference(self._reference_args, self._check_numerics, feeds, state, exc,
                         origin)


def replay_reference(reference_args, check_numerics, feeds, state, exc, origin=None,
                     named=False):
    """After a compiled plan failed with ``exc`` (or found a NaN/Inf made by node
    ``origin``), run the reference plan on the same inputs: it names the original op
    that failed exactly as the specification does. Raises in every case: where the
    reference succeeds, ``exc`` itself when ``named`` (a GPU kernel's index check names
    its op) and it is a ``FlowgraphError``, else an internal error."""
    graph, fetches, targets, feed_tensors = reference_args
    reference = ReferencePlan(graph, fetches, targets, feed_tensors, check_numerics)
    # the same run number for random ops (reserved in ``state``, if not yet)
    fresh = RunState(dict(state.snapshot), state._initial, state.random_counter)
    reference.run(feeds, fresh)   # raises the specified error
    if named and isinstance(exc, FlowgraphError):
        raise exc
    if exc is not None:
        raise FlowgraphError(f"internal error in the compiled plan (the reference path "
                             f"succeeds): {type(exc).__name__}: {exc}") from exc
    raise NumericsError(f"{describe_op(origin.origin or origin)}: produced a NaN or Inf "
                        "in the compiled plan")




# A GEMM output at least this large (bytes) is produced in row blocks with its
# epilogue (see CompiledPlan._epilogues). Off (infinite) by default: measured with
# OpenBLAS on this project's machine (`python benchmarks/epilogue.py`), the blocked GEMM
# was 0-56% slower than one GEMM and a separate epilogue pass, for every shape tried
# (OpenBLAS packs the right operand again for each block, which costs more than the
# memory traffic the fusion saves). A BLAS with cheap repeated calls may differ; set it
# (1 << 20, say) and measure.
EPILOGUE_MIN_BYTES = float("inf")
EPILOGUE_BLOCK_BYTES = 1 << 18




def _block_rows(m):
    """Rows per block: about EPILOGUE_BLOCK_BYTES of output (L2-sized)."""
    row_bytes = max(1, int(np.prod(m.shapes[0][1:])) * m.dtypes[0].itemsize)
    return max(8, EPILOGUE_BLOCK_BYTES // row_bytes)

