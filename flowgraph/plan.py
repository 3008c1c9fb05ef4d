"""Plans: an optimized :class:`~flowgraph.passes.Program` as a linear schedule of
prebound kernel calls over preallocated buffers.

Building a plan:

1. **Schedule.** Units (a fused group or a single node) are ordered topologically,
   by the original creation order where free; state ops keep their relative order.
2. **Values.** Every output is a *buffer* (from the pool), a *view* of another value
   (reshape, transpose, split, basic slicing: no copy), or a constant.
3. **Buffers by liveness.** Walking the schedule, a buffer goes back to the pool after
   its last reader (over all views of it) and is reused, best size first. A fused
   elementwise kernel may write in place over an input it reads last (same element
   count, plain layout): loads precede stores in the generated loop, so it is safe.
4. **Steps.** Each unit becomes a zero-argument callable with its arrays bound, so
   :meth:`CompiledPlan.run` is a tight loop.

Fetched values are copied out at the end (the buffers are reused by the next run), and
a plan runs one call at a time (a lock), as its buffers are shared.
"""
from __future__ import annotations

import heapq
import math
import threading
import time
from collections import Counter

import numpy as np

from . import shapes as S
from .devices import DEFAULT_DEVICE
from .errors import FlowgraphError, NumericsError, describe_op
from .explain import StepInfo
from .executor import ReferencePlan, RunState, run_state_op
from .ops import get_primitive, slice_spec_to_index

VIEW_TYPES = frozenset({"Reshape", "Transpose", "Split", "SplitLike", "StridedSlice"})
# What explain() calls the step of a node run by a registered CPU kernel ("kernel"
# otherwise; the collective and communication steps are registered by
# flowgraph.distributed.steps).
STEP_KINDS = {"MatMul": "gemm", "Copy": "copy", "BroadcastTo": "copy", "Concat": "copy",
              "Reshape": "copy", "AllReduceMean": "allreduce", "Send": "send",
              "Recv": "recv"}
# Fused ops whose operands a kernel may take in either order with bitwise-equal results
# (not Maximum/Minimum: their order decides the sign of a zero result).
COMMUTATIVE = frozenset({"Add", "Mul"})


# --- scheduling ------------------------------------------------------------------------

def schedule(prog, device_of=None):
    """Units in an executable order: ``[(kind, payload)]`` where kind is ``"group"``
    (payload a Group) or ``"node"``.

    ``device_of(unit)``: for a placed program, the unit's device; among the units
    ready to run, those on the device of the unit just scheduled go first, so that a
    placed run switches devices (and copies values) as rarely as its dependencies
    allow.
    """
    unit_of = {}
    units = []
    for n in prog.nodes:
        if n.group is not None:
            if n.group not in unit_of:
                unit_of[n.group] = len(units)
                units.append(("group", n.group))
            unit_of[n] = unit_of[n.group]
        else:
            unit_of[n] = len(units)
            units.append(("node", n))
    preds = [set() for _ in units]
    last_state = None   # (collectives are ordered by control edges: passes.lower)
    for n in prog.nodes:
        u = unit_of[n]
        for v in n.inputs:
            preds[u].add(unit_of[v[0]])
        for c in n.controls:
            preds[u].add(unit_of[c])
        # Assignments (and reads of the latest value) keep their program order. A plain
        # Variable read sees the value from the start of the run whatever runs before
        # it, so it is left out of that chain: chained, a read created between two
        # assignments (an optimizer's slot made while building the updates) could
        # close a cycle through a fused region that feeds the first assignment and
        # reads the variable.
        if n.kind == "state" and n.type != "Variable":
            if last_state is not None:
                preds[u].add(unit_of[last_state])
            last_state = n
    for u, p in enumerate(preds):
        p.discard(u)
    key = [max(n.order for n in (p.nodes if k == "group" else [p])) for k, p in units]
    succs = [[] for _ in units]
    indegree = [len(p) for p in preds]
    for u, p in enumerate(preds):
        for q in p:
            succs[q].append(u)
    if device_of is not None:
        order = _schedule_by_device(units, key, succs, indegree, device_of)
    else:
        ready = [(key[u], u) for u in range(len(units)) if not indegree[u]]
        heapq.heapify(ready)
        order = []
        while ready:
            _, u = heapq.heappop(ready)
            order.append(units[u])
            for w in succs[u]:
                indegree[w] -= 1
                if not indegree[w]:
                    heapq.heappush(ready, (key[w], w))
    if len(order) != len(units):
        raise FlowgraphError("internal error: the fused graph has a cycle")
    return order


def _schedule_by_device(units, key, succs, indegree, device_of):
    """The topological order of ``schedule`` with one ready heap per device: stay on
    the current device while it has ready units, else go to the earliest ready one."""
    devices = [device_of(unit) for unit in units]
    ready = {}
    for u in range(len(units)):
        if not indegree[u]:
            ready.setdefault(devices[u], []).append((key[u], u))
    for heap in ready.values():
        heapq.heapify(heap)
    order, current = [], None
    while any(ready.values()):
        if not ready.get(current):
            current = min((heap[0], d) for d, heap in ready.items() if heap)[1]
        _, u = heapq.heappop(ready[current])
        order.append(units[u])
        for w in succs[u]:
            indegree[w] -= 1
            if not indegree[w]:
                heapq.heappush(ready.setdefault(devices[w], []), (key[w], w))
    return order


# --- the plan --------------------------------------------------------------------------

class _Storage:
    __slots__ = ("nbytes", "array", "last_use", "pinned")

    def __init__(self, nbytes, pinned=False):
        self.nbytes, self.array, self.last_use, self.pinned = nbytes, None, -1, pinned


class CompiledPlan:
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
        return self._kernels is None or self._kernels.finished()

    def wait_compiled(self, timeout=None):
        """Block until every generated kernel of the plan is compiled and in use
        (``compile="background"``); True when done, False on timeout."""
        if self._kernels is None:
            return True
        done = self._kernels.wait(timeout)
        with self._lock:
            self._apply_swaps()
        return done

    # -- values and buffers ----------------------------------------------------------
    def _layout(self, prog, units):
        """Decide for every value: constant, view of another value, value inside a
        fused kernel, or pooled buffer; assign buffers to storage blocks by liveness.
        """
        users = prog.users()
        fetched = set(prog.fetches)
        self._group_outputs = {}
        inputs_of, produced = [], []
        for kind, p in units:
            nodes = p.nodes if kind == "group" else [p]
            members = set(nodes)
            ins = list(dict.fromkeys(v for n in nodes for v in n.inputs
                                     if v[0] not in members))
            if kind == "group":
                self._group_outputs[p] = [
                    (n, 0) for n in p.nodes
                    if (n, 0) in fetched or any(u not in members for u in users.get((n, 0), ()))]
                outs = self._group_outputs[p]
            else:
                outs = [(p, k) for k in range(len(p.shapes))]
            inputs_of.append(ins)
            produced.append(outs)

        kinds, plain = {}, {}    # plain: a whole buffer in C order
        for outs in produced:
            for v in outs:
                n, k = v
                if n.type == "Const":
                    kinds[v], plain[v] = "const", False
                elif n.type in VIEW_TYPES and _view_possible(n, plain[n.inputs[0]]):
                    kinds[v] = "view"
                    plain[v] = n.type == "Reshape" and plain[n.inputs[0]]
                else:
                    kinds[v], plain[v] = "buffer", True
        self._kinds = kinds

        # Concatenation without a copy: each input is written straight into its slice
        # of the output buffer (a "window"): the weight-gradient stacking, the
        # per-step [h, x] of an unrolled RNN (itself a window of that stacking) and the
        # gradient of a split all end up here. An input that cannot be a window (a
        # constant, one used twice, a window elsewhere) is copied in by the
        # concatenation's step; with none left, the concatenation runs no step.
        # Windows along other axes than 0 are strided views: only for inputs no
        # reshape reads (NumPy would silently reshape a copy).
        # A value that a second concatenation reads as well (the r and z gate
        # gradients of a GRU go into both the input and the recurrent weight
        # gradient) is stored there too by the generated kernel that computes it
        # (``also_into``), rather than copied in afterwards.
        window_of, self._elided, self._concat_copies = {}, set(), {}
        also_into = self._also_into = {}
        for outs in produced:
            for v in outs:
                n = v[0]
                if n.type != "Concat" or kinds[v] != "buffer":
                    continue
                axis = S.normalize_axis(n.attrs["axis"], len(n.shapes[0]))
                offset, copied = 0, []
                counts = Counter(n.inputs)
                for w in n.inputs:
                    size = w[0].shapes[w[1]][axis]
                    if (kinds.get(w) == "buffer" and counts[w] == 1
                            and (axis == 0 or not any(
                                u.type in VIEW_TYPES for u in users.get(w, ())))):
                        if w not in window_of:
                            window_of[w] = (v, axis, offset)
                        elif _stores_twice(w[0]):
                            also_into.setdefault(w, []).append((v, axis, offset))
                        else:
                            copied.append((w, axis, offset))
                    else:
                        copied.append((w, axis, offset))
                    offset += size
                if len(copied) == len(n.inputs):
                    continue
                self._concat_copies[n] = copied
                if not copied:
                    self._elided.add(n)
        for w in window_of:
            kinds[w] = "window"

        def root(v):
            while True:
                if kinds[v] == "view":
                    v = v[0].inputs[0]
                elif kinds[v] == "window":
                    v = window_of[v][0]
                else:
                    return v
        self._root = root

        # Liveness: the last unit reading each buffer, through any view of it.
        last = {}
        for i, ins in enumerate(inputs_of):
            for v in ins:
                r = root(v)
                last[r] = max(last.get(r, -1), i)
        for v in prog.fetches:
            last[root(v)] = len(units)

        pool = {}          # nbytes -> [free _Storage]
        self._storages = []

        def take(nbytes):
            fits = [size for size, free in pool.items()
                    if free and nbytes <= size <= 2 * nbytes + 64]
            if fits:
                return pool[min(fits)].pop()
            s = _Storage(nbytes)
            self._storages.append(s)
            return s

        storage_of, live, releases = {}, {}, {}
        self.largest_live_set = 0
        live_bytes = [0]     # sum(live.values()), kept as it changes (not summed per unit)

        def go_live(v, nbytes):
            live[v] = nbytes
            live_bytes[0] += nbytes

        def go_dead(v):
            live_bytes[0] -= live.pop(v)
        for i, (kind, p) in enumerate(units):
            outs = [v for v in produced[i] if kinds[v] == "buffer"]
            handed = {}
            if kind == "group" and not uses_ufuncs(p):
                # In place: overwrite a plain input buffer this kernel reads last (a
                # generated loop loads every input before it stores; a ufunc chain
                # writes outputs early, so it gets no in-place outputs).
                for v in inputs_of[i]:
                    if (kinds[v] == "buffer" and last.get(v) == i and v in live
                            and sum(root(w) == v for w in inputs_of[i]) == 1):
                        for o in outs:
                            if (o not in handed and _same_layout(o, v)
                                    and o[0].type != "ReduceSum"):   # zeroed first
                                handed[o] = v
                                break
            for w in produced[i]:
                targets = [root(w)] if kinds[w] == "window" else []
                targets += [root(c) for c, _, _ in also_into.get(w, ())]
                for c in targets:
                    if c not in storage_of:
                        storage_of[c] = take(_nbytes(c))
                        go_live(c, _nbytes(c))
                        releases.setdefault(last.setdefault(c, i), []).append(c)
            for o in outs:
                if o in storage_of:
                    continue              # a concatenation whose inputs filled it
                if o in handed:
                    storage_of[o] = storage_of[handed[o]]
                    go_dead(handed[o])
                else:
                    storage_of[o] = take(_nbytes(o))
                go_live(o, _nbytes(o))
                last.setdefault(o, i)      # never read: free right after
                releases.setdefault(last[o], []).append(o)
            self.largest_live_set = max(self.largest_live_set, live_bytes[0])
            for v in releases.pop(i, ()):
                if v in live:
                    go_dead(v)
                    s = storage_of[v]
                    pool.setdefault(s.nbytes, []).append(s)
        self.memory_stats = {
            "pooled_bytes": sum(s.nbytes for s in self._storages),
            "largest_live_set_bytes": self.largest_live_set,
        }
        for s in self._storages:
            s.array = np.empty(max(s.nbytes, 1), np.uint8)

        arrays = {}
        self._parents = {}

        def base_of(v):
            """The value a window or view is cut from (None for the others)."""
            if kinds[v] == "window":
                return window_of[v][0]
            if kinds[v] == "view":
                return v[0].inputs[0]
            return None

        def array_of(v):
            # Down the chain of views and windows to a value with an array, then
            # back up (a loop: slices of slices can be as deep as the graph).
            chain = []
            while v not in arrays:
                chain.append(v)
                base = base_of(v)
                if base is None:
                    break
                v = base
            for v in reversed(chain):
                n, k = v
                if kinds[v] == "window":
                    c, axis, offset = window_of[v]
                    a = self._window(arrays[c], v, axis, offset)
                elif kinds[v] == "const":
                    a = np.asarray(n.attrs["value"])
                elif kinds[v] == "view":
                    a = _make_view(n, k, arrays[n.inputs[0]])
                    if n.type != "Reshape":     # a window of its input, for codegen
                        self._parents[id(a)] = arrays[n.inputs[0]]
                else:
                    raw = storage_of[v].array
                    a = raw[:_nbytes(v)].view(n.dtypes[k]).reshape(n.shapes[k])
                arrays[v] = a

        for outs in produced:
            for v in outs:
                array_of(v)
        self._arrays = arrays
        # The second places a value is stored (kept here: _parents is keyed by id()).
        self._also_arrays = {w: [self._window(arrays[c], w, axis, offset)
                                 for c, axis, offset in places]
                             for w, places in also_into.items()}

    def _window(self, parent, v, axis, offset):
        """The slice of ``parent`` that value ``v`` fills at ``offset`` along ``axis``;
        a strided one is recorded in ``_parents`` (the kernel indexes the parent)."""
        a = parent[_along(axis, offset, v[0].shapes[v[1]][axis])]
        if not a.flags.c_contiguous:
            self._parents[id(a)] = parent
        return a

    # -- steps -------------------------------------------------------------------------
    def _build_steps(self, prog, units):
        from kernels import codegen, cpu  # noqa: F401 - registers the CPU kernels

        arrays = self._arrays
        steps, checked = [], []
        self._finishers = []    # run once after the steps (waiting for MPI sends)
        self._kernel_slots = []   # (kernel job, index in steps, the unit's step list)
        self._swaps = []          # (index, unit steps, compiled step), staged to swap in
        self._feed_loads = []
        self._scratch = {}
        self._interim_scratch = {}
        quiet = True      # no step is a NumPy call that could raise an FP warning
        epilogues = self._epilogues(prog, units)
        self.step_infos = []    # one per entry of _checked_steps: what explain shows
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
                outs = [(n, k) for k in range(len(n.shapes)) if self._kinds[(n, k)] == "buffer"]
                origin = n
                if n.type == "Feed":
                    self._feed_loads.append((arrays[(n, 0)], n.feed))
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

    def _group_steps(self, group, arrays):
        """A fused region: one generated kernel, or for regions with transcendental
        functions a chain of NumPy ufunc calls over shared scratch buffers (see
        :mod:`kernels.ufuncs` for the measurements behind that choice).
        """
        outs = self._group_outputs[group]
        if not outs:
            return []
        if uses_ufuncs(group):
            return self._ufunc_steps(group, arrays)
        return [self._interim_step(group, arrays)]

    def _interim_step(self, group, arrays):
        """A region meant for a generated kernel, as NumPy ufunc calls: what runs
        until (or, with ``compile="never"``, instead of) the kernel is compiled.

        Every value goes to scratch first and the outputs are copied out at the end:
        the plan may have given an output the memory of an input (safe for a kernel,
        which loads before it stores, not for a chain), or a second place to go.
        """
        from kernels.ufuncs import bind, has_ufunc
        outs = self._group_outputs[group]
        local, calls, slots = {}, [], {}
        scratch = self._interim_scratch
        for n in group.nodes:
            shape, dtype = n.shapes[0], n.dtypes[0]
            slot = slots[(dtype.str, shape)] = slots.get((dtype.str, shape), -1) + 1
            out = scratch.get((dtype.str, shape, slot))
            if out is None:
                out = scratch[(dtype.str, shape, slot)] = np.empty(shape, dtype)
            v = (n, 0)
            local[v] = out
            ins = [local[w] if w in local else arrays[w] for w in n.inputs]
            if has_ufunc(n.type):
                calls.append(bind(n.type, n.attrs, out, ins))
            else:     # no ufunc for it: its reference kernel until the loop compiles
                calls.append(self._reference_step(n, ins, [out]))
        copies = [(arrays[v], local[v]) for v in outs]
        copies += [(a, local[v]) for v in outs for a in self._also_arrays.get(v, ())]
        copyto = np.copyto

        def interim_region():
            for call in calls:
                call()
            for dst, src in copies:
                copyto(dst, src)
        return interim_region

    def _kernel_job(self, group, arrays, shape=None):
        """``prepare() -> (source, argument types, arguments)`` for the group's
        generated kernel (:func:`kernels.codegen.prepare_fused`), run where it
        compiles (it imports Numba)."""
        from kernels.codegen import FusedSpec
        members = {n: i for i, n in enumerate(group.nodes)}
        ins, index = [], {}
        spec = FusedSpec(0)
        for n in group.nodes:
            operands = []
            for v in n.inputs:
                if v[0] in members:
                    operands.append(("node", members[v[0]]))
                else:
                    if v not in index:
                        index[v] = len(ins)
                        ins.append(v)
                    operands.append(("in", index[v]))
            if n.type in COMMUTATIVE:
                # One order for the same arithmetic (values computed in the kernel
                # first, then inputs, each by number): one kernel, not two. Exact:
                # IEEE addition and multiplication are commutative.
                operands.sort(key=lambda ref: (ref[0] == "in", ref[1]))
            spec.nodes.append((n.type, operands, dict(n.attrs), n.dtypes[0].name))
        spec.n_inputs = len(ins)
        spec.input_dtypes = [v[0].dtypes[v[1]].name for v in ins]
        outs = self._group_outputs[group]
        spec.outputs = [members[v[0]] for v in outs]
        shape = group.shape if shape is None else shape
        bound = [np.broadcast_to(arrays[v], shape) if arrays[v].shape != shape else arrays[v]
                 for v in ins] + [_kept_dims(v[0], arrays[v], shape) for v in outs]
        for v in outs:
            for a in self._also_arrays.get(v, ()):
                spec.outputs.append(members[v[0]])
                bound.append(a)
        parents = self._parents
        label = "+".join(dict.fromkeys(n.type for n in group.nodes))

        def prepare():
            from kernels.codegen import prepare_fused
            return prepare_fused(spec, bound, parents, shape)
        prepare.label = label
        return prepare

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

    def _ufunc_steps(self, group, arrays):
        from kernels.ufuncs import bind
        outs = set(self._group_outputs[group])
        local, steps, slots = {}, [], {}
        for n in group.nodes:
            v = (n, 0)
            if v in outs:
                out = arrays[v]
            else:
                key = (n.dtypes[0].str, group.shape, slots.setdefault(
                    (n.dtypes[0].str, group.shape), 0))
                slots[(n.dtypes[0].str, group.shape)] += 1
                out = self._scratch.get(key)
                if out is None:
                    out = self._scratch[key] = np.empty(group.shape, n.dtypes[0])
            local[v] = out
            ins = [local[w] if w in local else arrays[w] for w in n.inputs]
            steps.append(bind(n.type, n.attrs, out, ins))
        return steps

    def _fused_kernel(self, group, arrays, shape=None):
        """The group's generated kernel, compiled now (row-blocked epilogues)."""
        from kernels import bind_call
        from kernels.cache import compile_kernel
        source, types, args = self._kernel_job(group, arrays, shape)()
        self.kernel_sources.add(source)
        return bind_call(compile_kernel(source, "kernel", types), args)

    def _concat_copy_step(self, n, arrays):
        """The parts of a concatenation that are not windows, copied into place."""
        out = arrays[(n, 0)]
        pairs = []
        for w, axis, offset in self._concat_copies[n]:
            pairs.append((out[_along(axis, offset, w[0].shapes[w[1]][axis])], arrays[w]))
        copyto = np.copyto

        def copy_parts():
            for dst, src in pairs:
                copyto(dst, src)
        return copy_parts

    def _node_step(self, n, arrays):
        """``(step, kind)`` for one node (``kind`` as :meth:`explain` shows it)."""
        from kernels import lookup
        from kernels.cpu import build
        ins = [arrays[v] for v in n.inputs]
        outs = [arrays[(n, k)] for k in range(len(n.shapes))]
        if n.kind == "state":
            return self._state_step(n, ins, outs), "state"
        if n.kind == "random":
            return self._random_step(n, ins, outs), "kernel"
        builder = lookup(n.type, "cpu")
        if getattr(builder, "compiles", False) and self._compile_mode != "eager":
            # A Numba kernel: the reference kernel runs until it is compiled in the
            # background (tiering), or for good with compile="never".
            step = self._reference_step(n, ins, outs)
            if self._compile_mode == "background":
                step.later = _later(lambda: build(n.type, n.attrs, ins, outs), n.type)
            return step, STEP_KINDS.get(n.type, "kernel")
        step = build(n.type, n.attrs, ins, outs)
        if step is not None:
            finish = getattr(step, "finish", None)   # work after the last step (MPI sends)
            if finish is not None:
                self._finishers.append(finish)
            return step, STEP_KINDS.get(n.type, "kernel")
        return self._reference_step(n, ins, outs), "reference"

    @staticmethod
    def _reference_step(n, ins, outs):
        """A step running ``n``'s NumPy reference kernel into ``outs``."""
        ref = get_primitive(n.type).ref if n.type != "BroadcastTo" else None
        copyto = np.copyto

        def reference_step():
            values = ref(n, *ins)
            if not isinstance(values, tuple):
                values = (values,)
            for out, value in zip(outs, values):
                if np.shape(value) != out.shape:
                    raise FlowgraphError(f"produced shape {np.shape(value)}, expected "
                                         f"{out.shape}")
                copyto(out, value, casting="unsafe")
        return reference_step

    def _state_step(self, n, ins, outs):
        holder, op, copyto = self._state, n.origin, np.copyto

        def state_step():
            values = run_state_op(op, ins, holder[0])
            for out, value in zip(outs, values):
                copyto(out, value)
        return state_step

    def _random_step(self, n, ins, outs):
        # The reference kernel with the Philox rounds in a Numba loop: the same 32-bit
        # words (exact integer arithmetic), converted by the same NumPy code, so the
        # compiled and reference paths draw bit-identical numbers.
        holder, ref, copyto = self._state, get_primitive(n.type).ref, np.copyto

        def step_with(generator):
            def random_step():
                copyto(outs[0], ref(n, *ins, counter=holder[0].random_counter(),
                                    generator=generator))
            return random_step

        if self._compile_mode == "eager":
            from kernels.philox_cpu import contiguous_blocks
            return step_with(contiguous_blocks)
        # The NumPy rounds (the same words) until the Numba loop is compiled.
        step = step_with(None)
        if self._compile_mode == "background":
            def with_numba_rounds():
                from kernels.philox_cpu import contiguous_blocks
                contiguous_blocks((0, 0), 0, 1)          # compiles it here, not in a run
                return step_with(contiguous_blocks)
            step.later = _later(with_numba_rounds, "Philox")
        return step

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


def _later(build, label):
    """A background job building a plan step whose kernel Numba compiles (the
    :func:`kernels.compiles` builders, the random ops' Philox loop): ``build()``
    returns the step, or ``None`` to keep the one that runs now."""
    build.builds_step = True
    build.label = label
    return build


def uses_ufuncs(group):
    """Run this region as NumPy ufunc calls rather than one generated loop?

    A cost model from measurements on this machine (one core, float32, 64x256 and
    16x64 LSTM cells). A generated loop vectorizes (see :mod:`kernels.cache` and the
    row views of :mod:`kernels.codegen`): about 0.3 ns per element per array it reads
    or writes, plus per element 4 ns for each exp, tanh or sigmoid in float32
    (:mod:`kernels.vmath`) and 12-33 ns in float64 (scalar libm calls). A ufunc call
    costs about 1.2 us plus 0.6 ns per element (NumPy's SIMD loops; sigmoid is four
    calls). So arithmetic regions are loops; large float64 regions full of
    transcendental functions are ufunc chains.
    """
    from kernels.ufuncs import has_ufunc
    if not all(has_ufunc(n.type) for n in group.nodes):
        return False    # an op with no ufunc entry: the generated loop (never a KeyError)
    members = set(group.nodes)
    operands = len({v for n in group.nodes for v in n.inputs if v[0] not in members})
    elems = math.prod(group.shape)
    per_element = 0.3 * (operands + len(group.nodes) // 2)
    for n in group.nodes:
        costs = LOOP_NS_FLOAT32 if n.dtypes[0] == np.float32 else LOOP_NS
        per_element += costs.get(n.type, 0.0)
    loop_ns = 500.0 + elems * per_element
    calls = sum(4 if n.type == "Sigmoid" else 1 for n in group.nodes)
    ufunc_ns = calls * (1200.0 + 0.6 * elems)
    return ufunc_ns < loop_ns


LOOP_NS = {"Tanh": 33.0, "Sigmoid": 12.0, "Exp": 12.0, "Log": 12.0}
LOOP_NS_FLOAT32 = {"Tanh": 4.0, "Sigmoid": 4.0, "Exp": 2.5, "Log": 12.0}


# A GEMM output at least this large (bytes) is produced in row blocks with its
# epilogue (see CompiledPlan._epilogues). Off (infinite) by default: measured with
# OpenBLAS on this project's machine (`python benchmarks/epilogue.py`), the blocked GEMM
# was 0-56% slower than one GEMM and a separate epilogue pass, for every shape tried
# (OpenBLAS packs the right operand again for each block, which costs more than the
# memory traffic the fusion saves). A BLAS with cheap repeated calls may differ; set it
# (1 << 20, say) and measure.
EPILOGUE_MIN_BYTES = float("inf")
EPILOGUE_BLOCK_BYTES = 1 << 18


def _along(axis, offset, size):
    """The index of ``size`` entries from ``offset`` along ``axis``."""
    return (slice(None),) * axis + (slice(offset, offset + size),)


def _stores_twice(node):
    """Can the kernel computing ``node`` store it in a second place? A generated
    loop can (one more output); a ufunc chain or a reduction's accumulator cannot."""
    group = node.group
    return (group is not None and node.type not in ("ReduceSum", "BroadcastTo")
            and not uses_ufuncs(group))


def _block_rows(m):
    """Rows per block: about EPILOGUE_BLOCK_BYTES of output (L2-sized)."""
    row_bytes = max(1, int(np.prod(m.shapes[0][1:])) * m.dtypes[0].itemsize)
    return max(8, EPILOGUE_BLOCK_BYTES // row_bytes)


def _kept_dims(node, array, shape):
    """A fused reduction's output as a view with the loop's rank (1 where reduced)."""
    if node.type != "ReduceSum" or node.attrs.get("keepdims"):
        return array
    axes = S.normalize_axes(node.attrs["axis"], len(shape))
    return np.expand_dims(array, tuple(axes))


def _nbytes(v):
    n, k = v
    return int(math.prod(n.shapes[k])) * n.dtypes[k].itemsize


def _same_layout(o, v):
    (a, i), (b, j) = o, v
    return (math.prod(a.shapes[i]) == math.prod(b.shapes[j])
            and a.dtypes[i].itemsize == b.dtypes[j].itemsize)


def _view_possible(n, input_plain):
    """Reshapes of a whole C-order buffer, transposes and slices are views."""
    if n.type == "Reshape":
        return input_plain
    if n.type == "StridedSlice":
        return len(n.shapes[0]) > 0   # all-integer indexing gives a scalar, not a view
    return True


def _make_view(n, k, x):
    t = n.type
    if t == "Reshape":
        return x.reshape(n.shapes[0])
    if t == "Transpose":
        return np.transpose(x, n.attrs["perm"])
    if t in ("Split", "SplitLike"):
        axis = n.attrs["axis"] % x.ndim
        start = sum(n.shapes[j][axis] for j in range(k))
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + n.shapes[k][axis])
        return x[tuple(index)]
    if t == "StridedSlice":
        return x[slice_spec_to_index(n.attrs["spec"])]
    raise AssertionError(t)
