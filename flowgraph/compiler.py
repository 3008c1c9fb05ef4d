"""The graph compiler: the ops of one run -> a :class:`~flowgraph.plan.CompiledPlan`.

``compile_plan`` lowers the run's ops to the pass IR with concrete shapes (feed shapes
are part of the plan's key), runs the pass pipeline (:data:`flowgraph.passes.PIPELINE`:
prune, constant folding, simplification, CSE, elementwise fusion) and builds the plan:
a schedule of prebound kernel calls over buffers planned by liveness. Each distinct
fused kernel is compiled once per structure and cached on disk
(:mod:`kernels.cache`), so the T steps of an unrolled RNN share their kernels.

Runs the compiler does not handle go to the reference plan: ops placed off the CPU
(the GPU executor hooks in there) and graphs whose shapes cannot be made concrete
(the reference then reports any error exactly as specified).

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


def compile_plan(graph, fetch_tensors, target_ops, feed_tensors, feed_arrays, config):
    """Build the plan a session runs for one (fetches, feeds, feed shapes) signature."""
    from . import passes
    from .plan import CompiledPlan

    ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(feed_tensors))
    if any(op.device not in (None, DEFAULT_DEVICE) for op in ops):
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)
    try:
        prog = passes.lower(fetch_tensors, target_ops, feed_tensors,
                            [a.shape for a in feed_arrays], ops=ops)
    except passes.NotCompilable:
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)
    fed = set(feed_tensors)
    if any(op.type == "Placeholder" for op in ops if op.outputs
           and op.outputs[0] not in fed):
        # A missing feed: the reference plan raises the specified FeedError.
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)
    prog = passes.run_pipeline(prog)
    try:
        return CompiledPlan(prog, graph, fetch_tensors, target_ops, feed_tensors, config)
    except MemoryError:
        # The plan preallocates its buffers: a value too large for memory fails here,
        # before any op runs. The reference plan runs op by op and names the op that
        # cannot allocate its result (InvalidArgumentError), as the specification does.
        return reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config)


def reference_plan(graph, fetch_tensors, target_ops, feed_tensors, config):
    return ReferencePlan(graph, fetch_tensors, target_ops, feed_tensors,
                         config.check_numerics)
