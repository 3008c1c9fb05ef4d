"""The graph compiler: the ops of one run -> a compiled plan. One pipeline for every
placement: ``lower -> place -> passes -> plan``.

1. **Place.** Every op gets the device it runs on after soft placement
   (:func:`flowgraph.placement.place`), then the lowering check
   (:func:`flowgraph.backends.host_fallback`): an op its device has no kernel for
   runs on the host (documented fallback, never a ``KeyError``).
2. **Lower** the run's ops to the pass IR with concrete shapes (feed shapes are part
   of the plan's key); each node carries its op's device.
3. **Passes** (:data:`flowgraph.passes.PIPELINE`: prune, constant folding,
   simplification, CSE, matmul stacking, elementwise fusion) over the whole placed
   program; merging, stacking and fusion stay within one device. Then
   :func:`flowgraph.backends.legalize` moves to the host what a device cannot run.
4. **Plan.** All on the CPU: a :class:`~flowgraph.plan.CompiledPlan` (prebound
   kernel calls over buffers planned by liveness; each distinct fused kernel compiled
   once per structure and cached on disk, :mod:`kernels.cache`). Otherwise a
   :class:`~flowgraph.placed_plan.PlacedPlan`: each device's stretches through its
   backend, with copy steps where values cross devices.

The reference plan (``optimize=False``) is the oracle; the compiler hands it the runs
whose shapes cannot be made concrete (it then reports any error exactly as
specified).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float64, (3,))
...     y = fg.tanh(x * 2.0) + 1.0
...     with fg.Session() as sess:
...         out = sess.run(y, {x: [0.0, 0.0, 0.0]})
>>> out.tolist()
[1.0, 1.0, 1.0]
"""
from __future__ import annotations

from .devices import DEFAULT_DEVICE
from .executor import ReferencePlan, needed_ops


def compile_plan(graph, fetch_tensors, target_ops, feed_tensors, feed_arrays, config,
                 chosen=None):
    """Build the plan a session runs for one (fetches, feeds, feed shapes) signature.

    ``chosen``: the placement (``{op: device}``, :func:`flowgraph.placement.place`);
    what is built depends on where ops *landed*, not on what they asked for: a graph
    soft-placed onto the CPU is an all-CPU run.
    """
    from . import passes
    from .plan import CompiledPlan

    ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(feed_tensors))
    if chosen is None:
        chosen = {op: op.device or DEFAULT_DEVICE for op in ops}
    placed = place_ops(ops, chosen)
    try:
        prog = passes.lower(fetch_tensors, target_ops, feed_tensors,
                            [a.shape for a in feed_arrays], ops=ops, placement=placed)
    except passes.NotCompilable:
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)
    fed = set(feed_tensors)
    if any(op.type == "Placeholder" for op in ops if op.outputs
           and op.outputs[0] not in fed):
        # A missing feed: the reference plan raises the specified FeedError.
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)
    from . import loop_passes
    prog = loop_passes.run(passes.run_pipeline(loop_passes.before(prog)))
    try:
        if placed is not None:
            from .backends import backend_class, legalize
            backends = {d: backend_class(d)(d, config)
                        for d in {prog.device(n) for n in prog.nodes} | {DEFAULT_DEVICE}}
            legalize(prog, backends)
            if any(prog.device(n) != DEFAULT_DEVICE for n in prog.nodes):
                from .placed_plan import PlacedPlan
                return PlacedPlan(prog, graph, fetch_tensors, target_ops, feed_tensors,
                                  config, backends)
        return CompiledPlan(prog, graph, fetch_tensors, target_ops, feed_tensors, config)
    except MemoryError:
        # The plan preallocates its buffers: a value too large for memory fails here,
        # before any op runs. The reference plan runs op by op and names the op that
        # cannot allocate its result (InvalidArgumentError), as the specification does.
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)


def place_ops(ops, chosen):
    """The placement pass: ``{op: device}`` with every op on the device it runs on
    (:func:`flowgraph.backends.host_fallback`), or ``None`` when all run on the CPU."""
    if all(chosen.get(op, DEFAULT_DEVICE) == DEFAULT_DEVICE for op in ops):
        return None
    from .backends import host_fallback
    from .placement import check_one_gpu
    check_one_gpu(chosen)      # (place() did, for the session's runs)
    placed = {op: host_fallback(op, chosen.get(op, DEFAULT_DEVICE)) for op in ops}
    if all(d == DEFAULT_DEVICE for d in placed.values()):
        return None
    return placed


def reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config):
    return ReferencePlan(graph, fetch_tensors, target_ops, feed_tensors,
                         config.check_numerics)
