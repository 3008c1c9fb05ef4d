"""Graph partitions on remote workers: ops placed on ``"/job:worker/task:N/..."`` run
on MPI rank ``N``.

Every rank runs the same program, so every rank holds the same graph. A session whose
run needs ops with a task prefix uses a :class:`PartitionPlan`: each rank walks the ops
in creation (topological) order, runs only those placed on its task, and every data
edge that crosses tasks becomes a send/receive pair. Ops without a task prefix run on
task 0, except ``InitVariables`` (every rank resets its own variables).

Why this cannot deadlock: sends are non-blocking (``MPI_Isend``) and a receive is
posted only when its consumer is next; a rank blocks only on a value whose producer
comes earlier in the common op order, so the earliest blocked receive always has a
producer that can run. Tags are the edge's index in the plan's list of crossing edges,
which every rank computes identically. Fetched values are sent to every rank (one
``allgather`` at the end of the run), so ``sess.run`` returns the same on all ranks.

A failure inside a run on one rank would leave its peers waiting for messages that
never come, so the failing rank prints the error and aborts the whole job. Errors that
every rank sees alike (a missing feed, a bad placement) are raised before any message
is sent and leave the session usable.

Variables live on the task of their ``Variable`` op: only that rank reads and updates
them (``sess.variable_value`` on another rank shows that rank's stale copy; fetch the
variable instead).

**Compiled** (the default, ``optimize=True``): :func:`compile_partition` lowers the
whole run with concrete shapes on every rank (every rank has the graph and the feed
shapes, so both ends of an edge agree on its shape), keeps this rank's nodes, turns
each crossing edge into a ``Recv`` node (a value source) on the consumer's rank and a
``Send`` node (run for effect) on the producer's, and compiles that program with the
usual passes and plan (:mod:`flowgraph.distributed.steps` has the steps). The send and
receive nodes are chained by control edges in the order of their producers' creation,
the same order on every rank, which is what keeps the argument above: every step a
receive waits for on a peer comes earlier in that common order, and the chain also
stops fusion or scheduling from moving a send after a receive. Messages are the same
as the reference plan's, so ranks may even run different kinds of plan.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.device("/job:worker/task:0/cpu:0"):
...         y = fg.constant(2.0) * 3.0
...     float(fg.Session().run(y))  # one process: task 0 is this process
6.0
"""
from __future__ import annotations

import sys
import time
import traceback

import numpy as np

from .. import shapes as S
from ..devices import DEFAULT_DEVICE, local_device, split_device
from ..errors import FlowgraphError, PlacementError, describe_op
from ..executor import ReferencePlan, evaluate_op
from ..explain import StepInfo
from .comm import world
from .steps import RECV, SEND


def _every_rank(op):
    """Does every rank run ``op`` rather than one task (declared ``every_rank``)?"""
    return op.primitive.every_rank


def has_task(device) -> bool:
    """Whether a canonical device string names a remote task."""
    return device is not None and device.startswith("/job:")


def task_of(op) -> int:
    """The task (MPI rank) an op is placed on; 0 without a task prefix."""
    if not has_task(op.device):
        return 0
    return split_device(op.device)[1] or 0


class PartitionPlan:
    """Runs this rank's share of one (fetches, feeds) signature; see the module doc.

    Attributes for inspection: ``local_ops`` (what this rank runs), ``edges`` (every
    crossing ``(tensor, consumer_task)`` in tag order), ``sends`` and ``recvs`` (this
    rank's).
    """

    def __init__(self, graph, fetch_tensors, target_ops, feed_tensors, config):
        self.world = w = world()
        base = ReferencePlan(graph, fetch_tensors, target_ops, feed_tensors,
                             config.check_numerics)  # raises for a missing feed
        self.graph = graph
        self.fetch_tensors = base.fetch_tensors
        self.feed_tensors = base.feed_tensors
        self.check_numerics = config.check_numerics
        fed = set(feed_tensors)
        for op in base.ops:
            if op.primitive.kind == "collective":
                # it would run on one task while its peers never join: a hang
                raise PlacementError(
                    f"{describe_op(op)}: a collective (every rank must run it) in a run "
                    "whose ops are placed on tasks; expected data parallelism "
                    "(DistributedOptimizer, no /job:.../task:N devices) or partitions, "
                    "not both in one run")
        self.task = {op: self._resolve_task(op, w.size, config) for op in base.ops}
        self._check_local_devices(base.ops, config)

        edges = {}
        for op in base.ops:
            for t in op.inputs:
                if t in fed or _every_rank(op):
                    continue
                src, dst = self.task[t.op], self.task[op]
                if src != dst:
                    edges.setdefault((t, dst), len(edges))
        if len(edges) > w.tag_ub:
            raise FlowgraphError(f"a partitioned run with {len(edges)} crossing edges; "
                                 f"this MPI allows tags up to {w.tag_ub}")
        self.edges = list(edges)
        me = w.rank
        self.local_ops = [op for op in base.ops
                          if _every_rank(op) or self.task[op] == me]
        # op -> [(tensor, dest, tag)] to send after it runs; [(tensor, source, tag)]
        # to receive before it runs.
        self.sends, self.recvs = {}, {}
        for (t, dst), tag in edges.items():
            if self.task[t.op] == me:
                self.sends.setdefault(t.op, []).append((t, dst, tag))
        received = set()
        for op in self.local_ops:
            for t in op.inputs:
                key = (t, me)
                if key in edges and key not in received:
                    received.add(key)
                    self.recvs.setdefault(op, []).append((t, self.task[t.op], edges[key]))
        self.fetch_owner = [None if t in fed else self.task[t.op] for t in self.fetch_tensors]

    @property
    def _device(self):
        return f"/job:worker/task:{self.world.rank}/cpu:0"

    @staticmethod
    def _resolve_task(op, size, config):
        task = task_of(op)
        if task < size:
            return task
        if config.allow_soft_placement:
            return 0
        raise PlacementError(
            f"{describe_op(op)}: placed on device '{op.device}', task {task}, but the job "
            f"has {size} process{'es' if size > 1 else ''}; expected tasks 0..{size - 1} "
            f"(launch with `mpiexec -n {task + 1} python -m mpi4py ...`, or "
            "SessionConfig(allow_soft_placement=True) to run it on task 0)")

    def _check_local_devices(self, ops, config):
        local = {local_device(op.device) for op in ops if has_task(op.device)}
        local |= {op.device for op in ops if op.device and not has_task(op.device)}
        missing = local - {DEFAULT_DEVICE}
        if not missing or config.allow_soft_placement:
            return
        from ..devices import list_devices
        available = list_devices()
        for op in ops:
            dev = local_device(op.device) if has_task(op.device) else op.device
            if dev is not None and dev not in available:
                raise PlacementError(
                    f"{describe_op(op)}: placed on device '{op.device}', whose local part "
                    f"'{dev}' this machine does not have; expected one of "
                    f"{', '.join(available)} (or SessionConfig(allow_soft_placement=True))")

    # --- running -----------------------------------------------------------------------
    def run(self, feeds, state, metadata=None):
        w = self.world
        try:
            values = self._run_local(feeds, state, metadata)
        except Exception as exc:
            if w.size == 1:
                raise
            # The peers are waiting for this rank's messages: end the job, loudly.
            print(f"flowgraph.distributed: rank {w.rank} of {w.size} failed in a "
                  f"partitioned run and aborts the job:\n{''.join(traceback.format_exc())}",
                  file=sys.stderr, flush=True)
            w.abort(1)
            raise exc  # not reached
        return self._share_fetches(values, feeds)

    def run_traced(self, feeds, state, metadata):
        """``run``, recording each step's start and end (``metadata.record``)."""
        return self.run(feeds, state, metadata)

    def _run_local(self, feeds, state, metadata=None):
        w = self.world
        values = dict(feeds)
        requests, in_flight = [], []
        with np.errstate(all="ignore"):
            for op in self.local_ops:
                for t, source, tag in self.recvs.get(op, ()):
                    values[t] = self._receive(t, source, tag)
                inputs = [values[t] for t in op.inputs] if not _every_rank(op) else []
                start = None if metadata is None else time.perf_counter_ns()
                for t, v in zip(op.outputs, self._evaluate(op, inputs, state)):
                    if t not in feeds:
                        values[t] = v
                if start is not None:
                    metadata.record(StepInfo("reference", self._device, [op.name]), start,
                                    time.perf_counter_ns())
                for t, dest, tag in self.sends.get(op, ()):
                    requests.append(self._send(values[t], t, dest, tag, in_flight))
        w.waitall(requests)
        return values

    def _evaluate(self, op, inputs, state):
        return evaluate_op(op, inputs, state, self.check_numerics)

    def _send(self, value, tensor, dest, tag, in_flight):
        if S.is_fully_defined(tensor.shape):
            buf = np.ascontiguousarray(value, dtype=tensor.dtype)
            in_flight.append(buf)  # keep the buffer alive until the send completes
            return self.world.isend(buf, dest, tag)
        return self.world.isend_object(np.asarray(value), dest, tag)

    def _receive(self, tensor, source, tag):
        if S.is_fully_defined(tensor.shape):
            buf = np.empty(tensor.shape, tensor.dtype)
            return self.world.recv_into(buf, source, tag)
        return self.world.recv_object(source, tag)

    def describe_steps(self):
        """What ``Session.explain`` shows: this rank's ops (reference kernels) and
        its sends and receives."""
        device = self._device
        infos = []
        for op in self.local_ops:
            for t, source, tag in self.recvs.get(op, ()):
                infos.append(StepInfo("recv", device, [f"{t.name} from task {source}"]))
            infos.append(StepInfo("reference", device, [op.name]))
            for t, dest, tag in self.sends.get(op, ()):
                infos.append(StepInfo("send", device, [f"{t.name} to task {dest}"]))
        return infos

    def _share_fetches(self, values, feeds):
        w = self.world
        if w.size == 1:
            return [values[t] for t in self.fetch_tensors]
        mine = [values[t] if owner == w.rank else None
                for t, owner in zip(self.fetch_tensors, self.fetch_owner)]
        everyone = w.allgather(mine)
        return [values[t] if t in feeds else everyone[owner][i]
                for i, (t, owner) in enumerate(zip(self.fetch_tensors, self.fetch_owner))]


# --- compiled partitions ---------------------------------------------------------------------

def compile_partition(graph, fetch_tensors, target_ops, feed_tensors, feed_arrays, config):
    """The plan of a partitioned run: this rank's part compiled
    (:class:`CompiledPartitionPlan`), or the reference :class:`PartitionPlan` for runs
    the compiler does not take (unknown shapes, unsupported ops)."""
    base = PartitionPlan(graph, fetch_tensors, target_ops, feed_tensors, config)
    try:
        return CompiledPartitionPlan(base, graph, target_ops, feed_arrays, config)
    except _NotCompiled:
        return base


class _NotCompiled(Exception):
    pass


def local_program(base, prog):
    """This rank's part of ``prog`` (the whole run lowered, one node per op): its own
    nodes, a ``Recv`` node per value received, a ``Send`` node per value sent, chained
    in the common order (see the module doc). Returns ``(program, local fetch
    tensors)``."""
    from ..passes import Node, Program
    me = base.world.rank

    def local(op):
        return _every_rank(op) or base.task[op] == me

    edges = {edge: tag for tag, edge in enumerate(base.edges)}
    received, keyed, comm = {}, [], []
    # Local nodes another task's node depends on by a control edge only (an update in a
    # group placed elsewhere): they run for effect, so they are targets here.
    controlled = []
    for n in prog.nodes:
        if n.type == "Feed":
            keyed.append(((-1, 0, 0), n))
            continue
        if not local(n.origin):
            controlled += [c for c in n.controls if c.type != "Feed" and local(c.origin)]
            continue
        inputs = []
        for m, i in n.inputs:
            if m.type == "Feed" or local(m.origin):
                inputs.append((m, i))
                continue
            if _every_rank(n.origin):
                raise _NotCompiled("a replicated op reads another task's value")
            t = m.origin.outputs[i]
            r = received.get(t)
            if r is None:
                tag = edges[(t, me)]
                r = received[t] = Node(RECV, [], {"source": base.task[t.op], "tag": tag,
                                                  "static": S.is_fully_defined(t.shape)},
                                       m.origin, [m.shapes[i]], [m.dtypes[i]],
                                       order=m.order)
                keyed.append(((m.order, 1, tag), r))
                comm.append(((m.order, tag), r))
            inputs.append((r, 0))
        n.inputs = inputs
        n.controls = [c for c in n.controls if c.type == "Feed" or local(c.origin)]
        keyed.append(((n.order, 0, 0), n))
        for t, dest, tag in base.sends.get(n.origin, ()):
            send = Node(SEND, [(n, t.value_index)], {"dest": dest, "tag": tag,
                                                    "static": S.is_fully_defined(t.shape)},
                        n.origin, [], [], order=n.order)
            keyed.append(((n.order, 1, tag), send))
            comm.append(((n.order, tag), send))
    comm.sort(key=lambda kn: kn[0])
    for (_, a), (_, b) in zip(comm, comm[1:]):
        b.controls.append(a)
    keyed.sort(key=lambda kn: kn[0])
    fed = set(base.feed_tensors)
    fetches, local_fetches = [], []
    for t, v, owner in zip(base.fetch_tensors, prog.fetches, base.fetch_owner):
        if t in fed or owner == me:
            fetches.append(v)
            local_fetches.append(t)
    kept = {n for _, n in keyed}
    targets = [n for n in prog.targets if n in kept] + [n for _, n in comm]
    targets += [n for n in dict.fromkeys(controlled) if n not in targets]
    return Program([n for _, n in keyed], fetches, targets), local_fetches


class CompiledPartitionPlan(PartitionPlan):
    """A :class:`PartitionPlan` whose local part runs as one compiled plan with its
    sends and receives as plan steps (``compiled``: the
    :class:`~flowgraph.plan.CompiledPlan`)."""

    def __init__(self, base, graph, target_ops, feed_arrays, config):
        from .. import passes
        from ..plan import CompiledPlan
        self.__dict__.update(base.__dict__)
        shapes = {t: a.shape for t, a in zip(base.feed_tensors, feed_arrays)}
        try:
            prog = passes.lower(base.fetch_tensors, target_ops, base.feed_tensors,
                                [shapes[t] for t in base.feed_tensors])
        except passes.NotCompilable as exc:
            raise _NotCompiled(str(exc)) from None
        prog, self.local_fetches = local_program(base, prog)
        prog = passes.run_pipeline(prog)
        device = self._device
        # (This rank's ops are the targets of the plan's error replay: the reference
        # kernels, run locally, name the op that failed.)
        self.compiled = CompiledPlan(prog, graph, self.local_fetches, self.local_ops,
                                     base.feed_tensors, config, device=device)
        self.step_infos = self.compiled.step_infos
        self.kernel_sources = self.compiled.kernel_sources

    def wait_compiled(self, timeout=None):
        """Block until this rank's plan runs its compiled kernels (Session.wait_compiled)."""
        return self.compiled.wait_compiled(timeout)

    def _run_local(self, feeds, state, metadata=None):
        plan = self.compiled
        outs = (plan.run(feeds, state) if metadata is None
                else plan.run_traced(feeds, state, metadata))
        values = dict(feeds)
        values.update(zip(self.local_fetches, outs))
        return values
