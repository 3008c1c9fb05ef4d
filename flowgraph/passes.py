"""Rewrite passes: the compiler's graph IR and the ordered pipeline that optimizes it.

The compiler lowers the ops of one run (fetches, feeds, feed shapes) to a
:class:`Program` of :class:`Node` objects in topological order, with *concrete* shapes
(feed shapes are part of a plan's key, so every shape is known). Each pass is
"program in, program out" and can be run and tested alone. :data:`PIPELINE` is the
whole optimization, in order, in one place.

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

import math

import numpy as np

from . import shapes as S
from .devices import DEFAULT_DEVICE, split_device
from .ops import get_primitive

# Primitive kinds whose ops are pure functions of their inputs (safe to fold, merge
# and drop). Anything else (state, sources other than Const, unknown kinds) is kept.
PURE_KINDS = frozenset({"elementwise", "reduction", "matmul", "shape", "index", "copy",
                        "loop"})   # loop: While and If (flowgraph.control_flow)
# Kinds the compiler knows how to plan; a run with any other kind of op (a primitive
# added later, say with data-dependent output shapes) runs on the reference plan.
# "random" ops are planned as their own steps, never folded or merged (not pure).
# Collectives (AllReduceMean) are kept, never merged or folded, and run in their order.
KNOWN_KINDS = PURE_KINDS | {"source", "state", "control", "random", "collective"}
# IR-only nodes of a value crossing MPI tasks (flowgraph.distributed.partition): kind
# "comm", ordered among themselves by control edges, like collectives never pure.
COMM_TYPES = frozenset({"Send", "Recv"})
FOLD_LIMIT = 1 << 16       # largest constant (elements) that folding may create
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
    def kind(self):
        if self.type in ("Feed",):
            return "source"
        if self.type in COMM_TYPES:
            return "comm"
        if self.type == "BroadcastTo":
            return "elementwise"
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


# --- lowering --------------------------------------------------------------------------

class _ProxyTensor:
    """A shape rule's view of an input: concrete shape, dtype, and ``value`` when the
    lowering could fold it (``flowgraph.ops.static_value`` reads it)."""

    __slots__ = ("shape", "dtype", "name", "value")

    def __init__(self, shape, dtype, name, value=None):
        self.shape, self.dtype, self.name, self.value = shape, dtype, name, value


# Ops whose value depends only on their inputs' shapes: once the feed shapes are fixed
# their values are known, and so are those of small pure ops of known values. Shape
# rules that need a value (Range's limit, Fill's dims) read these during lowering.
SHAPE_ONLY = frozenset({"Size", "Shape", "ZerosLike", "OnesLike"})
KNOWN_VALUE_LIMIT = 1 << 10   # largest value (elements) lowering keeps for shape rules


def _known_value(node, inputs, known):
    """The value of ``node`` if it can be computed now, else ``None``."""
    if node.type == "Const":
        return node.attrs["value"]
    if node.type in ("Size", "Shape"):
        args = [np.broadcast_to(np.zeros((), d), s) for s, d in
                ((v[0].shapes[v[1]], v[0].dtypes[v[1]]) for v in inputs)]
    elif inputs and all(v in known for v in inputs) and node.kind in PURE_KINDS \
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
    from .executor import needed_ops
    fed = {t: s for t, s in zip(feed_tensors, feed_shapes)}
    if ops is None:
        ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(fed))
    value = {}     # Tensor -> (Node, index)
    made = {}      # Operation -> Node
    known = {}     # (Node, index) -> value known before the run (see _known_value)
    nodes = []
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
        proxy = _ProxyOp(op, [_ProxyTensor(n.shapes[i], n.dtypes[i], t.name,
                                           known.get((n, i)))
                              for (n, i), t in zip(inputs, op.inputs)])
        try:
            specs = primitive.infer(proxy)
        except Exception as exc:
            raise NotCompilable(f"{op.name}: {exc}") from None
        shapes = [s for s, _ in specs]
        if any(s is None or None in s for s in shapes):
            raise NotCompilable(f"{op.name}: unknown output shape")
        node = Node(op.type, inputs, op.attrs, op, shapes, [d for _, d in specs],
                    [made[c] for c in op.control_inputs if c in made], op._id)
        made[op] = node
        nodes.append(node)
        # (integer values only: shapes, sizes and their arithmetic; float math is left
        # to fold_constants, which keeps lowering cheap on large training graphs)
        if len(shapes) == 1 and node.dtypes[0].kind in "iu" and (
                op.type in ("Const", "Size", "Shape") or any(v in known for v in inputs)):
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
    return Program(nodes, [value[t] for t in fetch_tensors],
                   [made[o] for o in target_ops if o in made], placement)


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
    return node.type != "Feed" and node.kind in PURE_KINDS and not node.controls


# --- passes ----------------------------------------------------------------------------

def prune(prog):
    """Keep only nodes the fetches and targets need (data and control inputs)."""
    keep, stack = set(), [v[0] for v in prog.fetches] + list(prog.targets)
    while stack:
        n = stack.pop()
        if n in keep:
            continue
        keep.add(n)
        stack.extend([v[0] for v in n.inputs])
        stack.extend(n.controls)
    prog.nodes = [n for n in prog.nodes if n in keep]
    return prog


def fold_constants(prog):
    """Evaluate pure ops of constant inputs at compile time (small results only); also
    ops that depend only on shapes (:data:`SHAPE_ONLY`: ``Size``, ``Shape``,
    ``ZerosLike``, ``OnesLike``), which are constants once feed shapes are fixed.
    """
    def visit(n):
        if not _is_pure(n):
            return None
        if any(math.prod(s) > FOLD_LIMIT for s in n.shapes):
            return None
        if n.type in SHAPE_ONLY:
            # Only the shapes matter: zero-stride stand-ins cost no memory.
            args = [np.broadcast_to(np.zeros((), v[0].dtypes[v[1]]), v[0].shapes[v[1]])
                    for v in n.inputs]
        else:
            args = [_const_value(v) for v in n.inputs]
            if not n.inputs or any(a is None for a in args):
                return None
        try:
            with np.errstate(all="ignore"):
                out = get_primitive(n.type).ref(n, *args)
        except Exception:
            return None   # leave the error to run time, where it names the op
        outs = out if isinstance(out, tuple) else (out,)
        return [(_const(_compact(np.asarray(o).astype(d, copy=False)), n), 0)
                for o, d in zip(outs, n.dtypes)]
    return _rewrite(prog, visit)


def _compact(value):
    """A constant whose elements are all equal (``ones_like``, a filled gradient seed)
    as a read-only broadcast of one element: kernels then load one value, not an array.
    """
    if value.size > 1 and value.dtype.kind in "fb":
        flat = np.ascontiguousarray(value).reshape(-1)
        bits = flat.view(np.uint8).reshape(flat.size, -1)
        if (bits == bits[0]).all():          # bitwise: NaN and -0.0 compare exactly
            return np.broadcast_to(flat[:1].reshape(()), value.shape)
    return value


def _all_equal(value, x):
    return value is not None and value.size > 0 and bool(np.all(value == x))


def simplify(prog):
    """Algebraic identities: x*1, x+0, x-0, -(-x), identity ops, transpose of
    transpose, reshape chains, and the autodiff helpers (``ReshapeLike``,
    ``SumLike``, ``BroadcastLike``, ``ExpandDims``, ``Squeeze``) turned into plain
    reshapes, reductions and broadcasts now that shapes are known.
    """
    def same(n, v):
        return v[0].shapes[v[1]] == n.shapes[0] and v[0].dtypes[v[1]] == n.dtypes[0]

    def visit(n):
        t = n.type
        if n.controls:
            return None
        if t in ("Identity", "StopGradient", "Copy") and same(n, n.inputs[0]):
            return n.inputs[0]
        if t in ("Mul", "Add", "Sub") and n.dtypes[0].kind == "f":
            a, b = n.inputs
            unit = 1 if t == "Mul" else 0
            if _all_equal(_const_value(b), unit) and same(n, a):
                return a
            if t != "Sub" and _all_equal(_const_value(a), unit) and same(n, b):
                return b
        if t == "Neg" and n.inputs[0][0].type == "Neg":
            return n.inputs[0][0].inputs[0]
        if t == "Transpose":
            src = n.inputs[0]
            perm = list(n.attrs["perm"])
            if src[0].type == "Transpose":
                inner = list(src[0].attrs["perm"])
                perm = [inner[p] for p in perm]
                src = src[0].inputs[0]
            if perm == sorted(perm):
                return src
            if src is not n.inputs[0]:
                return _replace(n, "Transpose", [src], {"perm": tuple(perm)})
        if t in ("Reshape", "ReshapeLike", "ExpandDims", "Squeeze"):
            src = n.inputs[0]
            while src[0].type == "Reshape":
                src = src[0].inputs[0]
            if src[0].shapes[src[1]] == n.shapes[0]:
                return src
            if t != "Reshape" or src is not n.inputs[0]:
                return _replace(n, "Reshape", [src], {"shape": n.shapes[0]})
        if t == "SumLike":
            x = n.inputs[0]
            xs, target = x[0].shapes[x[1]], n.shapes[0]
            if xs == target:
                return x
            lead = len(xs) - len(target)
            axes = tuple(range(lead)) + tuple(
                lead + i for i, d in enumerate(target) if d == 1 and xs[lead + i] != 1)
            kept = tuple(d for i, d in enumerate(xs) if i not in axes)
            total = _replace(n, "ReduceSum", [x], {"axis": axes, "keepdims": False}, [kept])
            if kept == target:
                return total
            return _replace(n, "Reshape", [total], {"shape": target})
        if t == "BroadcastLike":
            x = n.inputs[0]
            if same(n, x):
                return x
            return _replace(n, "BroadcastTo", [x], {"shape": n.shapes[0]})
        return None

    return _rewrite(prog, visit)


def _replace(n, type_, inputs, attrs, shapes=None):
    node = Node(type_, inputs, attrs, n.origin, shapes or n.shapes, n.dtypes[:1],
                order=n.order)
    return (node, 0)


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))


def cse(prog):
    """Common subexpression elimination: pure nodes with equal type, inputs, attrs
    (and constants with equal values) become one.
    """
    seen = {}
    device = prog.device

    def visit(n):
        if n.type != "Const" and not _is_pure(n):
            return None
        key = (n.type, tuple((id(v[0]), v[1]) for v in n.inputs), _freeze(n.attrs),
               tuple(_dtype_text(d, str) for d in n.dtypes), tuple(n.shapes),
               device(n))
        first = seen.get(key)
        if first is None:
            seen[key] = n
            return None
        return [(first, i) for i in range(len(n.shapes))]

    return _rewrite(prog, visit)


def _stack_sums(prog, is_term, stacked):
    """Replace each tree of single-use ``Add`` s over two or more terms (nodes for which
    ``is_term(node)`` holds, used only there) by ``stacked(add_root, terms)``, a node
    computing the same sum in one op. Terms are passed in creation order.
    """
    users = prog.users()
    fetched = set(prog.fetches)

    def single_use(v):
        return len(users.get(v, ())) == 1 and v not in fetched

    def collect(root, terms, adds):
        """Gather the terms of the tree of adds under ``root`` into ``terms`` (its inner
        adds into ``adds``); False if a leaf is not a term. An explicit stack: the tree
        of an unrolled RNN's weight gradient is a chain as deep as the number of time
        steps."""
        stack = list(reversed(root.inputs))
        while stack:
            v = stack.pop()
            n = v[0]
            if inner_add(v):
                adds.append(n)
                stack.extend(reversed(n.inputs))
            elif single_use(v) and not n.controls and is_term(n):
                terms.append(n)
            else:
                return False
        return True

    def inner_add(v):
        n = v[0]
        return (n.type == "Add" and single_use(v) and not n.controls
                and all(w[0].shapes[w[1]] == n.shapes[0] for w in n.inputs))

    # Whether every leaf under an add is a term, in one forward sweep, so that an add
    # whose tree fails is skipped at once instead of walked again for each inner add.
    complete = {}
    for n in prog.nodes:
        if n.type == "Add":
            complete[n] = all(
                complete.get(w[0], False) if inner_add(w)
                else single_use(w) and not w[0].controls and is_term(w[0])
                for w in n.inputs)

    replace = {}
    for n in reversed(prog.nodes):
        if (n.type != "Add" or n in replace or n.controls or n.dtypes[0].kind != "f"
                or not complete[n]):
            continue
        terms, adds = [], []
        if not collect(n, terms, adds) or len(terms) < 2:
            continue
        terms.sort(key=lambda m: m.order)
        if prog.placement is not None and len(
                {prog.device(m) for m in [n] + adds + terms}) > 1:
            continue      # (stacking never moves work to another device)
        # The inner adds are not roots of trees of their own (visiting them again
        # would make the pass quadratic in the depth of the tree; they have the
        # root's shape, so where the root cannot be stacked, neither can they).
        for m in adds:
            replace.setdefault(m, None)
        new = stacked(n, terms)
        if new is None:
            continue
        replace[n] = new
        for m in terms:
            replace.setdefault(m, None)

    def visit(n):
        new = replace.get(n)
        return (new, 0) if new is not None else None
    return prune(_rewrite(prog, visit)) if replace else prog


def _concat_rows(parts, origin, dtype, order):
    rows = sum(p[0].shapes[p[1]][0] for p in parts)
    shape = (rows,) + tuple(parts[0][0].shapes[parts[0][1]][1:])
    return (Node("Concat", parts, {"axis": 0}, origin, [shape], [dtype], order=order), 0)


def stack_matmul_sums(prog):
    """A sum of matmuls ``a1.T @ b1 + a2.T @ b2 + ...`` (the weight gradient of an
    unrolled RNN: one term per time step) becomes one matmul of stacked operands,
    ``concat(a).T @ concat(b)``: one large GEMM runs near the machine's GEMM rate, and the
    T-1 additions of weight-sized arrays disappear.
    """
    def is_term(m):
        return (m.type == "MatMul" and m.attrs["transpose_a"] and not m.attrs["transpose_b"]
                and len(m.shapes[0]) == 2)

    def stacked(n, terms):
        a_shape = terms[0].inputs[0][0].shapes[terms[0].inputs[0][1]]
        b_shape = terms[0].inputs[1][0].shapes[terms[0].inputs[1][1]]
        if n.shapes[0] != (a_shape[1], b_shape[1]):
            return None
        sides = [_concat_rows([m.inputs[side] for m in terms], terms[0].origin,
                              n.dtypes[0], n.order) for side in (0, 1)]
        return Node("MatMul", sides, {"transpose_a": True, "transpose_b": False},
                    n.origin, n.shapes, n.dtypes, order=n.order)
    return _stack_sums(prog, is_term, stacked)


def stack_reduce_sums(prog):
    """A sum of column sums ``sum(x1, 0) + sum(x2, 0) + ...`` (the bias gradient of an
    unrolled RNN) becomes one column sum of the stacked rows, ``sum(concat(x), 0)``.
    The stacked rows are usually the very concatenation the weight gradient's GEMM
    reads (the CSE after this pass merges the two), so T reductions and T-1 additions
    become one reduction over a buffer that exists anyway.
    """
    def is_term(m):
        return (m.type == "ReduceSum" and not m.attrs.get("keepdims")
                and tuple(S.normalize_axes(m.attrs["axis"], len(m.inputs[0][0].shapes[
                    m.inputs[0][1]]))) == (0,))

    def stacked(n, terms):
        parts = [m.inputs[0] for m in terms]
        if len({p[0].shapes[p[1]][1:] for p in parts}) != 1:
            return None
        rows = _concat_rows(parts, terms[0].origin, n.dtypes[0], n.order)
        return Node("ReduceSum", [rows], {"axis": (0,), "keepdims": False}, n.origin,
                    n.shapes, n.dtypes, order=n.order)
    return _stack_sums(prog, is_term, stacked)


def batch_input_matmuls(prog):
    """Matmuls by one weight of inputs that are fed or constant (``x_t @ W`` for every
    time step of an unrolled RNN) become one matmul of the stacked inputs, split back
    into per-step views: one large GEMM instead of T small ones.
    """
    def fixed_input(v):
        n = v[0]
        while n.type in ("Reshape", "StridedSlice", "Split", "SplitLike", "Transpose"):
            n = n.inputs[0][0]
        return n.type in ("Feed", "Const")

    groups = {}
    for n in prog.nodes:
        if (n.type == "MatMul" and not n.controls and len(n.shapes[0]) == 2
                and not n.attrs["transpose_a"] and fixed_input(n.inputs[0])):
            key = (n.inputs[1], n.attrs["transpose_b"], n.dtypes[0].str, prog.device(n))
            groups.setdefault(key, []).append(n)
    replace = {}
    for (b, tb, _, _), members in groups.items():
        if len(members) < 2:
            continue
        parts = [m.inputs[0] for m in members]
        rows = [p[0].shapes[p[1]][0] for p in parts]
        cols = parts[0][0].shapes[parts[0][1]][1]
        last = members[-1]
        stacked = Node("Concat", parts, {"axis": 0}, last.origin, [(sum(rows), cols)],
                       last.dtypes, order=last.order)
        width = last.shapes[0][1]
        product = Node("MatMul", [(stacked, 0), b], dict(last.attrs), last.origin,
                       [(sum(rows), width)], last.dtypes, order=last.order)
        pieces = Node("Split", [(product, 0)], {"sizes": tuple(rows), "axis": 0},
                      last.origin, [(r, width) for r in rows], last.dtypes * len(rows),
                      order=last.order)
        for k, m in enumerate(members):
            replace[m] = (pieces, k)

    # The stacked matmul runs where the last member was: move earlier members' users
    # after it by giving the replacement the last member's position.
    def visit(n):
        return replace.get(n)
    if not replace:
        return prog
    prog = _rewrite(prog, visit)
    return _reorder(prog)


def add_before_split(prog):
    """``split(m)[k] + b`` for every piece ``k`` with one ``b`` broadcast along the
    split axis becomes ``split(m + b)[k]``: one addition over the whole array.

    After :func:`batch_input_matmuls` this puts the bias of an RNN's input projection
    on the batched GEMM's output (one vectorized pass over ``T*B`` rows) instead of
    into T separate additions, which elementwise fusion would otherwise gather into
    one kernel with T inputs and T outputs (too many arrays for LLVM to vectorize).
    """
    users = prog.users()
    fetched = set(prog.fetches)
    plan = {}
    for n in prog.nodes:
        if n.type != "Split" or n.controls or len(n.shapes) < 2:
            continue
        axis = S.normalize_axis(n.attrs["axis"], len(n.shapes[0]))
        adds, bias = [], None
        for k in range(len(n.shapes)):
            us = users.get((n, k), ())
            if len(us) != 1 or (n, k) in fetched or us[0].type != "Add" or us[0].controls:
                break
            add = us[0]
            other = add.inputs[1] if add.inputs[0] == (n, k) else add.inputs[0]
            if other[0] is n or (bias is not None and other != bias):
                break
            bias = other
            adds.append(add)
        else:
            b_shape = bias[0].shapes[bias[1]]
            rank = len(n.shapes[0])
            padded = (1,) * (rank - len(b_shape)) + tuple(b_shape)
            if (len(b_shape) <= rank and padded[axis] == 1
                    and len({prog.device(m) for m in [n] + adds}) == 1
                    and all(a.shapes[0] == p for a, p in zip(adds, n.shapes))
                    and all(a.dtypes[0] == n.dtypes[0] for a in adds)):
                plan[n] = (bias, adds)
    if not plan:
        return prog
    replace = {}
    for split, (bias, adds) in plan.items():
        src = split.inputs[0]
        total = Node("Add", [src, bias], {}, adds[-1].origin, [src[0].shapes[src[1]]],
                     split.dtypes[:1], order=split.order)
        pieces = Node("Split", [(total, 0)], dict(split.attrs), split.origin,
                      split.shapes, split.dtypes, order=split.order)
        for k, add in enumerate(adds):
            replace[add] = (pieces, k)

    prog = _rewrite(prog, lambda n: replace.get(n))
    return _reorder(prune(prog))


def _reorder(prog):
    """Topological order again after a rewrite moved a value later than its users."""
    placed, order = set(), []

    def place(n):
        stack = [(n, False)]
        while stack:
            m, expanded = stack.pop()
            if m in placed:
                continue
            if expanded:
                placed.add(m)
                order.append(m)
                continue
            stack.append((m, True))
            for w in reversed([v[0] for v in m.inputs] + list(m.controls)):
                if w not in placed:
                    stack.append((w, False))
    for n in prog.nodes:
        place(n)
    prog.nodes = order
    return prog


def narrow_split_matmuls(prog):
    """A matmul whose output is split by columns with only one piece used computes just
    that piece, from a slice of its right operand: the gradient of ``concat([h, x]) @ K``
    with respect to ``[h; x]`` is needed only for ``h`` in an RNN, a third less work.
    """
    users = prog.users()
    fetched = set(prog.fetches)
    pieces = {}

    def visit(n):
        if n.type not in ("Split", "SplitLike") or n.controls:
            return None
        src = n.inputs[0]
        m = src[0]
        if (m.type != "MatMul" or len(m.shapes[0]) != 2 or len(users.get(src, ())) != 1
                or src in fetched or m.controls):
            return None
        if S.normalize_axis(n.attrs["axis"], 2) != 1 or prog.device(n) != prog.device(m):
            return None
        used = [k for k in range(len(n.shapes)) if users.get((n, k)) or (n, k) in fetched]
        if len(used) != 1:
            return None
        k = used[0]
        start = sum(n.shapes[j][1] for j in range(k))
        stop = start + n.shapes[k][1]
        b, b_shape = m.inputs[1], m.inputs[1][0].shapes[m.inputs[1][1]]
        if m.attrs["transpose_b"]:
            spec, sliced = (("slice", start, stop, None),), (stop - start, b_shape[1])
        else:
            spec = (("slice", None, None, None), ("slice", start, stop, None))
            sliced = (b_shape[0], stop - start)
        piece = pieces.get((b, spec))
        if piece is None:   # one slice of the weight for all time steps
            piece = pieces[(b, spec)] = Node("StridedSlice", [b], {"spec": spec}, m.origin,
                                             [sliced], [m.dtypes[0]], order=m.order)
        narrow = Node("MatMul", [m.inputs[0], (piece, 0)], dict(m.attrs), m.origin,
                      [n.shapes[k]], m.dtypes, order=n.order)
        return [(narrow, 0) if j == k else (n, j) for j in range(len(n.shapes))]

    return prune(_rewrite(prog, visit))


# Rows that matmuls by one transposed right operand must have in all before that
# operand is transposed once into a buffer of its own (see untranspose_matmul_operands).
UNTRANSPOSE_MIN_ROWS = 128

# A transposed right operand ``b`` (N x K, used as ``b.T``) at least this many times
# longer along K than N stays transposed: BLAS reads such a tall ``b.T`` as fast as a
# plain one, and transposing it costs a pass over the whole weight.
UNTRANSPOSE_MAX_ASPECT = 8


def untranspose_matmul_operands(prog):
    """``a @ b.T`` becomes ``a @ copy(b.T)`` when the copy is worth it.

    OpenBLAS multiplies by a transposed right operand 20-35% slower than by a plain
    one at RNN shapes (64x1024 @ (256x1024).T: 42 against 57 GFLOP/s, one core, same
    run). The backward pass of an unrolled RNN multiplies by the transposed recurrent
    weight at every step, so transposing it once per run (one copy of the weight)
    pays back once the matmuls have :data:`UNTRANSPOSE_MIN_ROWS` rows in all; all
    users share the one copy.

    A tall ``b.T`` (K at least :data:`UNTRANSPOSE_MAX_ASPECT` times N) is left alone:
    there BLAS loses nothing to the transposed layout (PTB's output projection,
    400x10000 @ (200x10000).T: 38.3 ms transposed, 38.6 ms plain, and 1.8 ms for the
    copy, on a 2-vCPU AMD EPYC core), so the copy is pure cost.
    """
    rows = {}
    for n in prog.nodes:
        if _untransposable(n) and not _tall(n.inputs[1]):
            rows[n.inputs[1]] = rows.get(n.inputs[1], 0) + n.shapes[0][0]
    chosen = {b for b, r in rows.items() if r >= UNTRANSPOSE_MIN_ROWS}
    if not chosen:
        return prog
    copies = {}

    def visit(n):
        if not (_untransposable(n) and n.inputs[1] in chosen):
            return None
        b = n.inputs[1]
        plain = copies.get((b, prog.device(n)))
        if plain is None:
            rows_, cols = b[0].shapes[b[1]]
            dtype = [b[0].dtypes[b[1]]]
            view = Node("Transpose", [b], {"perm": (1, 0)}, n.origin, [(cols, rows_)],
                        dtype, order=n.order)
            plain = copies[(b, prog.device(n))] = Node(
                "Copy", [(view, 0)], {}, n.origin, [(cols, rows_)], dtype, order=n.order)
        attrs = dict(n.attrs, transpose_b=False)
        return (Node("MatMul", [n.inputs[0], (plain, 0)], attrs, n.origin, n.shapes,
                     n.dtypes, order=n.order), 0)
    return _rewrite(prog, visit)


def _tall(b):
    n_, k = b[0].shapes[b[1]]
    return k >= UNTRANSPOSE_MAX_ASPECT * n_


def _untransposable(n):
    return (n.type == "MatMul" and n.attrs["transpose_b"] and not n.controls
            and len(n.shapes[0]) == 2 and n.dtypes[0].kind == "f")


# --- elementwise fusion ----------------------------------------------------------------

def fusable(n):
    """Can ``n`` be part of a generated elementwise kernel?"""
    from kernels.scalar import has_template
    if n.type == "Feed" or n.controls or len(n.shapes) != 1:
        return False
    if n.type != "BroadcastTo" and not (n.kind == "elementwise" and has_template(n.type)):
        return False
    dtypes = list(n.dtypes) + [v[0].dtypes[v[1]] for v in n.inputs]
    if not all(_dtype_text(d, _name) in FLOAT_OR_BOOL for d in dtypes):
        return False
    if n.type == "Sign" and n.dtypes[0].kind != "f":
        return False
    return True


_DTYPE_TEXT = {}   # (dtype, str or _name) -> text: NumPy formats it anew on each access


def _name(d):
    return d.name


def _dtype_text(d, how):
    key = (d, how)
    text = _DTYPE_TEXT.get(key)
    if text is None:
        text = _DTYPE_TEXT[key] = how(d)
    return text


def fusable_on(device, n):
    """Can ``n`` join a fused region on ``device``? The CPU fuses all that
    :func:`fusable` and :func:`fusable_reduction` take; a GPU's generated kernels
    (:mod:`kernels.cuda.codegen`) take the elementwise ops with a scalar template, not
    broadcasts or sums (those run as kernels of their own there)."""
    if device == DEFAULT_DEVICE or split_device(device)[2] != "gpu":
        return True
    from kernels.cuda.codegen import supports
    return n.type not in ("BroadcastTo", "ReduceSum") and supports(n.type)


def fusable_reduction(n):
    """Can ``n`` end a generated elementwise loop (a float sum over some axes)?"""
    if n.type != "ReduceSum" or n.controls or n.dtypes[0].name not in ("float32", "float64"):
        return False
    x = n.inputs[0]
    rank = len(x[0].shapes[x[1]])
    axes = S.normalize_axes(n.attrs["axis"], rank)
    return rank > 0 and len(axes) > 0 and x[0].dtypes[x[1]] == n.dtypes[0]


class Group:
    """A convex region of elementwise nodes of one output shape, on one device: one
    generated kernel."""

    __slots__ = ("nodes", "shape", "index", "device")

    def __init__(self, shape, index, device=DEFAULT_DEVICE):
        self.nodes, self.shape, self.index, self.device = [], shape, index, device

    def __repr__(self):
        return f"<Group {[n.type for n in self.nodes]} {self.shape}>"


# Sibling groups (reading one buffer) a node tries to join, newest first.
SIBLING_CANDIDATES = 4


def fuse_elementwise(prog):
    """Assign fusable nodes to :class:`Group` s (``node.group``).

    A node joins the group of one of its fusable producers when the output shapes are
    equal and the region stays convex: no input of the node may depend on the group
    through a node outside it (else the group would have to run both before and after
    that node). Dependencies are bitmasks of groups, kept closed over groups as they
    grow (a group depends on all its members' inputs), so the check is a few ORs and
    exact.
    Inputs are broadcast at the region's edge, and a float sum of a region's value
    (over any axes) joins the region as an output accumulated in its loop. Regions
    never cross devices, and on a GPU hold what its fused kernels take
    (:func:`fusable_on`).
    """
    groups = []
    device = prog.device
    by_root = {}  # root node of a buffer -> groups reading it (dict keys, in order)
    # The closure over groups, kept as it is built so that a query is a few ORs and a
    # bit test (the closure from scratch walks every ancestor group: quadratic in the
    # length of an unrolled RNN). cdeps[n]: every group n's unit depends on;
    # gclose[g]: every group g's unit depends on. When a group that something already
    # depends on gains dependencies (a "late" growth: rare, once in a char-RNN's
    # softmax loss), every mask holding it gets them too (`grow`).
    cdeps, gclose = {}, {}
    depended = set()     # groups that a node outside them has read

    def closed_outside(n, g):
        """The closed mask of what n's inputs outside g depend on."""
        mask = 0
        for m in [v[0] for v in n.inputs] + list(n.controls):
            h = m.group
            if h is not g:
                mask |= cdeps[m]
                if h is not None:
                    mask |= (1 << h.index) | gclose[h]
        return mask

    def depends_on(n, g):
        return bool(closed_outside(n, g) >> g.index & 1)

    def legal(n, g):
        return (g.shape == n.shapes[0] and g.device == device(n) and not depends_on(n, g)
                and not any(v[0].group is g and v[0].type == "ReduceSum"
                            for v in n.inputs))

    def grow(g, mask):
        """``g`` (now) depends on ``mask`` too, and so does whatever depends on g.
        (All masks are closed: one pass over those holding g's bit suffices.)"""
        new = mask & ~gclose[g]
        if not new:
            return
        gclose[g] |= new
        if g in depended:
            bit = 1 << g.index
            for table in (cdeps, gclose):
                for key, held in table.items():
                    if held & bit:
                        table[key] = held | new

    for n in prog.nodes:
        n.group = None
        if fusable_reduction(n):
            # A sum of a region's value ends that region's loop: it accumulates while
            # the loop runs, instead of a second pass over the value. Nothing can
            # join a group through it (it is complete only after the loop).
            v = n.inputs[0]
            g = v[0].group
            if (g is not None and v[0].type != "ReduceSum" and g.shape == v[0].shapes[v[1]]
                    and g.device == device(n) and fusable_on(g.device, n)):
                n.group = g
                g.nodes.append(n)
        elif fusable(n) and fusable_on(device(n), n):
            # 1. Join a producer's group (vertical fusion).
            for v in n.inputs:
                g = v[0].group
                if g is not None and legal(n, g):
                    n.group = g
                    break
            # 2. Else join a group that reads the same buffer (sibling fusion: the
            #    gates of an LSTM cell, all slices of one matmul output).
            #    Newest first, and only the last few of one shape: a weight read by
            #    every time step has a reader group per step, and trying them all
            #    would make fusion quadratic in the number of steps (the older
            #    ones depend on the newer node anyway, so they are illegal).
            if n.group is None:
                for v in n.inputs:
                    tried = 0
                    for g in reversed(by_root.get(_root(v[0]), ())):
                        if g.shape != n.shapes[0]:
                            continue
                        if legal(n, g):
                            n.group = g
                            break
                        tried += 1
                        if tried == SIBLING_CANDIDATES:
                            break
                    if n.group is not None:
                        break
            if n.group is None:
                n.group = Group(n.shapes[0], len(groups), device(n))
                groups.append(n.group)
                gclose[n.group] = 0
            n.group.nodes.append(n)
            grow(n.group, closed_outside(n, n.group))
            for v in n.inputs:
                root = _root(v[0])
                if v[0].group is not n.group and root.type != "Const":
                    by_root.setdefault(root, {})[n.group] = None   # an ordered set
        closed = 0
        for m in [v[0] for v in n.inputs] + list(n.controls):
            h = m.group
            closed |= cdeps[m]
            if h is not None:
                closed |= (1 << h.index) | gclose[h]
                if h is not n.group:
                    depended.add(h)
        cdeps[n] = closed
    return prog


def _one_element(node):
    """A constant a kernel loads as one element (a scalar, or a uniform broadcast)."""
    value = _const_value((node, 0))
    return value is not None and (value.size <= 1 or not any(value.strides))


# Elementwise ops cheaper to recompute from values a kernel already reads than to
# store in one kernel and load in another (one multiply or add per element).
RECOMPUTABLE = frozenset({"Add", "Sub", "Mul", "Neg", "Square"})


def recompute_in_readers(prog):
    """Move cheap derived values into the region that reads them, where the region
    already reads what they are computed from.

    Autodiff writes an activation's derivative as arithmetic on the activation's
    output (``1 - y``, ``1 - y*y``), and fusion puts that arithmetic beside the
    activation, in the forward step's kernel, which then stores it for the backward
    step's kernel to load. When the backward region reads ``y`` anyway, the
    derivative costs one operation there, and the forward kernel stores one array
    less and the backward kernel loads one less: the memory traffic is what these
    kernels are bound by. A node moves (with the chain of cheap nodes only it reads)
    when every reader is in one other region of the same shape, it is not fetched,
    and each leaf it needs is a one-element constant, a member of that region, or a
    value the region already reads. Results are bitwise equal: the same operations in
    the same dtypes, run in another loop.
    """
    readers_of = {}
    for n in prog.nodes:
        for m in [v[0] for v in n.inputs] + list(n.controls):
            readers_of.setdefault(m, []).append(n)
    fetched = {v[0] for v in prog.fetches}
    reads = {}      # group -> values its members read from outside it

    def read_by(h):
        if h not in reads:
            reads[h] = {v for m in h.nodes for v in m.inputs if v[0].group is not h}
        return reads[h]

    def can_start(n, g, h, moving):
        """(decided, answer): whether ``n`` can move as a new member of the chain."""
        if (n.group is not g or n.type not in RECOMPUTABLE or n in fetched
                or n.controls or n in moving):
            return True, n in moving
        if not all(r.group is h or r in moving for r in readers_of.get(n, ())):
            return True, False
        return False, None

    def chain(n, g, h, moving):
        """Can ``n`` (in ``g``) move to ``h``, with the nodes of ``g`` only it needs?
        (A depth-first walk with an explicit stack: a chain of cheap ops can be as
        long as the graph.)"""
        decided, answer = can_start(n, g, h, moving)
        if decided:
            return answer
        moving.add(n)
        stack = [[n, 0]]
        while stack:
            frame = stack[-1]
            node, i = frame
            if i == len(node.inputs):
                stack.pop()          # every input of node is available in h
                continue
            frame[1] += 1
            v = node.inputs[i]
            m = v[0]
            if _one_element(m) or m.group is h or v in read_by(h):
                continue
            decided, answer = can_start(m, g, h, moving)
            if not decided:
                moving.add(m)
                stack.append([m, 0])
            elif not answer:
                for node, _ in stack:     # the chain fails: none of these moves
                    moving.discard(node)
                return False
        return True

    position = {n: i for i, n in enumerate(prog.nodes)}
    for n in reversed(prog.nodes):
        g = n.group
        readers = readers_of.get(n, ())
        if g is None or not readers or n.type not in RECOMPUTABLE:
            continue
        h = readers[0].group
        if h is None or h is g or h.shape != g.shape or h.device != g.device:
            continue
        moving = set()
        if chain(n, g, h, moving):
            for m in moving:
                g.nodes.remove(m)
                m.group = h
            h.nodes.extend(moving)
            h.nodes.sort(key=position.__getitem__)
            reads.pop(h, None)
    return prog


VIEW_NODES = frozenset({"Reshape", "Transpose", "Split", "SplitLike", "StridedSlice"})


def _root(node):
    while node.type in VIEW_NODES and node.group is None:
        node = node.inputs[0][0]
    return node


PIPELINE = [prune, fold_constants, simplify, cse, prune, narrow_split_matmuls,
            stack_matmul_sums, stack_reduce_sums, cse, batch_input_matmuls,
            add_before_split, cse, untranspose_matmul_operands, fuse_elementwise,
            recompute_in_readers]
"""The optimization passes, in order. Each takes and returns a :class:`Program`."""


def run_pipeline(prog, passes=PIPELINE):
    for p in passes:
        prog = p(prog)
    return prog
