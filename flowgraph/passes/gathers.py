"""Passes that move a matmul ahead of an embedding lookup: products of gathered rows
of a small table become gathered rows of one product of the table.

``E[ids] @ W == (E @ W)[ids]``. Where the rows of a table ``E`` (``V`` rows) that the
program gathers are multiplied by one weight ``W`` more than ``V`` times in all,
computing ``E @ W`` once (``V`` rows) and gathering its rows does less work than
multiplying every gathered row. The char-RNN (:mod:`benchmarks.programs`, vocabulary
96) multiplies each time step's ``[h_t, E[ids_t]] @ K`` (48 rows of 64 embedding
columns, 32 steps: 1536 rows) where a table product has 96: the per-step GEMM becomes
``h_t @ K_h + (E @ K_x)[ids_t]``, a third less work per step, and the gathered rows are
added in the cell's fused kernel (:func:`.matmuls.split_bias_adds`). A large
vocabulary (PTB's 10,000 rows against 400 gathered) is left alone.
"""
from __future__ import annotations

import math

from .. import shapes as S
from .ir import Node, _rewrite
from .simplify import prune


def _trace_gather(v):
    """``(gather, base_shapes, items)`` when ``v`` is a view of the rows of a ``Gather``
    of a 2-D table that keeps each row whole; else None.

    The view is taken again of another gather of the same indices (``table_rows`` in
    :func:`push_gathers_through_matmuls`): ``base_shapes`` are the leading shapes of the reshapes of the whole gather (the row
    axis dropped), ``items`` one ``("slice", start, stop)`` or ``("index", i)`` per
    leading axis of the last of them.
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
    base_shapes = []
    items = [("slice", 0, s) for s in lead]
    for m, k in reversed(chain):
        shape = m.shapes[k]
        if not shape or shape[-1] != d:
            return None
        live = [j for j, it in enumerate(items) if it[0] == "slice"]   # current axes
        if m.type == "Split":
            in_shape = m.inputs[0][0].shapes[m.inputs[0][1]]
            axis = S.normalize_axis(m.attrs["axis"], len(in_shape))
            if axis >= len(live):
                return None         # (a split of the rows' columns)
            j = live[axis]
            start = items[j][1] + sum(m.shapes[i][axis] for i in range(k))
            items[j] = ("slice", start, start + shape[axis])
        elif m.type == "Reshape":
            current = tuple(items[j][2] - items[j][1] for j in live)
            if all(it == ("slice", 0, s) for it, s in zip(items, lead)) and \
                    len(live) == len(items):
                lead = tuple(shape[:-1])        # a reshape of the whole gather
                base_shapes.append(lead)
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
    if tuple(it[2] - it[1] for it in items if it[0] == "slice") != tuple(v[0].shapes[v[1]][:-1]):
        return None         # (a view this walk does not follow exactly)
    return gather, base_shapes, items


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


def _matmul_parts(n):
    """``[(value, start, stop)]``: the column blocks of ``n``'s left operand (the pieces
    of a concatenation along its columns, or the operand itself), or None."""
    a = n.inputs[0]
    if a[0].type == "Concat" and not a[0].controls and \
            S.normalize_axis(a[0].attrs["axis"], 2) == 1:
        parts, at = [], 0
        for p in a[0].inputs:
            width = p[0].shapes[p[1]][1]
            parts.append((p, at, at + width))
            at += width
        return parts
    return [(a, 0, a[0].shapes[a[1]][1])]


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
        for part, start, stop in _matmul_parts(n):
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
    products, gathered, slices, views = {}, {}, {}, {}

    def weight_rows(b, start, stop, like):
        """Rows ``start:stop`` of the weight ``b`` (one slice for all matmuls)."""
        key = (b, start, stop)
        piece = slices.get(key)
        if piece is None:
            width = b[0].shapes[b[1]][1]
            piece = slices[key] = (Node(
                "StridedSlice", [b], {"spec": (("slice", start, stop, None),)},
                like.origin, [(stop - start, width)], [b[0].dtypes[b[1]]],
                order=like.order), 0)
        return piece

    def index_view(ids, base_shapes, perm, like):
        """``ids`` reshaped as the gather was (``base_shapes``), its axes in the order
        ``perm``: a view of the indices, shared by every matmul that needs it."""
        key = (ids, tuple(base_shapes), perm)
        out = views.get(key)
        if out is None:
            dtype = ids[0].dtypes[ids[1]]
            for lead in base_shapes:
                ids = (Node("Reshape", [ids], {"shape": tuple(lead)}, like.origin,
                            [tuple(lead)], [dtype], order=like.order), 0)
            if perm != tuple(range(len(perm))):
                shape = tuple(ids[0].shapes[ids[1]][j] for j in perm)
                ids = (Node("Transpose", [ids], {"perm": perm}, like.origin, [shape],
                            [dtype], order=like.order), 0)
            out = views[key] = ids
        return out

    def table_rows(gather, key, base_shapes, items, like):
        """``like``'s block of gathered rows times the weight's block, as a view of the
        gathered rows of the table product. The gathered axes that the view indexes
        (an unrolled RNN's time axis) come first in the indices, so that each matmul's
        rows are one contiguous block of the gather, as a kernel reads them fastest
        (a window of a 3-D buffer is read through a general strided array)."""
        table, b, start, stop, _ = key
        product = products.get(key)
        width = b[0].shapes[b[1]][1]
        dtype = like.dtypes[0]
        if product is None:
            shape = (table[0].shapes[table[1]][0], width)
            product = products[key] = (Node(
                "MatMul", [table, weight_rows(b, start, stop, like)],
                {"transpose_a": False, "transpose_b": False}, like.origin, [shape],
                [dtype], order=like.order), 0)
        perm = tuple([j for j, it in enumerate(items) if it[0] == "index"]
                     + [j for j, it in enumerate(items) if it[0] == "slice"])
        ids = index_view(gather.inputs[1], base_shapes, perm, like)
        rows = gathered.get((product, ids))
        if rows is None:
            rows = gathered[(product, ids)] = (Node(
                "Gather", [product, ids], dict(gather.attrs), gather.origin,
                [tuple(ids[0].shapes[ids[1]]) + (width,)], [dtype], order=like.order), 0)
        lead = rows[0].shapes[0][:-1]
        items = [items[j] for j in perm]
        if all(it == ("slice", 0, s) for it, s in zip(items, lead)):
            return rows
        spec = tuple(("slice", it[1], it[2], None) if it[0] == "slice" else it
                     for it in items)
        shape = tuple(it[2] - it[1] for it in items if it[0] == "slice") + (width,)
        return (Node("StridedSlice", [rows], {"spec": spec}, like.origin, [shape], [dtype],
                     order=like.order), 0)

    def visit(n):
        blocks = [blk for blk in found.get(n, ()) if blk[4] in chosen]
        if not blocks:
            return None
        pushed = {(blk[1], blk[2]) for blk in blocks}
        terms = [table_rows(traced[0], key, traced[1], traced[2], n)
                 for _, _, _, traced, key in blocks]
        rest = [(p, s, e) for p, s, e in _matmul_parts(n) if (s, e) not in pushed]
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
            pieces = [weight_rows(b, s, e, n) for s, e in runs]
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
    return prune(_rewrite(prog, visit))
