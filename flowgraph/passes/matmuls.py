"""Passes that reshape a program's matmuls for BLAS: stacking sums of products into
one GEMM, batching the per-step input GEMMs of an unrolled RNN, splitting and
narrowing, untransposing operands read by many GEMMs."""
from __future__ import annotations

from .. import shapes as S
from .ir import Node, _rewrite
from .simplify import prune


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


def stacks_distinct_rows(n):
    """Is ``n`` a concatenation of distinct 2-D values along their rows: a stacking
    that later passes read again instead of stacking the same values a second time
    (the weight gradient's stacked inputs, :func:`stack_matmul_sums`)?"""
    return (n.type == "Concat" and not n.controls and len(n.shapes[0]) == 2
            and S.normalize_axis(n.attrs["axis"], 2) == 0
            and len(set(n.inputs)) == len(n.inputs))


def batch_input_matmuls(prog):
    """Matmuls by one weight of inputs that are fed or constant (``x_t @ W`` for every
    time step of an unrolled RNN) become one matmul of the stacked inputs, split back
    into per-step views: one large GEMM instead of T small ones. Where the program
    already stacks the same inputs (the weight gradient's ``X.T @ dZ``, stacked in the
    order the backward pass made its terms), the product reads that stack, in its
    order: the feeds load into one buffer and no step copies them into a second
    (GRU medium: 0.34 ms less per step).
    """
    def fixed_input(v):
        n = v[0]
        while n.primitive.view:     # (reshapes, slices, splits, transposes)
            n = n.inputs[0][0]
        return n.type in ("Feed", "Const")

    groups = {}
    for n in prog.nodes:
        if (n.type == "MatMul" and not n.controls and len(n.shapes[0]) == 2
                and not n.attrs["transpose_a"] and fixed_input(n.inputs[0])):
            key = (n.inputs[1], n.attrs["transpose_b"], n.dtypes[0].str, prog.device(n))
            groups.setdefault(key, []).append(n)
    # Concatenations along the rows already in the program, by their set of inputs:
    # the weight gradient's stacked inputs (stack_matmul_sums) are the same x_t, in
    # the order the backward pass made its terms. Stacked in that order, the batched
    # product reads that very buffer (the feeds load into it), not a second stack.
    existing = {}
    for n in prog.nodes:
        if stacks_distinct_rows(n):
            existing.setdefault((frozenset(n.inputs), n.dtypes[0].str, prog.device(n)), n)
    replace = {}
    for (b, tb, _, _), members in groups.items():
        if len(members) < 2:
            continue
        last = members[-1]
        parts = [m.inputs[0] for m in members]
        same = existing.get((frozenset(parts), last.dtypes[0].str, prog.device(last)))
        if same is not None and len(set(parts)) == len(parts) == len(same.inputs):
            at = {v: k for k, v in enumerate(same.inputs)}
            members = sorted(members, key=lambda m: at[m.inputs[0]])
            parts = [m.inputs[0] for m in members]
        else:
            same = None
        rows = [p[0].shapes[p[1]][0] for p in parts]
        cols = parts[0][0].shapes[parts[0][1]][1]
        stacked = same or Node("Concat", parts, {"axis": 0}, last.origin,
                               [(sum(rows), cols)], last.dtypes, order=last.order)
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


def split_bias_adds(prog):
    """``split(m @ w + b, axis=1)[k]`` becomes ``split(m @ w)[k] + split(b)[k]``: the
    bias of a per-step gate product is added by the cell's fused kernel, which reads
    each gate's columns of the GEMM's output anyway, instead of by a kernel of its own
    that reads and writes the whole product once more per step (an LSTM's
    ``[h, x] @ K + b`` split into its four gates; a GRU's ``h @ U + b_u``). ``b`` may
    also have the product's own shape: in a loop body, ``h @ K_h + xk_t`` adds the
    row of the hoisted input product (:func:`flowgraph.loop_passes.hoist`), split
    into the same columns.

    After :func:`add_before_split` the same holds one level down: ``split(split(X @ W +
    b, axis=0)[t], axis=1)[k]`` (an unrolled GRU's batched input product, split into
    time steps, each step's piece into its gates) becomes ``split(split(X @ W,
    axis=0)[t], axis=1)[k] + split(b)[k]``, each step's gate bias added in the step's
    cell kernel instead of by a kernel of its own over the whole batched product (a
    39 MB read and write per run at rnn_step.py's GRU large). That needs the
    fusion to keep each step's additions with its own cell (:func:`.fusion._root`,
    :func:`.fusion.merge_into_readers`). Where a row piece is read whole (not only
    through a column split), the one addition of :func:`add_before_split` stays.
    """
    users = prog.users()
    fetched = set(prog.fetches)
    plan, by_rows = {}, {}
    for n in prog.nodes:
        if (n.type != "Add" or n.controls or len(n.shapes[0]) != 2 or (n, 0) in fetched
                or n.dtypes[0].kind != "f"):
            continue
        readers = users.get((n, 0), ())
        split = readers[0] if len(readers) == 1 else None
        if split is None or split.type != "Split" or split.controls:
            continue
        rows = None
        if S.normalize_axis(split.attrs["axis"], 2) == 0:
            # A batched product split into time steps first (add_before_split's
            # layout), each step's piece then into its gates: the bias joins each
            # step's gates as well.
            rows = split
            columns = _column_splits(rows, users, fetched)
            if columns is None:
                continue
        elif S.normalize_axis(split.attrs["axis"], 2) != 1:
            continue
        product, bias = n.inputs
        if product[0].type != "MatMul" and (bias[0].type == "MatMul" or (
                product[0].type != "Add" and bias[0].type == "Add")):
            product, bias = bias, product
        extra = None
        if product[0].type == "Add" and rows is None:
            # ``(m @ w + r) + b``: ``r`` of the product's shape (the gathered rows of
            # a table product, :func:`.gathers.push_gathers_through_matmuls`) is
            # split and added in the cell's kernel along with the bias.
            inner = product[0]
            if (not inner.controls and len(users.get(product, ())) == 1
                    and product not in fetched and inner.shapes[0] == n.shapes[0]):
                p, r = inner.inputs
                if p[0].type != "MatMul":
                    p, r = r, p
                if (p[0].type == "MatMul" and r[0].shapes[r[1]] == n.shapes[0]
                        and r[0].dtypes[r[1]] == n.dtypes[0]
                        and prog.device(inner) == prog.device(n)):
                    product, extra = p, r
        b_shape = bias[0].shapes[bias[1]]
        if (product[0].type != "MatMul" or product[0].shapes[product[1]] != n.shapes[0]
                or b_shape not in ((n.shapes[0][1],), (1, n.shapes[0][1]), n.shapes[0])
                or bias[0].dtypes[bias[1]] != n.dtypes[0]
                or len({prog.device(m) for m in [n, split, product[0]]
                        + ([] if rows is None else columns)}) != 1):
            continue
        if rows is None:
            plan[split] = (n, product, bias, extra)
        else:
            by_rows[rows] = (n, product, bias, columns)
    if not plan and not by_rows:
        return prog
    replace = {}

    def bias_pieces(add, bias, sizes):
        b_shape = bias[0].shapes[bias[1]]
        return Node("Split", [bias], {"sizes": tuple(sizes), "axis": len(b_shape) - 1},
                    add.origin, [b_shape[:-1] + (s,) for s in sizes],
                    [add.dtypes[0]] * len(sizes), order=add.order)

    def gate_adds(split, product, b_pieces, add, r_pieces=None):
        pieces = Node("Split", [product], dict(split.attrs), split.origin, split.shapes,
                      split.dtypes, order=split.order)
        out = []
        for k in range(len(split.shapes)):
            piece = (pieces, k)
            if r_pieces is not None:
                piece = (Node("Add", [piece, (r_pieces, k)], {}, add.origin,
                              [split.shapes[k]], add.dtypes[:1], order=split.order), 0)
            out.append((Node("Add", [piece, (b_pieces, k)], {}, add.origin,
                             [split.shapes[k]], add.dtypes[:1], order=split.order), 0))
        return out

    for split, (add, product, bias, extra) in plan.items():
        sizes = split.attrs["sizes"]
        replace[split] = gate_adds(
            split, product, bias_pieces(add, bias, sizes), add,
            None if extra is None else bias_pieces(add, extra, sizes))
    for rows, (add, product, bias, columns) in by_rows.items():
        steps = Node("Split", [product], dict(rows.attrs), rows.origin, rows.shapes,
                     rows.dtypes, order=rows.order)
        b_pieces = bias_pieces(add, bias, columns[0].attrs["sizes"])
        for t, split in enumerate(columns):
            replace[split] = gate_adds(split, (steps, t), b_pieces, add)
    return prune(_rewrite(prog, lambda n: replace.get(n)))


def _column_splits(rows, users, fetched):
    """The column splits (one per piece, all alike) that read every piece of the row
    split ``rows`` and nothing else does, in piece order; else None."""
    found = []
    for k in range(len(rows.shapes)):
        readers = users.get((rows, k), ())
        if len(readers) != 1 or (rows, k) in fetched:
            return None
        split = readers[0]
        if (split.type != "Split" or split.controls or split.inputs[0] != (rows, k)
                or S.normalize_axis(split.attrs["axis"], 2) != 1
                or (found and split.attrs["sizes"] != found[0].attrs["sizes"])):
            return None
        found.append(split)
    return found


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


# Rows of a product that BLAS computes as one block (OpenBLAS's single-precision
# kernels on AVX-512 cores work on 16 rows of C at a time; double precision on 8, so
# 16 is conservative there): fold_column_sums_into_matmuls adds a row only where it
# fits in the last block.
FOLD_ROW_BLOCK = 16


def fold_column_sums_into_matmuls(prog):
    """A column sum ``sum(dz, 0)`` beside a product ``a.T @ dz`` of the same ``dz``
    (the bias and weight gradients of a dense layer or of an unrolled RNN, once
    :func:`stack_matmul_sums` and :func:`stack_reduce_sums` have stacked both over the
    time steps) becomes one more row of that product: ``[a, 1].T @ dz``, whose first
    rows are ``a.T @ dz`` and whose last row is the column sum (the sum is ``ones @
    dz``, a GEMV, already: here it rides in the GEMM). The column sum read all of
    ``dz`` once more, by then out of cache: an RNN's stacked gate gradients, 3-7 MB at
    the char-RNN and row-LSTM shapes, took 0.25-0.58 ms; the GEMM gains one column of
    ``a`` in K (0.2-0.7% more work).

    ``[a, 1]`` is a concatenation along the columns that ``a``'s producer writes into
    (a window of the buffer, :mod:`flowgraph.buffers`), with the column of ones copied in
    each run. So only where ``a`` can be such a window: computed by the program (not a
    feed, constant, variable read or view), read by no view op and no other
    concatenation, not fetched; otherwise copying ``a`` would cost what the sum saved.
    Both results are views of the product's buffer (its rows ``[:K]`` and row ``K``).

    Only where the extra row does not start another block of :data:`FOLD_ROW_BLOCK`
    rows of the product (``K`` not a multiple of it): BLAS computes the product's rows
    in such blocks, and a block for one row costs what a whole one does. Measured on one
    Zen 4 core: the char-RNN's 192x1536 @ 1536x512 took 0.1-0.17 ms more as 193 rows
    (the column sum it replaced, 0.25 ms), its readout's 128 -> 129 rows 0.03-0.09 ms
    more; the row-LSTM's 156 -> 157 rows nothing measurable against 0.58 ms saved.
    """
    users = prog.users()
    fetched = set(prog.fetches)

    def windowable(v):
        n = v[0]
        if (n.type in ("Feed", "Const", "Variable") or n.primitive.view or n.kind == "state"
                or v in fetched or len(n.shapes) != 1):
            return False
        return not any(u.primitive.view or u.type == "Concat" for u in users.get(v, ()))

    products = {}
    for n in prog.nodes:
        if (n.type == "MatMul" and not n.controls and n.attrs["transpose_a"]
                and not n.attrs["transpose_b"] and len(n.shapes[0]) == 2
                and n.dtypes[0].kind == "f"):
            products.setdefault((n.inputs[1], prog.device(n)), []).append(n)
    pairs, taken = {}, set()
    for n in prog.nodes:
        if n.type != "ReduceSum" or n.controls or n.attrs.get("keepdims"):
            continue
        x = n.inputs[0]
        if (len(x[0].shapes[x[1]]) != 2 or n.dtypes[0].kind != "f"
                or tuple(S.normalize_axes(n.attrs["axis"], 2)) != (0,)):
            continue
        for m in products.get((x, prog.device(n)), ()):
            if (m not in taken and m.dtypes[0] == n.dtypes[0]
                    and m.shapes[0][0] % FOLD_ROW_BLOCK != 0
                    and m.inputs[0][0].dtypes[m.inputs[0][1]] == m.dtypes[0]
                    and windowable(m.inputs[0])):
                pairs[n] = m
                taken.add(m)
                break
    if not pairs:
        return prog
    import numpy as np
    from .ir import _const

    replace = {}
    for total, m in pairs.items():
        a = m.inputs[0]
        rows, k = a[0].shapes[a[1]]
        width = m.shapes[0][1]
        dtype = m.dtypes[0]
        ones = _const(np.broadcast_to(np.ones((), dtype), (rows, 1)), m)
        widened = Node("Concat", [a, (ones, 0)], {"axis": 1}, m.origin, [(rows, k + 1)],
                       [dtype], order=m.order)
        product = Node("MatMul", [(widened, 0), m.inputs[1]], dict(m.attrs), m.origin,
                       [(k + 1, width)], [dtype], order=m.order)
        replace[m] = (Node("StridedSlice", [(product, 0)],
                           {"spec": (("slice", None, k, None),)}, m.origin, [(k, width)],
                           [dtype], order=m.order), 0)
        replace[total] = (Node("StridedSlice", [(product, 0)], {"spec": (("index", k),)},
                               total.origin, [(width,)], [dtype], order=total.order), 0)

    def visit(n):
        return replace.get(n)
    return _reorder(_rewrite(prog, visit))
