"""The CPU backend: a stretch of a placed plan is one compiled CPU plan.

The stretch's nodes (already optimized with the whole placed program: CSE, matmul
stacking, fusion within the device) become a :class:`~flowgraph.passes.Program` of
their own, whose feeds are the values the stretch reads from elsewhere (run feeds,
values copied from a GPU) and whose fetches are the values read after it. A
:class:`~flowgraph.plan.CompiledPlan` runs it: generated Numba kernels or ufunc
chains for fused regions, BLAS GEMMs, registered CPU kernels, reference kernels for
the rest, buffers planned by liveness.

>>> CpuBackend("/cpu:0", None).runs(None)
True
"""
from __future__ import annotations

from . import Backend, Step


class CpuBackend(Backend):
    """The host: runs every node (the fallback of the other backends)."""

    kind = "cpu"

    def runs(self, node) -> bool:
        return True

    def stretch(self, units, reads, writes, wanted, plan):
        from ..passes import Node, Program
        from ..plan import CompiledPlan
        nodes = [n for kind, p in units for n in (p.nodes if kind == "group" else [p])]
        members = set(nodes)
        fed = {}
        for v in reads:
            n, k = v
            feed = Node("Feed", [], {}, n.origin, [n.shapes[k]], [n.dtypes[k]], order=-1)
            feed.feed = v          # the key of its value in the stretch's feeds
            fed[v] = (feed, 0)
        for n in nodes:     # (each node is in one stretch: rewiring it here is local)
            n.inputs = [fed.get(v, v) for v in n.inputs]
            n.controls = [c for c in n.controls if c in members]  # (earlier stretches ran)
        sub = Program([f for f, _ in fed.values()] + nodes, list(writes), [])
        graph, fetches, targets, feeds = plan.reference_args
        compiled = CompiledPlan(sub, graph, fetches, targets, feeds, self.config,
                                device=self.device, on_failure=plan.stretch_failed)
        reads = list(reads)

        def run(inputs, ctx, state):
            return compiled.run(dict(zip(reads, inputs)), state)

        def run_traced(inputs, ctx, state, metadata):
            return compiled.run_traced(dict(zip(reads, inputs)), state, metadata)

        return [Step("compiled", self.device, [n.name for n in nodes],
                     [(v, "cpu") for v in reads], [(v, "cpu") for v in writes], run,
                     infos=compiled.step_infos, run_traced=run_traced, plan=compiled)]

    def upload(self, host, ctx):
        return host

    def download(self, value, ctx):
        return value
