"""Lowering: the ops of one run (fetches, feeds, feed shapes) to a :class:`Program`."""
from __future__ import annotations

import math
import numpy as np

from ..ops import get_primitive
from .ir import KNOWN_KINDS, Node, Program


# --- lowering --------------------------------------------------------------------------

class _ProxyTensor:
    """A shape rule's view of an input: concrete shape, dtype, and ``value`` when the
    lowering could fold it (``flowgraph.ops.static_value`` reads it)."""

    __slots__ = ("shape", "dtype", "name", "value")

    def __init__(self, shape, dtype, name, value=None):
        self.shape, self.dtype, self.name, self.value = shape, dtype, name, value


# The values of ops declared ``shape_only`` are known once the feed shapes are fixed,
# and so are those of small pure ops of known values. Shape rules that need a value
# (Range's limit, Fill's dims) read these during lowering.
KNOWN_VALUE_LIMIT = 1 << 10   # largest value (elements) lowering keeps for shape rules


def _known_value(node, inputs, known):
    """The value of ``node`` if it can be computed now, else ``None``."""
    if node.type == "Const":
        return node.attrs["value"]
    if node.primitive.shape_only:
        args = [np.broadcast_to(np.zeros((), d), s) for s, d in
                ((v[0].shapes[v[1]], v[0].dtypes[v[1]]) for v in inputs)]
    elif inputs and all(v in known for v in inputs) and node.primitive.pure \
            and not node.controls:
        args = [known[v] for v in inputs]
    else:
        return None
    if any(math.prod(s) > KNOWN_VALUE_LIMIT for s in node.shapes):
        return None
    try:
        with np.errstate(all="ignore"):
            out = get_primitive(node.type).ref(node, *args)
    except Exception:
        return None
    return out if len(node.shapes) == 1 and not isinstance(out, tuple) else None


def _loop_rows(op, shapes):
    """The outputs of ``While`` op ``op`` that are unknown only in their number of
    rows (emits and history of a loop whose trip count is data), or ``None`` when
    another shape is unknown."""
    if op.type != "While":
        return None
    a = op.attrs
    nv, ne, nsum = a["n_vars"], a["n_emits"], a["n_sums"]
    rows = tuple(range(nv, nv + ne)) + tuple(range(nv + ne + nsum, 2 * nv + ne + nsum))
    for k, s in enumerate(shapes):
        if s is None:
            return None
        unknown = [i for i, d in enumerate(s) if d is None]
        if unknown and (k not in rows or unknown != [0]):
            return None
    return tuple(k for k in rows if shapes[k][0] is None)


class _ProxyOp:
    """What a primitive's shape rule needs, with concrete input shapes."""

    __slots__ = ("type", "attrs", "inputs", "name", "location")

    def __init__(self, op, inputs):
        self.type, self.attrs, self.name, self.location = op.type, op.attrs, op.name, op.location
        self.inputs = inputs


class NotCompilable(Exception):
    """The run cannot be compiled (an unknown shape, a rule that fails): use the
    reference plan, which reports any error exactly as the specification does.
    """


def lower(fetch_tensors, target_ops, feed_tensors, feed_shapes, ops=None, placement=None):
    """The ops needed for a run as a :class:`Program` with concrete shapes.

    ``ops``: those ops (``executor.needed_ops``) when the caller has them already;
    ``placement``: ``{op: device}`` for a run with ops off the CPU (``Program.device``).
    """
    from ..executor import needed_ops
    fed = {t: s for t, s in zip(feed_tensors, feed_shapes)}
    if ops is None:
        ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(fed))
    value = {}     # Tensor -> (Node, index)
    made = {}      # Operation -> Node
    known = {}     # (Node, index) -> value known before the run (see _known_value)
    nodes = []
    dynamic = set()  # (Node, index): a loop's rows of a length known only at run time
    for t, shape in fed.items():
        node = Node("Feed", [], {}, t.op, [tuple(shape)], [t.dtype], order=-1)
        node.feed = t
        value[t] = (node, 0)
        nodes.append(node)
    for op in ops:
        if op.outputs and all(t in fed for t in op.outputs):
            continue
        primitive = op.primitive
        if primitive.kind not in KNOWN_KINDS:
            raise NotCompilable(f"{op.name}: primitive kind {primitive.kind!r}")
        inputs = [value[t] for t in op.inputs]
        if dynamic and op.type != "While" and any(v in dynamic for v in inputs):
            raise NotCompilable(f"{op.name}: reads a loop's history of unknown length")
        proxy = _ProxyOp(op, [_ProxyTensor((None,) + tuple(n.shapes[i][1:])
                                           if (n, i) in dynamic else n.shapes[i],
                                           n.dtypes[i], t.name, known.get((n, i)))
                              for (n, i), t in zip(inputs, op.inputs)])
        try:
            specs = primitive.infer(proxy)
        except Exception as exc:
            raise NotCompilable(f"{op.name}: {exc}") from None
        shapes = [s for s, _ in specs]
        attrs = op.attrs
        if any(s is None or None in s for s in shapes):
            rows = _loop_rows(op, shapes)
            if rows is None:
                raise NotCompilable(f"{op.name}: unknown output shape")
            # A loop whose trip count is known only when it runs: its history and
            # emits (one row per iteration) are sized on each run by the loop step
            # (flowgraph.loop_step), which hands them to the loop that reads them
            # (the backward loop) outside the plan's buffers; here they get an empty
            # placeholder buffer.
            shapes = [(0,) + tuple(s[1:]) if k in rows else s for k, s in enumerate(shapes)]
            attrs = {**attrs, "_dynamic": rows}
        node = Node(op.type, inputs, attrs, op, shapes, [d for _, d in specs],
                    [made[c] for c in op.control_inputs if c in made], op._id)
        dynamic.update((node, k) for k in attrs.get("_dynamic", ()))
        made[op] = node
        nodes.append(node)
        # (integer values only: shapes, sizes and their arithmetic; float math is left
        # to fold_constants, which keeps lowering cheap on large training graphs)
        if len(shapes) == 1 and node.dtypes[0].kind in "iu" and (
                op.type == "Const" or primitive.shape_only or any(v in known for v in inputs)):
            folded = _known_value(node, inputs, known)
            if folded is not None:
                known[(node, 0)] = np.asarray(folded)
        for i, t in enumerate(op.outputs):
            if t not in fed:
                value[t] = (node, i)
    # Collectives run in creation order on every rank: a control chain, so that every
    # pass (fusion included) sees the order, not just the scheduler.
    collectives = [n for n in nodes if n.kind == "collective"]
    for a, b in zip(collectives, collectives[1:]):
        b.controls.append(a)
    if dynamic and (placement is not None or any(value[t] in dynamic for t in fetch_tensors)):
        raise NotCompilable("a loop's history of unknown length is fetched or placed")
    return Program(nodes, [value[t] for t in fetch_tensors],
                   [made[o] for o in target_ops if o in made], placement)
