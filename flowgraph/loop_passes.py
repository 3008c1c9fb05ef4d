"""Loop passes: what the compiler does to ``While`` loops beyond running their bodies.

At graph level, when a loop is built (:func:`hoist`, called by
:func:`flowgraph.control_flow.scan` / ``dynamic_rnn`` through ``_loop``): the
per-step input product ``x_t @ W_x`` (and its bias) becomes one GEMM over every step
before the loop, read by the body as a row of a new sequence, and values the body
computes from outer tensors only are computed once per loop run. When a gradient loop
is built (:func:`split_carried_sums`, asked for by ``control_flow._while_grad``), a
state gradient that is a sum with a matrix product is carried as its two terms, added
where the next iteration reads it.

On the compiler's program (:mod:`flowgraph.compiler` calls :func:`before` ahead of
:data:`flowgraph.passes.PIPELINE` and :func:`run` after it):

- :func:`unbatch_matmuls`: the hoisted ``[T, B, I] @ [I, N]`` product and its weight
  gradient become plain 2-D GEMMs (one BLAS call each);
- :func:`slice_grads_to_concat`: the gradient of a weight used in two row blocks
  (``W[:H]`` in the loop, ``W[H:]`` in the hoisted GEMM) is a concatenation, not two
  zero-filled arrays added;
- after the pipeline, :func:`merge_weight_gradient_gemms`: those two blocks' GEMMs,
  where they read the same stacked gradient, are one GEMM over ``[hs, xs]`` (the
  unrolled step's shape);
- after it too, :func:`untranspose_loop_inputs`: a transposed weight a loop reads is
  copied into C order by the outer plan (the tiled transpose kernel), not by the
  loop step;
- :func:`mark_live_outputs` (last) records which of a loop's outputs anything reads, so that
  the loop step computes and stores only those (a forward loop whose history no
  gradient reads stores none; an emit nobody reads is not computed in the body).

>>> import flowgraph as fg
>>> with fg.Graph().as_default() as graph:
...     x = fg.placeholder(fg.float32, (2, None, 3))
...     out, _ = fg.nn.dynamic_rnn(fg.nn.LSTMCell(4, seed=0), x, dtype=fg.float32)
...     loop = [op for op in graph.operations if op.type == "While"][0]
>>> body = loop.attrs["body"]            # h @ W[:4] only: no [h, x] concat in the loop
>>> [op.type for op in body.ops if op.type in ("MatMul", "Concat")]
['MatMul']
>>> [t.op.name for t in body.hoisted]    # x @ W[4:] + b, once over all steps
['rnn/while/hoisted/input_bias0']
"""
from __future__ import annotations

import math


def mark_live_outputs(prog):
    """Give every ``While`` node ``attrs["_live"]``: one bool per output, whether a
    node reads it or it is fetched. The node's attrs become its own copy (the graph
    op's are left as they are).

    >>> import flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     xs = fg.placeholder(fg.float64, (None, 2))
    ...     ys = fg.scan(lambda acc, x: acc + x, xs)
    ...     prog = mark_live_outputs(passes.lower([ys], [], [xs], [(4, 2)]))
    >>> loop = [n for n in prog.nodes if n.type == "While"][0]
    >>> loop.attrs["_live"]       # final acc, emitted accs, history, count
    (False, True, False, False)
    """
    loops = [n for n in prog.nodes if n.type == "While"]
    if not loops:
        return prog
    users = prog.users()
    fetched = set(prog.fetches)
    for n in loops:
        live = tuple((n, k) in users or (n, k) in fetched for k in range(len(n.shapes)))
        n.attrs = {**n.attrs, "_live": live}
    return prog


def unbatch_matmuls(prog):
    """``[T, B, I] @ [I, N]`` (the hoisted input product of a loop: every row of a
    sequence times a weight) becomes one 2-D GEMM on ``[T*B, I]`` (reshapes are views),
    and its weight gradient, ``sum_like([T, B, I]^T @ [T, B, N], W)``, the 2-D GEMM
    ``[T*B, I]^T @ [T*B, N]``: one BLAS call each instead of T.

    >>> import numpy as np, flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     a = fg.placeholder(fg.float64, (3, 4, 5))
    ...     y = fg.matmul(a, fg.constant(np.ones((5, 2))))
    ...     prog = unbatch_matmuls(passes.lower([y], [], [a], [(3, 4, 5)]))
    >>> [(n.type, n.shapes[0]) for n in prog.nodes if n.type in ("MatMul", "Reshape")]
    [('Reshape', (12, 5)), ('MatMul', (12, 2)), ('Reshape', (3, 4, 2))]
    """
    from .passes.ir import Node, _rewrite

    def reshape(v, shape, like):
        return (Node("Reshape", [v], {"shape": shape}, like.origin, [shape],
                     [v[0].dtypes[v[1]]], order=like.order), 0)

    def shape_of(v):
        return v[0].shapes[v[1]]

    def visit(n):
        if n.controls:
            return None
        if n.type == "MatMul" and not n.attrs["transpose_a"]:
            a, b = n.inputs
            sa, sb = shape_of(a), shape_of(b)
            if len(sa) < 3 or len(sb) != 2 or n.dtypes[0].kind != "f":
                return None
            rows = math.prod(sa[:-1])
            mm = Node("MatMul", [reshape(a, (rows, sa[-1]), n), b], dict(n.attrs), n.origin,
                      [(rows, n.shapes[0][-1])], n.dtypes, order=n.order)
            return reshape((mm, 0), n.shapes[0], n)
        if n.type == "SumLike":
            m = n.inputs[0][0]
            if (m.type != "MatMul" or not m.attrs["transpose_a"] or m.attrs["transpose_b"]
                    or m.controls or len(n.shapes[0]) != 2):
                return None
            a, g = m.inputs
            sa, sg = shape_of(a), shape_of(g)
            if (len(sa) < 3 or len(sg) != len(sa) or sa[:-2] != sg[:-2]
                    or n.shapes[0] != (sa[-1], sg[-1]) or users.get((m, 0)) != [n]):
                return None
            rows = math.prod(sa[:-1])
            return (Node("MatMul", [reshape(a, (rows, sa[-1]), n), reshape(g, (rows, sg[-1]), n)],
                         {"transpose_a": True, "transpose_b": False}, n.origin, n.shapes,
                         n.dtypes, order=n.order), 0)
        return None

    if not any(n.type in ("MatMul", "SumLike") and len(n.inputs[0][0].shapes[
            n.inputs[0][1]]) >= 3 for n in prog.nodes):
        return prog
    users = prog.users()
    from .passes.simplify import prune
    return prune(_rewrite(prog, visit))


def slice_grads_to_concat(prog):
    """``slice_grad(a, W, rows [0:k]) + slice_grad(b, W, rows [k:R])`` (the gradient
    of a weight whose row blocks are used apart: the recurrent and the hoisted input
    block of ``[h, x] @ W``) becomes ``concat([a, b], 0)``: no zeroed weight-sized
    arrays and no addition (and each block's GEMM then writes straight into its
    window of the gradient).

    >>> import flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     w = fg.placeholder(fg.float64, (5, 2))
    ...     y = fg.reduce_sum(w[:2] * 3.0) + fg.reduce_sum(fg.square(w[2:]))
    ...     g, = fg.gradients(y, [w])
    ...     prog = slice_grads_to_concat(passes.lower([g], [], [w], [(5, 2)]))
    >>> sorted({n.type for n in prog.nodes} & {"SliceGrad", "Concat"})
    ['Concat']
    """
    from .passes.ir import Node, _rewrite
    from .passes.simplify import prune

    users = prog.users()
    fetched = set(prog.fetches)

    def rows_of(n):
        spec = n.attrs["spec"]
        if len(spec) != 1 or spec[0][0] != "slice" or spec[0][3] not in (1, None):
            return None
        rows = n.shapes[0][0]
        start, stop, _ = slice(spec[0][1], spec[0][2]).indices(rows)
        return start, stop

    def single(v):
        return len(users.get(v, ())) == 1 and v not in fetched and not v[0].controls

    def inner_add(v):
        """Is ``v`` an addition the sum may look through (read once, no broadcast)?"""
        n = v[0]
        return n.type == "Add" and single(v) and all(
            w[0].shapes[w[1]] == n.shapes[0] for w in n.inputs)

    def leaf(v):
        n = v[0]
        return n.type == "SliceGrad" and single(v) and rows_of(n) is not None

    # Whether every term under an addition is a slice gradient, in graph order (inputs
    # first), so that nothing recurses or walks along the sum: an unrolled RNN's
    # weight-gradient sum is a chain of additions as deep as T.
    all_slices = {}
    for n in prog.nodes:
        if n.type == "Add":
            all_slices[n] = all(leaf(w) or (inner_add(w) and all_slices[w[0]])
                                for w in n.inputs)

    def leaves(n):
        """The slice gradients under addition ``n``, left to right."""
        out, stack = [], list(reversed(n.inputs))
        while stack:
            w = stack.pop()
            if leaf(w):
                out.append(w[0])
            else:
                stack.extend(reversed(w[0].inputs))
        return out

    replace = {}
    for n in reversed(prog.nodes):
        if (n.type != "Add" or n in replace or n.controls or len(n.shapes[0]) < 1
                or not all_slices[n]):
            continue
        found = leaves(n)
        if len(found) < 2:
            continue
        like = found[0].inputs[1]
        if any(m.inputs[1] != like for m in found):
            continue
        spans = sorted((rows_of(m), m) for m in found)
        at = 0
        for (start, stop), _ in spans:
            if start != at:
                break
            at = stop
        else:
            if at == n.shapes[0][0]:
                replace[n] = Node("Concat", [m.inputs[0] for _, m in spans], {"axis": 0},
                                  n.origin, n.shapes, n.dtypes, order=n.order)
                stack = list(n.inputs)
                while stack:     # the inner adds are covered by this one
                    w = stack.pop()
                    if w[0].type == "Add":
                        replace.setdefault(w[0], None)
                        stack.extend(w[0].inputs)
    replace = {k: v for k, v in replace.items() if v is not None}
    if not replace:
        return prog
    return prune(_rewrite(prog, lambda n: (replace[n], 0) if n in replace else None))


def merge_weight_gradient_gemms(prog):
    """``concat([A_1^T @ G, ..., A_k^T @ G], 0)`` (a weight's gradient from its row
    blocks, each a GEMM over the same stacked gradient ``G``: after
    :func:`slice_grads_to_concat`, the recurrent block ``hs^T @ dz`` and the hoisted
    input block ``xs^T @ dz`` of a loop's ``[h, x] @ W``) becomes one GEMM,
    ``concat([A_1, ..., A_k], 1)^T @ G``, the shape the unrolled step's weight
    gradient has. Each output element is the same sum over the same rows.

    Why: OpenBLAS runs the blocks' thinner GEMMs slower than the whole one (LSTM
    medium, sgemm on one Zen 4 core: 256x3200 @ 3200x1024 at 90 GF/s and 128x3200 @
    3200x1024 at 80 GF/s against 384x3200 @ 3200x1024 at 93.5 GF/s, 29.1 against
    26.9 ms), and the concatenation costs little: where the blocks are row-wise
    reshapes of stacked arrays with the same leading axes (``[T, B, H]`` and ``[T,
    B, I]``), the stacked arrays are concatenated along their last axis and the
    buffer planner writes each straight into its window (the loop's history of
    ``h``), or copies it in once (a fed ``xs`` that the hoisted GEMM reads too).

    >>> import numpy as np, flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     a = fg.placeholder(fg.float64, (6, 2))
    ...     b = fg.placeholder(fg.float64, (6, 3))
    ...     g = fg.placeholder(fg.float64, (6, 4))
    ...     w = fg.concat([fg.matmul(a, g, transpose_a=True),
    ...                    fg.matmul(b, g, transpose_a=True)], 0)
    ...     prog = merge_weight_gradient_gemms(
    ...         passes.lower([w], [], [a, b, g], [(6, 2), (6, 3), (6, 4)]))
    >>> [(n.type, n.shapes[0]) for n in prog.nodes if n.type in ("MatMul", "Concat")]
    [('Concat', (6, 5)), ('MatMul', (5, 4))]
    """
    from .passes.ir import Node, _rewrite
    from .passes.simplify import prune

    if not any(n.type == "Concat" for n in prog.nodes):
        return prog
    users = prog.users()
    fetched = set(prog.fetches)

    def block(v):
        """``(A, G)`` of ``v = A^T @ G`` read only by the concatenation, else None."""
        m = v[0]
        if (m.type != "MatMul" or not m.attrs["transpose_a"] or m.attrs["transpose_b"]
                or m.controls or v in fetched or len(users.get(v, ())) != 1
                or len(m.shapes[0]) != 2):
            return None
        a, g = m.inputs
        if len(a[0].shapes[a[1]]) != 2:
            return None
        return a, g

    def source(v):
        """``v`` seen through reshapes and sums to its own shape (the gradient of
        the hoisted product reaches its GEMM through ``sum_like``s that the pipeline
        folds later): (the value under them, its shape)."""
        while not v[0].controls and (v[0].type == "Reshape" or (
                v[0].type == "SumLike"
                and v[0].inputs[0][0].shapes[v[0].inputs[0][1]] == v[0].shapes[0])):
            v = v[0].inputs[0]
        return v, v[0].shapes[v[1]]

    def visit(n):
        if n.type != "Concat" or n.controls or len(n.inputs) < 2 or len(n.shapes[0]) != 2:
            return None
        if n.attrs["axis"] not in (0, -2) or n.dtypes[0].kind != "f":
            return None
        blocks = [block(v) for v in n.inputs]
        if any(b is None for b in blocks):
            return None
        g0 = blocks[0][1]
        if any(source(g) != source(g0) or g[0].shapes[g[1]] != g0[0].shapes[g0[1]]
               for _, g in blocks):
            return None
        rows = {a[0].shapes[a[1]][0] for a, _ in blocks}
        if len(rows) != 1 or any(a[0].dtypes[a[1]] != n.dtypes[0] for a, _ in blocks):
            return None
        rows = rows.pop()
        width = sum(a[0].shapes[a[1]][1] for a, _ in blocks)
        if width != n.shapes[0][0]:
            return None
        # the stacked arrays the blocks are row-wise reshapes of, when they share
        # their leading axes: concatenated along the last axis (windows, no copy)
        stacked = [source(a) for a, _ in blocks]
        lead = stacked[0][1][:-1]
        if (all(len(s) >= 2 and s[:-1] == lead and math.prod(lead) == rows
                for _, s in stacked) and len(lead) >= 1):
            shape = tuple(lead) + (width,)
            cat = Node("Concat", [v for v, _ in stacked], {"axis": len(lead)}, n.origin,
                       [shape], n.dtypes, order=n.order)
            left = (Node("Reshape", [(cat, 0)], {"shape": (rows, width)}, n.origin,
                         [(rows, width)], n.dtypes, order=n.order), 0)
        else:
            left = (Node("Concat", [a for a, _ in blocks], {"axis": 1}, n.origin,
                         [(rows, width)], n.dtypes, order=n.order), 0)
        return (Node("MatMul", [left, g0], {"transpose_a": True, "transpose_b": False},
                     n.origin, n.shapes, n.dtypes, order=n.order), 0)

    if not any(n.type == "Concat" and all(block(v) for v in n.inputs)
               for n in prog.nodes if n.inputs):
        return prog
    return prune(_rewrite(prog, visit))


def unread_sequences(node):
    """The input values of ``While`` node ``node`` that only feed sequences its body
    never reads (a sequence the gradient loop is handed but does not need: the forward
    loop's hoisted input product): the buffer planner need not keep them
    alive for the loop (:class:`flowgraph.buffers.BufferLayout`). Only for a loop over
    sequences (no ``cond``); empty otherwise.

    >>> import flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     xs = fg.placeholder(fg.float64, (3, 2))
    ...     ys = fg.placeholder(fg.float64, (3, 2))
    ...     out = fg.scan(lambda acc, xy: acc + xy[0], (xs, ys),
    ...                   initializer=fg.zeros((2,), fg.float64))
    ...     prog = passes.lower([out], [], [xs, ys], [(3, 2), (3, 2)])
    >>> loop = [n for n in prog.nodes if n.type == "While"][0]
    >>> [v[0].feed.name for v in unread_sequences(loop)]
    ['Placeholder_1:0']
    """
    attrs = node.attrs
    body = attrs.get("body")
    if node.type != "While" or body is None or attrs.get("cond") is not None:
        return set()
    nv, ns = attrs["n_vars"], attrs["n_seqs"]
    read = {id(t) for op in body.ops for t in op.inputs} | {id(t) for t in body.outputs}
    unread = {node.inputs[k] for k in range(nv, nv + ns)
              if id(body.params[k]) not in read}
    return unread - {v for k, v in enumerate(node.inputs)
                     if not nv <= k < nv + ns or id(body.params[k]) in read}


def before(prog):
    """The loop passes that run before :data:`flowgraph.passes.PIPELINE`."""
    if not any(n.type in ("While", "SliceGrad", "SumLike") for n in prog.nodes):
        return prog
    return slice_grads_to_concat(unbatch_matmuls(prog))


def run(prog):
    """The loop passes over an optimized program (the compiler calls this after the
    pipeline)."""
    # (the merge runs after the pipeline: a block the gather pushdown rewrites, a
    # char model's E.T @ scatter(dz), is far smaller than its [T*B] rows' GEMM)
    return mark_live_outputs(untranspose_loop_inputs(merge_weight_gradient_gemms(prog)))


def untranspose_loop_inputs(prog):
    """A loop input that is a transposed matrix (the backward loop's ``W[:H].T``,
    which :func:`hoist` made once per loop run) is copied into a C-order buffer by the
    outer plan: ``While(..., W.T)`` becomes ``While(..., copy(W.T))``.

    Why: the loop's body reads its captures in C order (a GEMM reads a transposed
    operand slower), so the loop step copied the transposed view into the body's
    buffer at the start of every run with NumPy, whose column walk thrashes L1 at
    power-of-two widths (256x1024 float32: 760-860 us per run, LSTM medium on one
    Zen 4 core). The outer plan's ``Copy`` takes the tiled transpose kernel
    (:mod:`kernels.cpu.transpose`, about 200 us there, as the unrolled step's
    transposed weight does), and the body reads the copy in place
    (:func:`flowgraph.loop_rows.bindable_captures`): no copy left in the loop step.

    >>> import numpy as np, flowgraph as fg
    >>> from flowgraph import passes
    >>> with fg.Graph().as_default():
    ...     w = fg.placeholder(fg.float32, (3, 4))
    ...     xs = fg.placeholder(fg.float32, (None, 2, 4))
    ...     ys = fg.scan(lambda acc, x: fg.matmul(x, w, transpose_b=True), xs,
    ...                  initializer=fg.zeros((2, 3)))
    ...     prog = untranspose_loop_inputs(passes.lower([ys], [], [w, xs],
    ...                                                 [(3, 4), (5, 2, 4)]))
    >>> loop, = [n for n in prog.nodes if n.type == "While"]
    >>> [v[0].type for v in loop.inputs if v[0].type in ("Transpose", "Copy")]
    ['Copy']
    """
    from .passes.ir import Node

    loops = [n for n in prog.nodes if n.type == "While"]
    if not loops:
        return prog
    copies, nodes = {}, []
    for n in prog.nodes:
        if n.type == "While":
            for i, v in enumerate(n.inputs):
                t = v[0]
                if (t.type != "Transpose" or tuple(t.attrs.get("perm", ())) != (1, 0)
                        or len(t.shapes[v[1]]) != 2 or t.dtypes[v[1]].kind != "f"
                        or t.controls):
                    continue
                plain = copies.get(v)
                if plain is None:
                    plain = copies[v] = Node("Copy", [v], {}, t.origin, [t.shapes[0]],
                                             t.dtypes, order=t.order)
                    nodes.append(plain)
                n.inputs[i] = (plain, 0)
        nodes.append(n)
    prog.nodes = nodes
    return prog


# --- graph level: hoisting out of a traced body (called by control_flow._loop) -----------

ENABLED = True
"""Hoist the per-step input products and loop-invariant values out of loop bodies
(:func:`hoist`). Tests turn it off to compare against the plain loop."""

_PURE = frozenset({"elementwise", "reduction", "matmul", "shape", "index", "copy"})


def hoist(body, specs, nv, seqs, with_index, name):
    """Rewrite a traced loop body so that work that does not depend on the iteration
    runs once, outside the loop:

    - **Input products.** ``x_t @ W`` with ``x_t`` the row of a sequence and ``W``
      read from outside (``concat([h, x_t]) @ W`` too: it is ``h @ W[:H] + x_t @ W[H:]``)
      becomes one GEMM over every row of the sequence before the loop; the body reads
      row ``t`` of its result, a new sequence. A bias added to the product, ``+ b``,
      goes into that GEMM's output too, so its gradient is one column sum after the
      loop, and the input weight's gradient one GEMM.
    - **Loop-invariant values** (ops that read only outer tensors: ``W[:H]``, a
      transposed weight) are computed once per loop run, outside the body; so is the
      transposed weight of ``a @ W.T`` (the backward loop's ``dz @ W_h.T``), which the
      compiler would otherwise copy into a plain array at every iteration.

    A sequence that the body read only through hoisted products is left out of the
    returned ``seqs`` (and its row out of the body's parameters): nothing computes it
    for the loop, and no gradient loop emits a gradient of its rows.

    Returns ``(body, seqs, specs)``, the same objects when nothing moved (and when
    :data:`ENABLED` is false). The hoisted products are ``new_body.hoisted``; see the
    module's example.
    """
    from . import api as F
    from .control_flow import Function, _read_params
    from .graph import get_default_graph, name_scope

    if not ENABLED:
        return body, seqs, specs
    ns = len(seqs)
    params = body.params
    seq_params = params[nv:nv + ns]
    own = set(body.ops)
    varying = set(params)
    invariant = []                 # ops to run once, outside
    for op in body.ops:
        if op.type == "Placeholder" and op.outputs and op.outputs[0] in varying:
            continue
        if any(t in varying for t in op.inputs):
            varying.update(op.outputs)
        elif (op.primitive.kind in _PURE and not op.control_inputs
              and _reads_outside(op, own, invariant)):
            invariant.append(op)
        else:
            varying.update(op.outputs)   # constants stay in the body (folded there)
    readers = {}
    for op in body.ops:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    outputs = set(body.outputs)
    inv_out = {t for op in invariant for t in op.outputs}

    def outside(t):
        return t.op not in own or t in inv_out

    def only_reader(t, op):
        return t not in outputs and readers.get(t, []) == [op]

    hoisted = []                   # (replaced tensor, seq index, rest parts, weight, slices)
    for op in body.ops:
        if op.type != "MatMul" or op.attrs["transpose_a"] or op.attrs["transpose_b"]:
            continue
        a, w = op.inputs
        if not outside(w) or w.shape is None or len(w.shape) != 2 or None in w.shape:
            continue
        found = _row_operand(a, seq_params, only_reader, op)
        if found is None:
            continue
        s, parts, offset = found
        row_shape = seq_params[s].shape
        if row_shape is None or len(row_shape) != 2 or row_shape[1] is None \
                or seqs[s].shape is None or len(seqs[s].shape) != 3:
            continue
        width = row_shape[1]
        target, bias = op.outputs[0], None
        users = readers.get(target, [])
        if (len(users) == 1 and target not in outputs and users[0].type == "Add"):
            add = users[0]
            other = add.inputs[1] if add.inputs[0] is target else add.inputs[0]
            if (outside(other) and other.shape is not None and len(other.shape) == 1
                    and other.dtype == target.dtype and add.outputs[0].shape == target.shape):
                target, bias = add.outputs[0], other
        hoisted.append((op, target, s, parts, offset, width, bias))
    # ``a @ W.T`` with W from outside (the backward loop's ``dz @ W_h.T``): W.T is
    # made a plain array once per loop run, not once per iteration (the compiler
    # would copy it in the body: a weight-sized copy every step)
    skip_mm = {op for op, *_ in hoisted}
    transposed = [op for op in body.ops
                  if op.type == "MatMul" and op.attrs["transpose_b"] and op not in skip_mm
                  and outside(op.inputs[1]) and op.inputs[1].shape is not None
                  and len(op.inputs[1].shape) == 2]
    if not hoisted and not invariant and not transposed:
        return body, seqs, specs

    graph = get_default_graph()
    mapping = {}
    new_seqs, new_specs = [], []
    with name_scope("hoisted"):
        for op in invariant:           # once per loop run, before it
            new = graph.create_op(op.type, [mapping.get(t, t) for t in op.inputs], op.attrs,
                                  name=op.name.rsplit("/", 1)[-1])
            mapping.update(zip(op.outputs, new.outputs))
        replaced = {}
        for k, (op, target, s, parts, offset, width, bias) in enumerate(hoisted):
            w = mapping.get(op.inputs[1], op.inputs[1])
            rows = w.shape[0]
            wx = w if parts is None else F.strided_slice(
                w, [("slice", offset, offset + width, 1)], name=f"input_kernel{k}")
            product = F.matmul(seqs[s], wx, name=f"input_matmul{k}")
            if bias is not None:
                product = F.add(product, mapping.get(bias, bias), name=f"input_bias{k}")
            rest = None
            if parts is not None:
                pieces = []
                if offset:
                    pieces.append(F.strided_slice(w, [("slice", 0, offset, 1)]))
                if offset + width < rows:
                    pieces.append(F.strided_slice(w, [("slice", offset + width, rows, 1)]))
                rest = pieces[0] if len(pieces) == 1 else F.concat(pieces, 0)
            replaced[target] = (ns + k, parts, rest)
            new_seqs.append(product)
            new_specs.append((None if product.shape is None else tuple(product.shape[1:]),
                              product.dtype))
        plain = {}
        for op in transposed:
            w = mapping.get(op.inputs[1], op.inputs[1])
            if w not in plain:
                plain[w] = F.transpose(w, (1, 0), name="transposed_kernel")
            plain[op] = plain[w]
    index_spec = specs[nv + ns:]
    all_specs = list(specs[:nv + ns]) + new_specs + list(index_spec)

    skip = set()      # the products replaced, and the [h, x] concatenations they read
    for op, target, s, parts, offset, width, bias in hoisted:
        if target is not op.outputs[0]:
            skip.add(op)
        if parts is not None:
            skip.add(op.inputs[0].op)

    def rewritten(*new_params):
        local = dict(mapping)
        local.update(zip(params[:nv + ns], new_params[:nv + ns]))
        if with_index:
            local[params[nv + ns]] = new_params[-1]
        for op in body.ops:
            if op.type == "Placeholder" and op.outputs and op.outputs[0] in local:
                continue
            if op in invariant or op in skip:
                continue
            hit = next((t for t in op.outputs if t in replaced), None)
            if hit is not None:
                j, parts, rest = replaced[hit]
                row = new_params[nv + j]
                if parts is None:
                    local[hit] = row
                else:
                    ins = [local.get(t, t) for t in parts]
                    left = ins[0] if len(ins) == 1 else F.concat(ins, 1)
                    local[hit] = F.add(F.matmul(left, rest), row)
                continue
            ins = [local.get(t, t) for t in op.inputs]
            attrs = op.attrs
            if op in plain:
                ins[1], attrs = plain[op], dict(attrs, transpose_b=False)
            new = graph.create_op(op.type, ins, attrs, name=op.name.rsplit("/", 1)[-1])
            local.update(zip(op.outputs, new.outputs))
        return [local.get(t, t) for t in body.outputs]

    # A sequence the body read only through hoisted products (a dynamic_rnn's x) is no
    # longer the loop's: nothing computes it for the loop (the looked-up rows of an
    # embedding, gathered at every run only to be handed to a loop that never reads
    # them), and the gradient loop emits nothing for it. The hoisted products have
    # its length, so the loop's trip count stays the same. (Read by the ops the
    # rewritten body still makes: not the invariant ones, the skipped ones, nor the
    # products replaced by a row of a hoisted one.)
    made = [op for op in body.ops if op not in invariant and op not in skip
            and not any(t in replaced for t in op.outputs)]
    still = {id(t) for op in made for t in op.inputs} | {id(t) for t in body.outputs}
    read = _read_params(body)
    dropped = {nv + s for s in range(ns)
               if id(params[nv + s]) in read and id(params[nv + s]) not in still}
    width = len(all_specs)
    kept = [k for k in range(width) if k not in dropped]

    def narrowed(*kept_params):
        full = [None] * width                   # (a dropped parameter is never read)
        for k, p in zip(kept, kept_params):
            full[k] = p
        return rewritten(*full)

    all_specs = [all_specs[k] for k in kept]
    new_body = Function.trace(narrowed, all_specs, "body")
    seqs = [t for s, t in enumerate(seqs) if nv + s not in dropped]
    new_body.hoisted = [t for t in new_seqs]
    return new_body, list(seqs) + new_seqs, all_specs


SPLIT_CARRIED_SUMS = True
"""Carry a backward loop's state gradient as its two terms (:func:`split_carried_sums`).
Tests turn it off to compare against the plain loop."""


def split_carried_sums(body, specs, nv):
    """Rewrite a traced loop body whose new value of loop variable ``j`` is a sum
    ``u + v`` with one term a matrix product (a GRU's state gradient in the backward
    loop: ``z * dh`` through the cell, plus ``dgh @ U.T`` through the recurrent
    product) so that the loop carries the two terms apart and the next iteration adds
    them where it reads the variable. The addition then joins that iteration's fused
    cell kernel, as it does in the unrolled step, instead of being a kernel of its own
    after the GEMM at every iteration's end (a GEMM's output joins no fused region).

    Only a sum read by nothing else in the body, of two terms of the variable's own
    (fully defined) shape and dtype, is split. Returns ``(body, specs, split)``: the
    new body takes and returns, after the ``nv`` loop variables, one more variable
    per index in ``split`` (the second term; the first stays in place of the
    variable), so a loop's value of variable ``j`` is the sum of the two; its
    initial second term is zero. The same objects and ``[]`` when nothing is split
    (and when :data:`SPLIT_CARRIED_SUMS` is false).
    """
    from . import api as F
    from .control_flow import Function
    from .graph import get_default_graph

    if not SPLIT_CARRIED_SUMS:
        return body, specs, []
    own = set(body.ops)
    read = {t for op in body.ops for t in op.inputs}
    outs = body.outputs
    split = []
    for j in range(nv):
        t = outs[j]
        op = t.op
        if (op not in own or op.type != "Add" or op.control_inputs or t in read
                or outs.count(t) != 1 or t.shape is None or None in t.shape
                or tuple(t.shape) != tuple(specs[j][0] or ()) or t.dtype != specs[j][1]
                or not all(u.shape == t.shape and u.dtype == t.dtype for u in op.inputs)
                or not any(u.op in own and u.op.type == "MatMul" for u in op.inputs)):
            continue
        split.append(j)
    if not split:
        return body, specs, []
    params = body.params
    new_specs = list(specs[:nv]) + [specs[j] for j in split] + list(specs[nv:])
    graph = get_default_graph()

    def rewritten(*new_params):
        local = {}
        for j in range(nv):
            local[params[j]] = (F.add(new_params[j], new_params[nv + split.index(j)])
                                if j in split else new_params[j])
        local.update(zip(params[nv:], new_params[nv + len(split):]))
        for op in body.ops:
            if op.type == "Placeholder" and op.outputs and op.outputs[0] in local:
                continue
            new = graph.create_op(op.type, [local.get(t, t) for t in op.inputs], op.attrs,
                                  name=op.name.rsplit("/", 1)[-1])
            local.update(zip(op.outputs, new.outputs))
        terms = {j: [local.get(u, u) for u in outs[j].op.inputs] for j in split}
        return ([terms[j][0] if j in split else local.get(outs[j], outs[j])
                 for j in range(nv)] + [terms[j][1] for j in split]
                + [local.get(t, t) for t in outs[nv:]])

    new_body = Function.trace(rewritten, new_specs, "body")
    if hasattr(body, "hoisted"):
        new_body.hoisted = body.hoisted
    return new_body, new_specs, split


def _reads_outside(op, own, invariant):
    """Does ``op`` read a tensor from outside the body (directly, or through ops
    already found invariant)? Ops of constants only stay in the body."""
    inv = set(invariant)
    return any(t.op not in own or t.op in inv for t in op.inputs)


def _row_operand(a, seq_params, only_reader, matmul):
    """``(seq index, other parts, column offset)`` when ``a`` is a sequence's row
    (``other parts`` None) or ``concat([..., row, ...], axis=1)`` read only by
    ``matmul`` with the row there once and every other part's width known."""
    if a in seq_params:
        return seq_params.index(a), None, 0
    op = a.op
    if op.type != "Concat" or not only_reader(a, matmul) or a.shape is None:
        return None
    if op.attrs["axis"] not in (1, -1) or len(a.shape) != 2:
        return None
    hits = [i for i, t in enumerate(op.inputs) if t in seq_params]
    if len(hits) != 1:
        return None
    offset = 0
    for i, t in enumerate(op.inputs):
        if t.shape is None or len(t.shape) != 2 or t.shape[1] is None:
            return None
        if i == hits[0]:
            break
        offset += t.shape[1]
    row = op.inputs[hits[0]]
    parts = [t for i, t in enumerate(op.inputs) if i != hits[0]]
    if not parts:
        return None
    return seq_params.index(row), parts, offset
