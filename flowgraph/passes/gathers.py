"""Passes that move a matmul ahead of an embedding lookup: products of gathered rows
of a small table become gathered rows of one product of the table, forward and
backward.

``E[ids] @ W == (E @ W)[ids]``. Where the rows of a table ``E`` (``V`` rows) that the
program gathers are multiplied by one weight ``W`` more than ``V`` times in all,
computing ``E @ W`` once (``V`` rows) and gathering its rows does less work than
multiplying every gathered row. The char-RNN (:mod:`benchmarks.programs`, vocabulary
96) multiplies each time step's ``[h_t, E[ids_t]] @ K`` (48 rows of 64 embedding
columns, 32 steps: 1536 rows) where a table product has 96: the per-step GEMM becomes
``h_t @ K_h + (E @ K_x)[ids_t]``, a third less work per step, and the gathered rows are
added in the cell's fused kernel (:func:`.matmuls.split_bias_adds`)
(:func:`push_gathers_through_matmuls`). The backward pass has the same structure: the
gradients of the table and of the weight's embedding rows both come from one scatter
of the gate gradients into ``V`` rows (:func:`push_gathers_into_gradients`), and
every per-step input-gradient GEMM and the stacked weight-gradient GEMM lose the
embedding's columns. A large vocabulary (PTB's 10,000 rows against 400 gathered) is
left alone.
"""
from __future__ import annotations

import math

import numpy as np

from .. import shapes as S
from .ir import Node, _const, _rewrite
from .matmuls import _reorder, narrow_split_matmuls, stacks_distinct_rows
from .simplify import cse, prune


def _trace_gather(v):
    """``(gather, base_ops, items)`` when ``v`` is a view of the rows of a ``Gather``
    of a 2-D table that keeps each row whole; else None.

    The view is taken again of another gather of the same indices
    (:meth:`_Builder.table_rows`, :meth:`_Builder.row_indices`): ``base_ops`` are the
    reshapes and transposes of the whole gather, as they apply to its indices (the row
    axis dropped: ``("reshape", shape)``, ``("transpose", perm)``; a ``dynamic_rnn``'s
    time-major input), ``items`` one ``("slice", start, stop)`` or ``("index", i)`` per
    leading axis after them.
    """
    chain = []
    n = v
    while n[0].type != "Gather":
        if not n[0].primitive.view or n[0].controls or not n[0].inputs:
            return None
        chain.append(n)
        n = n[0].inputs[0]
    gather = n[0]
    table = gather.inputs[0]
    if len(table[0].shapes[table[1]]) != 2 or gather.controls:
        return None
    d = table[0].shapes[table[1]][1]
    lead = tuple(gather.shapes[0][:-1])
    base_ops = []
    items = [("slice", 0, s) for s in lead]
    for m, k in reversed(chain):
        shape = m.shapes[k]
        if not shape or shape[-1] != d:
            return None
        live = [j for j, it in enumerate(items) if it[0] == "slice"]   # current axes
        whole = len(live) == len(items) and all(
            it == ("slice", 0, s) for it, s in zip(items, lead))
        if m.type == "Transpose" and whole:
            perm = tuple(m.attrs["perm"])
            if perm[-1] != len(perm) - 1:
                return None         # (the rows' own axis moves)
            lead = tuple(shape[:-1])
            base_ops.append(("transpose", perm[:-1]))
            items = [("slice", 0, s) for s in lead]
        elif m.type == "Split":
            in_shape = m.inputs[0][0].shapes[m.inputs[0][1]]
            axis = S.normalize_axis(m.attrs["axis"], len(in_shape))
            if axis >= len(live):
                return None         # (a split of the rows' columns)
            j = live[axis]
            start = items[j][1] + sum(m.shapes[i][axis] for i in range(k))
            items[j] = ("slice", start, start + shape[axis])
        elif m.type == "Reshape":
            current = tuple(items[j][2] - items[j][1] for j in live)
            if whole:
                lead = tuple(shape[:-1])        # a reshape of the whole gather
                base_ops.append(("reshape", lead))
                items = [("slice", 0, s) for s in lead]
                continue
            kept = _squeezed(current, tuple(shape[:-1]))
            if kept is None:
                return None
            for pos, j in enumerate(live):
                if pos not in kept:
                    items[j] = ("index", items[j][1])
        elif m.type == "StridedSlice":
            spec = m.attrs["spec"]
            if any(e[0] not in ("slice", "index") for e in spec) or len(spec) > len(live):
                return None
            for e, j in zip(spec, live):
                size = items[j][2] - items[j][1]
                if e[0] == "index":
                    i = e[1] + size if e[1] < 0 else e[1]
                    items[j] = ("index", items[j][1] + i)
                    continue
                start, stop, step = slice(*e[1:]).indices(size)
                if step != 1 or stop < start:
                    return None
                items[j] = ("slice", items[j][1] + start, items[j][1] + stop)
        else:
            return None
    kept = tuple(it[2] - it[1] for it in items if it[0] == "slice")
    if kept != tuple(v[0].shapes[v[1]][:-1]):
        return None         # (a view this walk does not follow exactly)
    return gather, base_ops, items


def _squeezed(shape, out):
    """The positions of ``shape`` kept when ``out`` is ``shape`` with some of its axes
    of size 1 dropped (a squeeze); None for any other reshape."""
    kept, i = [], 0
    for pos, s in enumerate(shape):
        if i < len(out) and out[i] == s:
            kept.append(pos)
            i += 1
        elif s != 1:
            return None
    return kept if i == len(out) else None


def _row_block(b):
    """``(base, offset)``: ``b`` is rows ``offset:`` of ``base`` (a slice of the rows of
    a weight, as :func:`.zeros.drop_zero_products` leaves where a time step's ``h`` is
    zero: that step's product shares the table product of the others)."""
    offset = 0
    while b[0].type == "StridedSlice" and not b[0].controls:
        spec = b[0].attrs["spec"]
        src = b[0].inputs[0]
        shape = src[0].shapes[src[1]]
        if len(spec) != 1 or spec[0][0] != "slice" or len(shape) != 2:
            break
        start, stop, step = slice(*spec[0][1:]).indices(shape[0])
        if step != 1 or stop <= start:
            break
        offset += start
        b = src
    return b, offset


class _Builder:
    """The nodes the passes of this module add, each made once per program: a slice
    of a weight's rows, a view of the indices, a table product and its gathered rows,
    a stacking of index vectors, a scatter of gradient rows into a table."""

    def __init__(self):
        self.memo = {}

    def _once(self, key, make):
        out = self.memo.get(key)
        if out is None:
            out = self.memo[key] = make()
        return out

    def weight_rows(self, b, start, stop, like):
        """Rows ``start:stop`` of the weight ``b``."""
        width = b[0].shapes[b[1]][1]
        return self._once(("rows", b, start, stop), lambda: (Node(
            "StridedSlice", [b], {"spec": (("slice", start, stop, None),)}, like.origin,
            [(stop - start, width)], [b[0].dtypes[b[1]]], order=like.order), 0))

    def index_view(self, ids, base_ops, perm, like):
        """``ids`` reshaped and transposed as the gather was (``base_ops``), then its
        axes in the order ``perm``: a view of the indices (each node made once)."""
        ops = list(base_ops)
        if perm != tuple(range(len(perm))):
            ops.append(("transpose", perm))
        v = ids
        dtype = ids[0].dtypes[ids[1]]
        for kind, arg in ops:
            shape = tuple(arg) if kind == "reshape" else \
                tuple(v[0].shapes[v[1]][j] for j in arg)
            attrs = {"shape": shape} if kind == "reshape" else {"perm": tuple(arg)}
            v = self._once(("ids", v, kind, tuple(arg)), lambda v=v, kind=kind, attrs=attrs,
                           shape=shape: (Node(kind.capitalize(), [v], attrs, like.origin,
                                              [shape], [dtype], order=like.order), 0))
        return v

    def _select(self, v, items, perm, like):
        """``items`` (in the order ``perm``) of the leading axes of ``v``: ``v`` itself
        where they are all whole, else a strided slice."""
        lead = v[0].shapes[v[1]][:len(items)]
        items = [items[j] for j in perm]
        if all(it == ("slice", 0, s) for it, s in zip(items, lead)):
            return v
        spec = tuple(("slice", it[1], it[2], None) if it[0] == "slice" else it
                     for it in items)
        rest = tuple(v[0].shapes[v[1]][len(items):])
        shape = tuple(it[2] - it[1] for it in items if it[0] == "slice") + rest
        return self._once(("select", v, spec), lambda: (Node(
            "StridedSlice", [v], {"spec": spec}, like.origin, [shape],
            [v[0].dtypes[v[1]]], order=like.order), 0))

    def table_rows(self, traced, key, like):
        """``like``'s block of gathered rows times the weight's block, as a view of the
        gathered rows of the table product. The gathered axes that the view indexes
        (an unrolled RNN's time axis) come first in the indices, so that each matmul's
        rows are one contiguous block of the gather, as a kernel reads them fastest
        (a window of a 3-D buffer is read through a general strided array: the char
        RNN's cell kernel took 5.4 ms a step instead of 0.8)."""
        gather, base_ops, items = traced
        table, b, start, stop, _ = key
        width = b[0].shapes[b[1]][1]
        dtype = like.dtypes[0]
        product = self._once(("product", key), lambda: (Node(
            "MatMul", [table, self.weight_rows(b, start, stop, like)],
            {"transpose_a": False, "transpose_b": False}, like.origin,
            [(table[0].shapes[table[1]][0], width)], [dtype], order=like.order), 0))
        perm = _index_first(items)
        ids = self.index_view(gather.inputs[1], base_ops, perm, like)
        rows = self._once(("gather", product, ids), lambda: (Node(
            "Gather", [product, ids], dict(gather.attrs), gather.origin,
            [tuple(ids[0].shapes[ids[1]]) + (width,)], [dtype], order=like.order), 0))
        return self._select(rows, items, perm, like)

    def row_indices(self, traced, like):
        """The indices of the rows of a traced 2-D block of gathered rows, a vector."""
        gather, base_ops, items = traced
        perm = _index_first(items)
        ids = self._select(self.index_view(gather.inputs[1], base_ops, perm, like),
                           items, perm, like)
        shape = ids[0].shapes[ids[1]]
        if len(shape) == 1:
            return ids
        rows = (math.prod(shape),)
        return self._once(("flat", ids), lambda: (Node(
            "Reshape", [ids], {"shape": rows}, like.origin, [rows],
            [ids[0].dtypes[ids[1]]], order=like.order), 0))

    def stacked_indices(self, traced, like, dtype):
        """The concatenation of :meth:`row_indices` of each of ``traced``, in order.

        A run of consecutive blocks that index consecutive rows (ascending or
        descending: an unrolled RNN's weight gradient stacks its steps last to first)
        of one axis of one index tensor, their other axes the same, is one strided
        slice of that tensor, flattened: one copy per run, not a concatenation of one
        slice per step at every run (the char RNN's 32 steps: one piece each).
        """
        runs = []           # [key, items, axis, first index, step, count]
        for t in traced:
            gather, base_ops, items = t
            perm = _index_first(items)
            j = perm[0]
            key = (gather.inputs[1], tuple(base_ops), perm)
            if runs and items[j][0] == "index":
                r = runs[-1]
                step = items[j][1] - (r[3] + r[4] * (r[5] - 1))
                if (r[0] == key and r[2] == j and r[1][j][0] == "index" and step in (1, -1)
                        and (r[5] == 1 or step == r[4])
                        and all(a == b for i, (a, b) in enumerate(zip(items, r[1]))
                                if i != j)):
                    r[4], r[5] = step, r[5] + 1
                    continue
            runs.append([key, items, j, items[j][1], 1, 1, t])
        values = []
        for key, items, j, first, step, count, t in runs:
            if count == 1:
                values.append(self.row_indices(t, like))
                continue
            ids, base_ops, perm = key
            view = self.index_view(ids, list(base_ops), perm, like)
            stop = first + step * count
            spec = (("slice", first, stop if stop >= 0 else None, step),) + tuple(
                ("slice", items[i][1], items[i][2], None) if items[i][0] == "slice"
                else items[i] for i in perm[1:])
            shape = (count,) + tuple(items[i][2] - items[i][1] for i in perm[1:]
                                     if items[i][0] == "slice")
            sel = self._once(("run", view, spec), lambda view=view, spec=spec, shape=shape: (
                Node("StridedSlice", [view], {"spec": spec}, like.origin, [shape],
                     [view[0].dtypes[view[1]]], order=like.order), 0))
            rows = (math.prod(shape),)
            values.append(self._once(("flat", sel), lambda sel=sel, rows=rows: (Node(
                "Reshape", [sel], {"shape": rows}, like.origin, [rows],
                [sel[0].dtypes[sel[1]]], order=like.order), 0)))
        return self.concat(values, 0, like, dtype)

    def concat(self, values, axis, like, dtype):
        """``values`` concatenated along ``axis`` (the one value where there is one)."""
        values = tuple(values)
        if len(values) == 1:
            return values[0]
        shapes = [v[0].shapes[v[1]] for v in values]
        shape = list(shapes[0])
        shape[axis] = sum(s[axis] for s in shapes)
        return self._once(("concat", values, axis), lambda: (Node(
            "Concat", list(values), {"axis": axis}, like.origin, [tuple(shape)], [dtype],
            order=like.order), 0))

    def scatter(self, rows, indices, vocab, like):
        """``GatherGrad(rows, indices)`` into a table of ``vocab`` rows: the rows of
        ``rows`` added up by index."""
        width = rows[0].shapes[rows[1]][1]
        dtype = rows[0].dtypes[rows[1]]

        def make():
            zeros = _const(np.broadcast_to(np.zeros((), dtype), (vocab, width)), like)
            return (Node("GatherGrad", [rows, indices, (zeros, 0)], {}, like.origin,
                         [(vocab, width)], [dtype], order=like.order), 0)
        return self._once(("scatter", rows, indices, vocab), make)


def _index_first(items):
    """The leading axes with the indexed ones first (see :meth:`_Builder.table_rows`)."""
    return tuple([j for j, it in enumerate(items) if it[0] == "index"]
                 + [j for j, it in enumerate(items) if it[0] == "slice"])


def push_gathers_through_matmuls(prog):
    """``E[ids] @ W`` becomes ``(E @ W)[ids]``, and ``[h, E[ids]] @ W`` becomes
    ``h @ W[:k] + (E @ W[k:])[ids]``, where that is less work.

    A matmul qualifies when its left operand (or a column block of it, a piece of a
    concatenation along the columns) is a view of whole rows of a ``Gather`` from a
    2-D table (an unrolled RNN's ``unstack(embedding_lookup(E, ids))[t]``). The table
    product ``E @ W[k:k+d]`` (``V`` rows) is computed once for all such matmuls and
    its rows gathered once with the same indices; each matmul then reads its view of
    those rows. Only where the gathered rows multiplied by one table and one block of
    one weight outnumber the table's rows ``V`` (else the table product costs more
    than it saves: a word model's vocabulary of 10,000 against a few hundred rows).
    """
    found, rows = {}, {}
    for n in prog.nodes:
        if (n.type != "MatMul" or n.controls or len(n.shapes[0]) != 2
                or n.attrs["transpose_a"] or n.attrs["transpose_b"]
                or n.dtypes[0].kind != "f"):
            continue
        b = n.inputs[1]
        blocks = []
        for part, start, stop in _column_blocks(n.inputs[0]):
            traced = _trace_gather(part)
            if traced is None:
                continue
            gather = traced[0]
            table = gather.inputs[0]
            if (table[0].dtypes[table[1]] != n.dtypes[0]
                    or b[0].dtypes[b[1]] != n.dtypes[0]
                    or len({prog.device(m) for m in (n, gather, table[0])}) != 1):
                continue
            base, offset = _row_block(b)
            key = (table, base, start + offset, stop + offset, prog.device(n))
            blocks.append((part, start, stop, traced, key))
            rows[key] = rows.get(key, 0) + n.shapes[0][0]
        if blocks:
            found[n] = blocks
    chosen = {key for key, r in rows.items() if r > key[0][0].shapes[key[0][1]][0]}
    if not chosen:
        return prog
    build = _Builder()

    def visit(n):
        blocks = [blk for blk in found.get(n, ()) if blk[4] in chosen]
        if not blocks:
            return None
        pushed = {(blk[1], blk[2]) for blk in blocks}
        terms = [build.table_rows(traced, key, n) for _, _, _, traced, key in blocks]
        rest = [(p, s, e) for p, s, e in _column_blocks(n.inputs[0]) if (s, e) not in pushed]
        dtype = n.dtypes[0]
        if rest:
            b = n.inputs[1]
            a = rest[0][0] if len(rest) == 1 else (Node(
                "Concat", [p for p, _, _ in rest], {"axis": 1}, n.inputs[0][0].origin,
                [(n.shapes[0][0], sum(e - s for _, s, e in rest))], [dtype],
                order=n.order), 0)
            runs = []
            for _, s, e in rest:
                if runs and runs[-1][1] == s:
                    runs[-1] = (runs[-1][0], e)
                else:
                    runs.append((s, e))
            pieces = [build.weight_rows(b, s, e, n) for s, e in runs]
            w = pieces[0] if len(pieces) == 1 else (Node(
                "Concat", pieces, {"axis": 0}, n.origin,
                [(sum(e - s for s, e in runs), n.shapes[0][1])], [dtype], order=n.order), 0)
            terms.insert(0, (Node("MatMul", [a, w], dict(n.attrs), n.origin, n.shapes,
                                  n.dtypes, order=n.order), 0))
        total = terms[0]
        for t in terms[1:]:
            total = (Node("Add", [total, t], {}, n.origin, n.shapes, n.dtypes,
                          order=n.order), 0)
        return total
    prog = prune(_rewrite(prog, visit))
    return _biases_into_table_products(
        prog, [v for key, v in build.memo.items() if key[0] == "gather"])


def _biases_into_table_products(prog, gathers):
    """``E[ids] + b`` becomes ``(E + b)[ids]`` for the gathers of table products that
    :func:`push_gathers_through_matmuls` made (``V`` rows, fewer than are gathered):
    a ``dynamic_rnn``'s hoisted ``X @ W_x + b`` (loop_passes.hoist), whose bias was
    otherwise added to every gathered row (the char RNN: 1536 rows of 512, in a
    kernel of its own, where the table product has 96). Each element is the same
    sum. Only where the gathered rows (or the reshapes of them, one after another)
    are read by the addition alone and ``b`` is a vector of the rows' width."""
    if not gathers:
        return prog
    users = prog.users()
    fetched = set(prog.fetches)
    moved = {}
    for g in gathers:
        chain, v = [], g
        while v not in fetched and len(users.get(v, ())) == 1:
            r = users[v][0]
            if r.type != "Reshape" or r.controls:
                break
            chain.append(r)
            v = (r, 0)
        add = users.get(v, [None])[0]
        if (v in fetched or len(users.get(v, ())) != 1 or add.type != "Add"
                or add.controls or add.inputs[0] == add.inputs[1]):
            continue
        b = add.inputs[1] if add.inputs[0] == v else add.inputs[0]
        table = g[0].inputs[0]
        if (_shape(b) != (_shape(table)[1],) or _dtype(b) != _dtype(table)
                or tuple(add.shapes[0]) != _shape(v) or add.dtypes[0] != _dtype(table)
                or len({prog.device(m) for m in (add, g[0], b[0])}) != 1):
            continue
        moved[add] = (g, chain, b)
    if not moved:
        return prog

    def visit(n):
        if n not in moved:
            return None
        g, chain, b = moved[n]
        table, ids = g[0].inputs[0], g[0].inputs[1]
        biased = (Node("Add", [table, b], {}, n.origin, [_shape(table)], [_dtype(table)],
                       order=n.order), 0)
        v = (Node("Gather", [biased, ids], dict(g[0].attrs), g[0].origin, g[0].shapes,
                  g[0].dtypes, order=n.order), 0)
        for r in chain:
            v = (Node("Reshape", [v], dict(r.attrs), r.origin, r.shapes, r.dtypes,
                      order=n.order), 0)
        return v
    return prune(_rewrite(prog, visit))


def _gradient_blocks(d, lead):
    """``(base_ops, [(y, items)])``: the gradient ``d`` of a gather's rows (leading
    axes ``lead``) as 2-D blocks ``y``, each the rows ``items`` of the leading axes (C
    order) of ``d`` transposed by ``base_ops`` (as :func:`_trace_gather`'s), as an
    unrolled RNN's backward pass builds it: a concatenation along the time axis of
    each step's gradient, reshaped (a ``dynamic_rnn``'s: the transpose of one
    time-major product). None for any other form."""
    base_ops = []
    while d[0].type == "Transpose" and not d[0].controls:
        perm = tuple(d[0].attrs["perm"])
        if perm[-1] != len(perm) - 1:
            return None
        # d = x.transpose(perm): d's rows at ids are x's at ids.transpose(inverse)
        inverse = tuple(sorted(range(len(perm) - 1), key=lambda j: perm[j]))
        base_ops.append(("transpose", inverse))
        lead = tuple(lead[j] for j in inverse)
        d = d[0].inputs[0]
    rank = len(lead)
    whole = [("slice", 0, s) for s in lead]
    if (d[0].type == "Concat" and not d[0].controls
            and S.normalize_axis(d[0].attrs["axis"], rank + 1) < rank):
        axis = S.normalize_axis(d[0].attrs["axis"], rank + 1)
        pieces, at = [], 0
        for p in d[0].inputs:
            size = p[0].shapes[p[1]][axis]
            items = list(whole)
            items[axis] = ("slice", at, at + size)
            pieces.append((p, items))
            at += size
    else:
        pieces = [(d, whole)]
    blocks = []
    for p, items in pieces:
        while p[0].type == "Reshape" and not p[0].controls:
            p = p[0].inputs[0]
        sizes = [it[2] - it[1] for it in items]
        shape = p[0].shapes[p[1]]
        if len(shape) != 2 or shape[0] != math.prod(sizes):
            return None
        # (a slice of one row along an axis is that row: an index, as the forward
        # pass's unstack reads it, so that both find the same index vector)
        blocks.append((p, [("index", it[1]) if it[2] - it[1] == 1 else it
                           for it in items]))
    return base_ops, blocks


def _times_weight_rows(y):
    """``(m, (base, start, stop))`` where ``y`` is ``m @ base[start:stop].T``: a
    matmul by a transposed block of rows of a weight, or a column block of one (the
    input gradient of ``[h, x] @ K``, split into ``h``'s and ``x``'s); else None."""
    n = y[0]
    column = 0
    if n.type in ("Split", "SplitLike") and not n.controls:
        src = n.inputs[0]
        if len(src[0].shapes[src[1]]) != 2 or S.normalize_axis(n.attrs["axis"], 2) != 1:
            return None
        column = sum(n.shapes[j][1] for j in range(y[1]))
        n = src[0]
    if (n.type != "MatMul" or n.controls or n.attrs["transpose_a"]
            or not n.attrs["transpose_b"] or len(n.shapes[0]) != 2):
        return None
    base, offset = _row_block(n.inputs[1])
    width = y[0].shapes[y[1]][1]
    return n.inputs[0], (base, offset + column, offset + column + width)


def push_gathers_into_gradients(prog):
    """The backward pass of :func:`push_gathers_through_matmuls`'s products: the
    gradients of ``E[ids] @ W`` with respect to the table and the weight, each from one
    scatter of the product's gradient into a table of ``V`` rows.

    With ``X = E[ids]`` (the gathered rows, stacked) and ``G`` the gradient of
    ``X @ W`` (stacked the same way), ``X.T @ G == E.T @ S`` and
    ``GatherGrad(G @ W.T, ids) == S @ W.T`` where ``S = GatherGrad(G, ids)`` (``V``
    rows: ``G``'s rows added up by index). So

    - the weight gradient ``A.T @ G`` of a stacked ``A = [h, X]`` (an unrolled RNN's,
      :func:`.matmuls.stack_matmul_sums`) becomes ``[h.T @ G; E.T @ S]``: the rows of
      ``X`` leave the large GEMM, and ``E.T @ S`` is ``V`` rows deep;
    - the table's gradient ``GatherGrad(concat_t(G_t @ W_x.T), ids)`` becomes
      ``S @ W_x.T``: no step computes the gradient of its gathered rows (its
      ``[dh, dx]`` GEMM narrows to ``dh``, :func:`.matmuls.narrow_split_matmuls`);
    - the bias gradient ``sum(G, 0)`` becomes ``sum(S, 0)`` (``S`` holds every row of
      ``G``, added up).

    Both scatters are the same one where the table gradient's per-step ``G_t`` are the
    weight gradient's stacked ``G``. Only where more rows are gathered than the table
    has (as the forward pass).
    """
    users = prog.users()
    fetched = set(prog.fetches)
    build = _Builder()
    existing = {}
    for n in prog.nodes:
        if stacks_distinct_rows(n):
            existing.setdefault(frozenset(n.inputs), n)
    replace = {}
    scattered = {}          # stacked gradient rows -> their scatter (for the bias)

    for n in prog.nodes:
        if n.controls or not n.dtypes or n.dtypes[0].kind != "f":
            continue
        if n.type == "MatMul" and n.attrs["transpose_a"] and not n.attrs["transpose_b"]:
            new = _weight_gradient(prog, n, build, scattered)
        elif n.type == "GatherGrad":
            new = _table_gradient(prog, n, users, fetched, existing, build, scattered)
        else:
            continue
        if new is not None:
            replace[n] = new
    if not replace:
        return prog
    # the bias gradient: a column sum of the scattered rows, or of the value they are
    # a flattening of (a dynamic_rnn's [T, B, 4H] gate gradients summed over T and B)
    for rows in list(scattered):
        src = rows[0].inputs[0] if rows[0].type == "Reshape" and not rows[0].controls \
            else None
        if src is not None and tuple(rows[0].shapes[rows[1]]) == (
                math.prod(_shape(src)[:-1]), _shape(src)[-1]):
            scattered.setdefault(src, scattered[rows])
    for n in prog.nodes:
        if (n.type != "ReduceSum" or n.controls or n.attrs.get("keepdims")
                or n.inputs[0] not in scattered or len(n.shapes[0]) != 1):
            continue
        rank = len(_shape(n.inputs[0]))
        if tuple(S.normalize_axes(n.attrs["axis"], rank)) == tuple(range(rank - 1)):
            replace[n] = (Node("ReduceSum", [scattered[n.inputs[0]]], {
                "axis": (0,), "keepdims": False}, n.origin, n.shapes, n.dtypes,
                order=n.order), 0)
    prog = _reorder(_rewrite(prog, lambda n: replace.get(n)))
    return cse(narrow_split_matmuls(prune(prog)))


def _weight_gradient(prog, n, build, scattered):
    """``A.T @ G`` with a column block of every row block of ``A`` gathered rows of one
    table: ``[rest.T @ G; E.T @ S]`` in column order (see
    :func:`push_gathers_into_gradients`); else None."""
    a, g = n.inputs
    if len(n.shapes[0]) != 2:
        return None
    parts = a[0].inputs if (a[0].type == "Concat" and not a[0].controls and S.normalize_axis(
        a[0].attrs["axis"], 2) == 0) else [a]
    blocks = [_column_blocks(p) for p in parts]
    dtype = n.dtypes[0]
    for start, stop in [(s, e) for _, s, e in blocks[0]]:
        traced = []
        for p_blocks in blocks:
            found = [v for v, s, e in p_blocks if (s, e) == (start, stop)]
            t = _trace_gather(found[0]) if found else None
            if t is None or (traced and (
                    t[0].inputs[0] != traced[0][0].inputs[0]
                    or _dtype(t[0].inputs[1]) != _dtype(traced[0][0].inputs[1]))):
                break       # (one table; indices of one type, to be stacked)
            traced.append(t)
        else:
            table = traced[0][0].inputs[0]
            vocab = table[0].shapes[table[1]][0]
            if (a[0].shapes[a[1]][0] <= vocab or table[0].dtypes[table[1]] != dtype
                    or len({prog.device(m) for m in [n] + [t[0] for t in traced]}) != 1):
                continue
            break
    else:
        return None
    indices = build.stacked_indices(traced, n, _dtype(traced[0][0].inputs[1]))
    s = build.scatter(g, indices, vocab, n)
    scattered[g] = s
    width = n.shapes[0][1]
    x_rows = (Node("MatMul", [table, s], {"transpose_a": True, "transpose_b": False},
                   n.origin, [(stop - start, width)], [dtype], order=n.order), 0)
    cols = n.shapes[0][0]
    if (start, stop) == (0, cols):
        return x_rows
    rest = [build.concat([v for v, s_, e in p_blocks if (s_, e) != (start, stop)], 1, n,
                         dtype) for p_blocks in blocks]
    rest = build.concat(rest, 0, n, dtype)
    rest_rows = (Node("MatMul", [rest, g], dict(n.attrs), n.origin,
                      [(cols - (stop - start), width)], [dtype], order=n.order), 0)
    pieces = []
    if start > 0:
        pieces.append(_rows_of(rest_rows, 0, start, n))
    pieces.append(x_rows)
    if stop < cols:
        pieces.append(_rows_of(rest_rows, start, cols - (stop - start), n))
    return (Node("Concat", pieces, {"axis": 0}, n.origin, n.shapes, n.dtypes,
                 order=n.order), 0)


def _dtype(v):
    return v[0].dtypes[v[1]]


def _shape(v):
    return tuple(v[0].shapes[v[1]])


def _rows_of(v, start, stop, like):
    if (start, stop) == (0, v[0].shapes[v[1]][0]):
        return v
    shape = (stop - start,) + tuple(v[0].shapes[v[1]][1:])
    return (Node("StridedSlice", [v], {"spec": (("slice", start, stop, None),)},
                 like.origin, [shape], [v[0].dtypes[v[1]]], order=like.order), 0)


def _column_blocks(v):
    """``[(value, start, stop)]``: the column blocks of the 2-D ``v`` (the pieces of a
    concatenation along its columns, or ``v`` itself)."""
    if (v[0].type == "Concat" and not v[0].controls
            and len(v[0].shapes[v[1]]) == 2
            and S.normalize_axis(v[0].attrs["axis"], 2) == 1):
        out, at = [], 0
        for p in v[0].inputs:
            width = p[0].shapes[p[1]][1]
            out.append((p, at, at + width))
            at += width
        return out
    return [(v, 0, v[0].shapes[v[1]][1])]


def _table_gradient(prog, n, users, fetched, existing, build, scattered):
    """``GatherGrad(D, ids)`` with ``D`` made of blocks ``G_t @ W_x.T`` of one weight
    block: ``S @ W_x.T`` (see :func:`push_gathers_into_gradients`); else None."""
    d, ids, like = n.inputs
    vocab, embed = n.shapes[0] if len(n.shapes[0]) == 2 else (None, None)
    lead = tuple(ids[0].shapes[ids[1]])
    if (vocab is None or d in fetched or len(users.get(d, ())) != 1
            or math.prod(lead) <= vocab or tuple(d[0].shapes[d[1]]) != lead + (embed,)):
        return None
    found = _gradient_blocks(d, lead)
    if found is None:
        return None
    base_ops, blocks = found
    terms, weight = [], None
    for y, items in blocks:
        found = _times_weight_rows(y)
        if found is None or (weight is not None and found[1] != weight):
            return None
        weight = found[1]
        terms.append((found[0], items))
    base, start, stop = weight
    dtype = n.dtypes[0]
    if (any(m[0].dtypes[m[1]] != dtype for m, _ in terms) or base[0].dtypes[base[1]] != dtype
            or len({prog.device(m) for m in [n, base[0]] + [m[0] for m, _ in terms]}) != 1):
        return None
    # In the order of a stacking of the same gradient rows already there (the weight
    # gradient's): the scatter is then that one (the same rows and indices).
    same = existing.get(frozenset(m for m, _ in terms))
    if same is not None and len(same.inputs) == len(terms):
        at = {v: k for k, v in enumerate(same.inputs)}
        terms.sort(key=lambda t: at[t[0]])
    gather = _Origin(ids)
    indices = build.stacked_indices([(gather, base_ops, items) for _, items in terms], n,
                                    ids[0].dtypes[ids[1]])
    rows = (same, 0) if same is not None and len(same.inputs) == len(terms) else \
        build.concat([m for m, _ in terms], 0, n, dtype)
    s = build.scatter(rows, indices, vocab, n)
    scattered[rows] = s
    return (Node("MatMul", [s, build.weight_rows(base, start, stop, n)],
                 {"transpose_a": False, "transpose_b": True}, n.origin, n.shapes,
                 n.dtypes, order=n.order), 0)


class _Origin:
    """Stands in for a ``Gather`` of ``ids`` where only its indices are read
    (:meth:`_Builder.row_indices`)."""

    def __init__(self, ids):
        self.inputs = [None, ids]
