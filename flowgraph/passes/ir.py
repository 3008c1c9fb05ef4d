"""The compiler's graph IR: :class:`Node` and :class:`Program` (ops of one run in
topological order, with concrete shapes), the op kinds passes may rewrite, and the
helpers passes rewrite a program with. What a pass needs to know about a node's op
type it reads from the node's :class:`~flowgraph.primitives.Primitive`
(``node.primitive``): its kind, template, view, cheapness..."""
from __future__ import annotations

import numpy as np

from ..devices import DEFAULT_DEVICE
from ..primitives import PURE_KINDS, get_primitive

# Kinds the compiler knows how to plan; a run with any other kind of op (a primitive
# added later, say with data-dependent output shapes) runs on the reference plan.
# "random" ops are planned as their own steps, never folded or merged (not pure).
# Collectives (AllReduceMean) are kept, never merged or folded, and run in their order.
# "io" ops (Print: a line on stderr each run) are likewise never folded, merged or
# dropped: a reference step of their own.
KNOWN_KINDS = PURE_KINDS | {"source", "state", "control", "random", "collective", "io"}
# IR-only node types (declared in flowgraph.ops, ir_only=True): Feed, BroadcastTo, and
# the Send and Recv of a value crossing MPI tasks (flowgraph.distributed.partition):
# kind "comm", ordered among themselves by control edges, like collectives never pure.
FOLD_LIMIT = 1 << 16       # largest constant (elements) that folding may create
# The dtypes generated elementwise kernels take (integer arithmetic differs: division,
# overflow).
FLOAT_OR_BOOL = frozenset({"float32", "float64", "bool"})


class Node:
    """One IR node. ``inputs`` are ``(node, output_index)`` pairs; ``origin`` is the
    graph :class:`~flowgraph.graph.Operation` it came from (errors name it);
    ``order`` keeps the original creation order for scheduling.
    """

    __slots__ = ("type", "inputs", "attrs", "origin", "shapes", "dtypes", "controls",
                 "order", "group", "feed")

    def __init__(self, type_, inputs, attrs, origin, shapes, dtypes, controls=(), order=0):
        self.type = type_
        self.inputs = list(inputs)
        self.attrs = attrs
        self.origin = origin
        self.shapes = list(shapes)
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.controls = list(controls)
        self.order = order
        self.group = None
        self.feed = None   # the fed Tensor, for Feed nodes

    # The reference kernels read ``op.attrs`` and ``op.type``; a Node stands in for
    # the op there. ``name`` and ``location`` name the original op in errors.
    @property
    def name(self):
        return self.origin.name if self.origin is not None else self.type

    @property
    def location(self):
        return getattr(self.origin, "location", None)

    @property
    def primitive(self):
        """The :class:`~flowgraph.primitives.Primitive` of the node's type: every fact
        a pass or a backend reads about it."""
        return get_primitive(self.type)

    @property
    def kind(self):
        return get_primitive(self.type).kind

    def __repr__(self):
        return f"<Node {self.type} {self.name} {self.shapes}>"


class Program:
    """Nodes in topological order, the fetched values and the nodes run for effect.

    ``placement``: ``{Operation: device}`` when some op runs off the CPU (``None``: all
    on ``/cpu:0``). A node runs where the op it came from (its ``origin``) was placed,
    so nodes that passes create land with the op they stand for; feeds arrive on the
    host. Passes that merge, stack or fuse nodes only do so within one device.
    """

    def __init__(self, nodes, fetches, targets, placement=None):
        self.nodes = nodes
        self.fetches = fetches      # [(node, index)]
        self.targets = targets      # [node]
        self.placement = placement
        self.moved = {}             # node -> device, where a node leaves its op's device

    def device(self, node):
        """The device ``node`` runs on (``/cpu:0`` for feeds and unplaced programs)."""
        if self.placement is None or node.type == "Feed":
            return DEFAULT_DEVICE
        moved = self.moved.get(node)
        return moved if moved is not None else self.placement.get(node.origin, DEFAULT_DEVICE)

    def users(self):
        """``{(node, index): [consumer nodes]}``."""
        out = {}
        get = out.get
        for n in self.nodes:
            for v in n.inputs:
                readers = get(v)
                if readers is None:
                    out[v] = [n]
                else:
                    readers.append(n)
        return out


# --- helpers for rewriting -------------------------------------------------------------

def _rewrite(prog, visit):
    """Rebuild ``prog`` calling ``visit(node) -> None | (node, index) | [values]`` on
    each node (inputs already substituted). ``None`` keeps the node; a value or list of
    values replaces its outputs (new nodes among them are inserted in order).
    """
    originals = set(prog.nodes)
    subst, nodes, listed, dropped = {}, [], set(), set()

    def add_new(node):
        """List ``node`` after the new nodes it reads (an explicit stack, no recursion
        on depth)."""
        stack = [(node, False)]
        while stack:
            m, expanded = stack.pop()
            if m in listed or m in originals:
                continue
            if expanded:
                listed.add(m)
                nodes.append(m)
                continue
            stack.append((m, True))
            for v in reversed(m.inputs):
                stack.append((v[0], False))

    for n in prog.nodes:
        if subst:     # (nothing to substitute until a node is replaced: skip the copies)
            n.inputs = [subst.get(v, v) for v in n.inputs]
        if dropped and n.controls:
            n.controls = [c for c in n.controls if c not in dropped]
        result = visit(n)
        if result is None:
            nodes.append(n)
            listed.add(n)
            continue
        dropped.add(n)
        replacements = result if isinstance(result, list) else [result]
        for i, r in enumerate(replacements):
            subst[(n, i)] = r
            add_new(r[0])
    prog.nodes = nodes
    prog.fetches = [subst.get(v, v) for v in prog.fetches]
    prog.targets = [t for t in prog.targets if t not in dropped]
    return prog


def _const(value, like):
    value = np.asarray(value)
    node = Node("Const", [], {"value": value}, like.origin, [value.shape], [value.dtype],
                order=like.order)
    return node


def _const_value(v):
    node, _ = v
    return node.attrs["value"] if node.type == "Const" else None


def _is_pure(node):
    return node.primitive.pure and not node.controls


_DTYPE_TEXT = {}   # (dtype, str or _name) -> text: NumPy formats it anew on each access


def _name(d):
    return d.name


def _dtype_text(d, how):
    key = (d, how)
    text = _DTYPE_TEXT.get(key)
    if text is None:
        text = _DTYPE_TEXT[key] = how(d)
    return text
