"""Elementwise fusion: groups of elementwise ops (and a final sum) that one
generated kernel computes, and the cheap ops recomputed in their readers
instead of being stored."""
from __future__ import annotations

from .. import shapes as S
from ..devices import DEFAULT_DEVICE, split_device
from .ir import FLOAT_OR_BOOL, _const_value, _dtype_text, _name


# --- elementwise fusion ----------------------------------------------------------------

def fusable(n):
    """Can ``n`` be part of a generated elementwise kernel? (An elementwise op that
    declares a scalar template, on float or bool values.)"""
    if n.controls or len(n.shapes) != 1:
        return False
    prim = n.primitive
    if prim.kind != "elementwise" or prim.template is None:
        return False
    dtypes = list(n.dtypes) + [v[0].dtypes[v[1]] for v in n.inputs]
    return all(_dtype_text(d, _name) in FLOAT_OR_BOOL for d in dtypes)


def fusable_on(device, n):
    """Can ``n`` join a fused region on ``device``? The CPU fuses all that
    :func:`fusable` and :func:`fusable_reduction` take; a GPU's generated kernels
    (:mod:`kernels.cuda.codegen`) take the graph's elementwise ops with a scalar
    template, not the IR's broadcasts or sums (those run as kernels of their own
    there)."""
    if device == DEFAULT_DEVICE or split_device(device)[2] != "gpu":
        return True
    prim = n.primitive
    return prim.kind == "elementwise" and prim.template is not None and not prim.ir_only


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
            #    Only operands read whole count (not broadcast ones), and only the
            #    same rows (see _root).
            #    Newest first, and only the last few of one shape: a weight read by
            #    every time step has a reader group per step, and trying them all
            #    would make fusion quadratic in the number of steps (the older
            #    ones depend on the newer node anyway, so they are illegal).
            if n.group is None:
                for v in n.inputs:
                    if v[0].shapes[v[1]] != n.shapes[0]:
                        # A broadcast operand (a bias row) is read by every time
                        # step's kernel: sharing it shares nothing worth a kernel.
                        continue
                    tried = 0
                    for g in reversed(by_root.get(_root(v), ())):
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
                root = _root(v)
                if v[0].group is not n.group and root[0].type != "Const":
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


def recompute_in_readers(prog):
    """Move cheap derived values into the region that reads them, where the region
    already reads what they are computed from.

    Autodiff writes an activation's derivative as arithmetic on the activation's
    output (``1 - y``, ``1 - y*y``), and fusion puts that arithmetic beside the
    activation, in the forward step's kernel, which then stores it for the backward
    step's kernel to load. When the backward region reads ``y`` anyway, the
    derivative costs one operation there, and the forward kernel stores one array
    less and the backward kernel loads one less: the memory traffic is what these
    kernels are bound by. A node moves (with the chain of cheap nodes only it reads;
    cheap: declared ``cheap``, one add or multiply per element)
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
        if (n.group is not g or not n.primitive.cheap or n in fetched
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
        if g is None or not readers or not n.primitive.cheap:
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


def merge_into_readers(prog):
    """Merge a region into the first region that reads it.

    Fusion is greedy in program order, so a region whose values a later region reads
    can stay a kernel of its own: an unrolled GRU's input bias added to each time
    step's rows of the batched input product and its recurrent bias added to the
    step's GEMM output (each a region of three additions) beside the cell's region.
    Merged, the cell's kernel reads the products' rows and the biases itself, and the
    sums are not stored and loaded again unless a later region (the backward step)
    reads them too.

    A region ``g`` merges into the reader region ``h`` whose first member comes first,
    when ``h`` has ``g``'s shape and device, ``g`` holds no sum (complete only after
    its loop), none of its values is fetched or controls an op, and every other reader
    of ``g`` comes after all of ``h`` in the program (a topological order): no path
    leaves ``g`` and enters ``h`` through another op, so the merged region can run
    where ``h`` ran.
    """
    fetched = {v[0] for v in prog.fetches}
    readers_of = {}
    for n in prog.nodes:
        for m in [v[0] for v in n.inputs] + list(n.controls):
            readers_of.setdefault(m, []).append(n)
    controlling = {c for n in prog.nodes for c in n.controls}
    position = {n: i for i, n in enumerate(prog.nodes)}
    groups = {}
    for n in prog.nodes:
        if n.group is not None:
            groups.setdefault(n.group, None)
    for g in groups:
        nodes = g.nodes
        if not nodes or any(n in fetched or n in controlling or n.type == "ReduceSum"
                            for n in nodes):
            continue
        readers = [r for n in nodes for r in readers_of.get(n, ()) if r.group is not g]
        targets = [r.group for r in readers if r.group is not None]
        if not targets:
            continue
        h = min(targets, key=lambda t: position[t.nodes[0]])
        if h.shape != g.shape or h.device != g.device:
            continue
        last = max(position[m] for m in h.nodes)
        if not all(r.group is h or position[r] > last for r in readers):
            continue
        for n in nodes:
            n.group = h
        h.nodes.extend(nodes)
        h.nodes.sort(key=position.__getitem__)
        g.nodes = []
    return prog


def _root(value):
    """Which memory reading ``value`` reads: ``(node, rows)``, the node whose buffer it
    is a view of (through views: declared ``view``) and the row pieces taken on the
    way (``(split, k)`` for each piece ``k`` of a split along the leading axis), so
    that readers of different rows of one buffer are not siblings: an unrolled RNN's
    batched input product is read one time step's rows per step, and a kernel of step
    ``t`` that took in step ``t + 1``'s reads would compute them a step early and store
    them for the next step's kernel to load, instead of that kernel reading its rows
    itself."""
    node, rows = value[0], ()
    k = value[1]
    while node.primitive.view and node.group is None:
        if node.type == "Split" and S.normalize_axis(
                node.attrs["axis"], len(node.shapes[0])) == 0 and len(node.shapes) > 1:
            rows += ((node, k),)
        node, k = node.inputs[0]
    return node, rows
