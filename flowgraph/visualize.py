"""Seeing the graph: Graphviz DOT text and a Keras-like summary table.

>>> import flowgraph as fg
>>> with fg.Graph().as_default() as g:
...     y = fg.tanh(fg.placeholder(fg.float32, (2, 3), name="x"))
>>> print(fg.summary(y).splitlines()[2])  # doctest: +NORMALIZE_WHITESPACE
x      Placeholder  (2, 3)  float32  /cpu:0  0
"""
from __future__ import annotations

import numpy as np

from . import shapes as S
from .devices import DEFAULT_DEVICE
from .executor import needed_ops
from .graph import Graph, Operation, Tensor, register_renderer
from .nest import flatten

_PALETTE = ["#cfe2f3", "#d9ead3", "#fce5cd", "#ead1dc", "#fff2cc", "#d0e0e3", "#f4cccc"]


def _dot_escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def graph_to_dot(graph: Graph) -> str:
    """DOT text: one node per op (name, type, output shapes, device), one edge per
    data input (dashed for control inputs), one fill colour per device.
    """
    devices = sorted({op.device or DEFAULT_DEVICE for op in graph.operations})
    colour = {d: _PALETTE[i % len(_PALETTE)] for i, d in enumerate(devices)}
    lines = ["digraph flowgraph {", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    index = {op: i for i, op in enumerate(graph.operations)}
    for op in graph.operations:
        dev = op.device or DEFAULT_DEVICE
        parts = [op.name, op.type] + [f"{S.fmt(t.shape)} {t.dtype.name}" for t in op.outputs]
        label = "\\n".join(_dot_escape(p) for p in parts + [dev])
        lines.append(f'  n{index[op]} [label="{label}", fillcolor="{colour[dev]}"];')
    for op in graph.operations:
        for t in op.inputs:
            lines.append(f'  n{index[t.op]} -> n{index[op]} [label="{t.value_index}"];'
                         if len(t.op.outputs) > 1 else f"  n{index[t.op]} -> n{index[op]};")
        for c in op.control_inputs:
            lines.append(f"  n{index[c]} -> n{index[op]} [style=dashed];")
    lines.append("  subgraph cluster_legend { label=\"devices\";")
    for i, d in enumerate(devices):
        lines.append(f'    legend{i} [label="{d}", fillcolor="{colour[d]}"];')
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


register_renderer("dot", graph_to_dot)   # Graph.to_dot


def _flops(op):
    prim = op.primitive
    if prim.flops is None:
        return 0
    in_shapes = [t.shape for t in op.inputs]
    out_shapes = [t.shape for t in op.outputs]
    if not all(S.is_fully_defined(s) for s in in_shapes + out_shapes):
        return None
    return prim.flops(op, in_shapes, out_shapes)


def summary(fetches_or_graph) -> str:
    """A table of ops with output shape, dtype, device and FLOPs (``?`` where a shape
    is unknown), like Keras' ``model.summary()``. Given fetches, only the ops they
    need are listed.
    """
    if isinstance(fetches_or_graph, Graph):
        ops = fetches_or_graph.operations
    else:
        leaves, _ = flatten(fetches_or_graph,
                            is_leaf=lambda x: isinstance(x, (Tensor, Operation))
                            or hasattr(x, "_as_tensor"))
        roots = []
        for leaf in leaves:
            if hasattr(leaf, "_as_tensor"):
                leaf = leaf._as_tensor()
            roots.append(leaf.op if isinstance(leaf, Tensor) else leaf)
        ops = needed_ops(roots, set())
    rows = [("Op", "Type", "Output shape", "Dtype", "Device", "FLOPs")]
    total, unknown = 0, False
    for op in ops:
        flops = _flops(op)
        if flops is None:
            unknown = True
        else:
            total += flops
        shape = ", ".join(S.fmt(t.shape) for t in op.outputs) or "-"
        dtype = ", ".join(sorted({t.dtype.name for t in op.outputs})) or "-"
        rows.append((op.name, op.type, shape, dtype, op.device or DEFAULT_DEVICE,
                     "?" if flops is None else f"{flops:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt_row = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    rule = "=" * len(fmt_row(rows[0]))
    out = [fmt_row(rows[0]), rule] + [fmt_row(r) for r in rows[1:]] + [rule]
    out.append(f"Ops: {len(ops)}   FLOPs: {total:,}{' + unknown' if unknown else ''}")
    return "\n".join(out)


__all__ = ["graph_to_dot", "summary", "np"]
