"""Rewrite passes: the compiler's graph IR and the ordered pipeline that optimizes it.

The compiler lowers the ops of one run (fetches, feeds, feed shapes) to a
:class:`Program` of :class:`Node` objects in topological order, with *concrete* shapes
(feed shapes are part of a plan's key, so every shape is known). Each pass is
"program in, program out" and can be run and tested alone. :data:`PIPELINE` is the
whole optimization, in order, in one place.

Modules: :mod:`.ir` (Node, Program, rewriting helpers), :mod:`.lowering` (ops to a
Program), :mod:`.simplify` (prune, fold, simplify, CSE), :mod:`.zeros` (matmul work
by known zeros dropped), :mod:`.gathers` (matmuls moved ahead of embedding
lookups from small tables), :mod:`.matmuls` (GEMM stacking, batching, splitting,
untransposing), :mod:`.fusion` (elementwise fusion).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float64, (2,), name="x")
...     y = fg.identity(x * 1.0) + 0.0
...     prog = lower([y], [], [x], [(2,)])
...     prog = run_pipeline(prog)
>>> [n.type for n in prog.nodes]
['Feed']
"""
from __future__ import annotations

from .ir import (  # noqa: F401  (the package's public names)
    FLOAT_OR_BOOL, FOLD_LIMIT, KNOWN_KINDS, Node, PURE_KINDS, Program)
from .lowering import (  # noqa: F401  (the package's public names)
    KNOWN_VALUE_LIMIT, NotCompilable, lower)
from .simplify import (  # noqa: F401  (the package's public names)
    cse, fold_constants, prune, simplify)
from .matmuls import (  # noqa: F401  (the package's public names)
    FOLD_ROW_BLOCK, UNTRANSPOSE_MAX_ASPECT, UNTRANSPOSE_MIN_ROWS, add_before_split,
    batch_input_matmuls, fold_column_sums_into_matmuls, narrow_split_matmuls,
    split_bias_adds, stack_matmul_sums, stack_reduce_sums, untranspose_matmul_operands)
from .gathers import (  # noqa: F401  (the package's public names)
    push_gathers_into_gradients, push_gathers_through_matmuls)
from .zeros import drop_zero_products  # noqa: F401  (the package's public names)
from .fusion import (  # noqa: F401  (the package's public names)
    Group, SIBLING_CANDIDATES, fusable, fusable_on,
    fusable_reduction, fuse_elementwise, merge_into_readers, recompute_in_readers)


PIPELINE = [prune, fold_constants, drop_zero_products, simplify, cse, prune,
            push_gathers_through_matmuls, narrow_split_matmuls, stack_matmul_sums,
            stack_reduce_sums, cse, push_gathers_into_gradients, batch_input_matmuls,
            add_before_split, cse, untranspose_matmul_operands,
            fold_column_sums_into_matmuls, split_bias_adds, fuse_elementwise,
            recompute_in_readers, merge_into_readers]
"""The optimization passes, in order. Each takes and returns a :class:`Program`."""


def run_pipeline(prog, passes=PIPELINE):
    """Run ``passes`` over ``prog`` in order; returns the rewritten program."""
    for p in passes:
        prog = p(prog)
    return prog
