"""Each compiler pass alone, on small graphs lowered to the pass IR."""
import numpy as np

import flowgraph as fg
from flowgraph import passes as P


def lowered(fetches, feeds=(), shapes=None, targets=()):
    shapes = shapes or [t.shape for t in feeds]
    return P.lower(list(fetches), list(targets), list(feeds), shapes)


def types(prog):
    return [n.type for n in prog.nodes]


def test_lower_makes_shapes_concrete():
    x = fg.placeholder(fg.float32, (None, 3))
    y = fg.reduce_sum(x * 2.0, axis=1)
    prog = lowered([y], [x], [(5, 3)])
    assert prog.fetches[0][0].shapes == [(5,)]
    assert types(prog) == ["Feed", "Const", "Mul", "ReduceSum"]


def test_prune_drops_unneeded_nodes():
    x = fg.placeholder(fg.float64, (2,))
    y = fg.tanh(x)
    prog = lowered([y], [x])
    extra = P.Node("Exp", [(prog.nodes[0], 0)], {}, None, [(2,)], ["float64"])
    prog.nodes.insert(1, extra)
    assert types(P.prune(prog)) == ["Feed", "Tanh"]


def test_fold_constants_evaluates_constant_subgraphs():
    c = fg.constant(np.array([1.0, 2.0])) * 3.0 + 1.0
    x = fg.placeholder(fg.float64, (2,))
    prog = P.fold_constants(lowered([x + c], [x]))
    prog = P.prune(prog)
    consts = [n for n in prog.nodes if n.type == "Const"]
    assert types(prog) == ["Feed", "Const", "Add"]
    np.testing.assert_array_equal(consts[0].attrs["value"], [4.0, 7.0])


def test_fold_constants_turns_shape_ops_into_constants():
    x = fg.placeholder(fg.float64, (None, 3))
    y = fg.reduce_mean(x, axis=0)          # divides by Size(x), unknown at build time
    prog = P.prune(P.fold_constants(lowered([y], [x], [(4, 3)])))
    assert "Size" not in types(prog)
    ones = P.prune(P.fold_constants(lowered([fg.ones_like(x)], [x], [(4, 3)])))
    assert types(ones) == ["Const"] and ones.nodes[0].attrs["value"].shape == (4, 3)


def test_fold_constants_leaves_errors_to_run_time():
    bad = fg.gather(fg.constant([1.0, 2.0]), fg.constant([5]))
    prog = P.fold_constants(lowered([bad]))
    assert "Gather" in types(prog)


def test_simplify_removes_identities():
    x = fg.placeholder(fg.float64, (2, 3))
    y = -(-(fg.identity(x) * 1.0 + 0.0))
    prog = P.prune(P.simplify(lowered([y], [x])))
    assert types(prog) == ["Feed"]
    assert prog.fetches[0][0].type == "Feed"


def test_simplify_keeps_broadcasting_identities():
    x = fg.placeholder(fg.float64, (3,))
    y = x * fg.ones((2, 3), fg.float64)     # broadcasts: not an identity
    prog = P.prune(P.simplify(lowered([y], [x])))
    assert "Mul" in types(prog)


def test_simplify_transpose_and_reshape_chains():
    x = fg.placeholder(fg.float64, (2, 3, 4))
    t = fg.transpose(fg.transpose(x, [1, 0, 2]), [1, 0, 2])
    r = fg.reshape(fg.reshape(fg.expand_dims(x, 0), (6, 4)), (24,))
    prog = P.prune(P.simplify(lowered([t, r], [x])))
    assert prog.fetches[0][0].type == "Feed"
    reshape = prog.fetches[1][0]
    assert reshape.type == "Reshape" and reshape.inputs[0][0].type == "Feed"
    assert types(prog).count("Reshape") == 1
    t2 = fg.transpose(fg.transpose(x, [1, 2, 0]), [1, 2, 0])
    prog = P.prune(P.simplify(lowered([t2], [x])))
    assert types(prog) == ["Feed", "Transpose"]
    assert tuple(prog.nodes[1].attrs["perm"]) == (2, 0, 1)


def test_a_reshape_to_a_shape_of_the_feeds_becomes_a_plain_reshape():
    x = fg.placeholder(fg.float64, (None, 2, 3))
    r = fg.reshape(x, [fg.shape(x)[0] * 3, -1])       # a ReshapeTo in the graph
    assert r.op.type == "ReshapeTo"
    prog = P.prune(P.simplify(P.fold_constants(lowered([r], [x], [(4, 2, 3)]))))
    assert types(prog) == ["Feed", "Reshape"]
    assert prog.nodes[1].attrs["shape"] == (12, 2)


def test_simplify_lowers_autodiff_helpers():
    x = fg.placeholder(fg.float64, (3,))
    w = fg.placeholder(fg.float64, (2, 3))
    gx, = fg.gradients(fg.reduce_sum(x * w), [x])   # SumLike over the broadcast axis
    prog = P.prune(P.simplify(lowered([gx], [x, w])))
    assert "SumLike" not in types(prog) and "ReduceSum" in types(prog)


def test_cse_merges_equal_subexpressions():
    x = fg.placeholder(fg.float64, (2,))
    a = fg.tanh(x * 2.0)
    b = fg.tanh(x * 2.0)
    prog = P.prune(P.cse(lowered([a + b], [x])))
    assert types(prog).count("Tanh") == 1 and types(prog).count("Mul") == 1
    add = prog.fetches[0][0]
    assert add.inputs[0] == add.inputs[1]


def test_cse_never_merges_state_ops():
    v = fg.Variable(np.zeros(2))
    a1 = v.assign_add(np.ones(2))
    a2 = v.assign_add(np.ones(2))
    as_tensor = [a.outputs[0] if isinstance(a, fg.Operation) else a for a in (a1, a2)]
    prog = P.cse(lowered(as_tensor))
    assert types(prog).count("AssignAdd") == 2


def test_fusion_groups_convex_elementwise_regions():
    x = fg.placeholder(fg.float64, (4, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    h = fg.tanh(x * 2.0) + fg.sigmoid(x)      # one region (siblings over x)
    y = fg.exp(fg.matmul(h, w)) * h            # matmul splits; exp*h another region
    prog = P.run_pipeline(lowered([y], [x, w]))
    groups = {n.group for n in prog.nodes if n.group is not None}
    assert len(groups) == 2
    sizes = sorted(len(g.nodes) for g in groups)
    assert sizes == [2, 4]


def test_fusion_never_makes_a_cycle():
    # a -> matmul -> b, with a and b elementwise: fusing a and b into one kernel
    # would need the matmul both before and after it.
    x = fg.placeholder(fg.float64, (3, 3))
    a = fg.tanh(x)
    m = fg.matmul(a, a)
    b = a + m
    prog = P.run_pipeline(lowered([b], [x]))
    tanh = next(n for n in prog.nodes if n.type == "Tanh")
    add = next(n for n in prog.nodes if n.type == "Add")
    assert tanh.group is not add.group


def test_fusion_separates_shapes():
    x = fg.placeholder(fg.float64, (2, 3))
    y = fg.tanh(fg.reduce_sum(fg.exp(x), axis=0))
    prog = P.run_pipeline(lowered([y], [x]))
    exp = next(n for n in prog.nodes if n.type == "Exp")
    tanh = next(n for n in prog.nodes if n.type == "Tanh")
    assert exp.group is not tanh.group


def test_fusion_keeps_different_rows_of_one_product_apart():
    """Two row pieces of one product (an unrolled RNN's batched input GEMM, one piece per
    time step), each read with one broadcast bias: the second piece's addition does
    not join the first piece's region (sharing the product's buffer or the bias
    shares no memory there), so it is not computed early and stored; it joins the
    region that reads it, after the product that depends on the first region."""
    x = fg.placeholder(fg.float64, (8, 3))
    w = fg.placeholder(fg.float64, (3, 6))
    w2 = fg.placeholder(fg.float64, (6, 6))
    bias = fg.placeholder(fg.float64, (6,))
    first, second = fg.split(fg.matmul(x, w), 2, axis=0)
    ya = fg.tanh(first * bias)
    yb = fg.tanh(second + bias + fg.matmul(ya, w2))
    prog = P.run_pipeline(lowered([yb], [x, w, w2, bias]))
    tanhs = [n for n in prog.nodes if n.type == "Tanh"]
    second_add = next(n for n in prog.nodes if n.type == "Add"
                      and n.inputs[0][0].type == "Split" and n.inputs[0][1] == 1)
    assert len(tanhs) == 2 and tanhs[0].group is not tanhs[1].group
    assert second_add.group is tanhs[1].group
    assert {n.group for n in prog.nodes if n.group is not None} == {
        t.group for t in tanhs}


def test_merge_into_readers_merges_a_region_its_reader_alone_needs():
    """A region whose values only a later region reads (fusion left it apart: it began
    before a GEMM the later one also reads) is merged into that region; one that an
    op between the two also reads is not."""
    x = fg.placeholder(fg.float64, (4, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    a = x * 2.0 + 1.0                    # region 1: read only by region 2
    m = fg.matmul(x, w)
    y = fg.tanh(m) * a                   # region 2
    prog = P.run_pipeline(lowered([y], [x, w]), P.PIPELINE[:-1])
    mul = next(n for n in prog.nodes if n.type == "Mul" and n.shapes == [(4, 3)]
               and n.inputs[1][0].type == "Const")
    tanh = next(n for n in prog.nodes if n.type == "Tanh")
    assert mul.group is not tanh.group           # fusion alone
    prog = P.merge_into_readers(prog)
    assert mul.group is tanh.group and len({n.group for n in prog.nodes
                                            if n.group is not None}) == 1
    y2 = fg.tanh(fg.matmul(a, w)) * a    # a is read by the GEMM between: kept apart
    prog = P.run_pipeline(lowered([y2], [x, w]))
    groups = {n.group for n in prog.nodes if n.group is not None}
    assert len(groups) == 2


def test_pipeline_is_one_ordered_list():
    assert P.PIPELINE[0] is P.prune and P.PIPELINE[-3] is P.fuse_elementwise
    assert P.PIPELINE[-2] is P.recompute_in_readers
    assert P.PIPELINE[-1] is P.merge_into_readers
    assert P.fold_constants in P.PIPELINE and P.cse in P.PIPELINE


def test_stack_matmul_sums_makes_one_gemm():
    a = [fg.placeholder(fg.float64, (4, 3)) for _ in range(3)]
    b = [fg.placeholder(fg.float64, (4, 5)) for _ in range(3)]
    total = fg.add_n([fg.matmul(x, y, transpose_a=True) for x, y in zip(a, b)])
    prog = P.prune(P.stack_matmul_sums(lowered([total], a + b)))
    assert types(prog).count("MatMul") == 1 and types(prog).count("Concat") == 2
    assert "Add" not in types(prog)
    # A term used elsewhere (here fetched) keeps the sum as it was.
    m = fg.matmul(a[0], b[0], transpose_a=True)
    prog = P.prune(P.stack_matmul_sums(lowered([m + fg.matmul(a[1], b[1], transpose_a=True),
                                                 m], a + b)))
    assert types(prog).count("MatMul") == 2


def test_narrow_split_matmuls_computes_only_the_used_piece():
    g = fg.placeholder(fg.float64, (2, 4))
    k = fg.placeholder(fg.float64, (5, 4))
    h_part, x_part = fg.split(fg.matmul(g, k, transpose_b=True), [3, 2], axis=1)
    prog = P.prune(P.narrow_split_matmuls(lowered([h_part * 2.0], [g, k])))
    mm = next(n for n in prog.nodes if n.type == "MatMul")
    assert mm.shapes == [(2, 3)] and "Split" not in types(prog)
    assert mm.inputs[1][0].type == "StridedSlice"
    prog = P.prune(P.narrow_split_matmuls(lowered([h_part, x_part], [g, k])))
    assert "Split" in types(prog)          # both pieces used: unchanged


def test_batch_input_matmuls_makes_one_gemm_for_all_steps():
    w = fg.placeholder(fg.float64, (3, 4))
    xs = [fg.placeholder(fg.float64, (2, 3)) for _ in range(4)]
    h = fg.constant(np.zeros((2, 4)))
    for x in xs:
        h = fg.tanh(fg.matmul(x, w) + fg.matmul(h, fg.transpose(w)[:4, :3] @ w))
    prog = P.run_pipeline(lowered([h], xs + [w]))
    input_mms = [n for n in prog.nodes if n.type == "MatMul" and n.inputs[1][0].type == "Feed"]
    # the four x_t @ w and the (CSE-merged) fixed w.T[:4, :3] @ w: 4 * 2 + 4 rows
    assert len(input_mms) == 1 and input_mms[0].shapes == [(12, 4)]
    position = {n: i for i, n in enumerate(prog.nodes)}
    assert all(position[v[0]] < position[n] for n in prog.nodes for v in n.inputs)


def test_batched_input_product_reads_the_weight_gradients_stack_of_the_inputs():
    """An unrolled RNN's inputs are stacked twice: for the batched ``X @ W`` and, in the
    order the backward pass made its terms, for the weight gradient ``X.T @ dZ``. The
    batched product takes that stack's order and reads it: one concatenation of the
    feeds (loaded into it, no copy step), and the compiled step matches the
    reference."""
    rng = np.random.default_rng(5)
    xs = [fg.placeholder(fg.float32, (2, 3)) for _ in range(4)]
    w = fg.Variable(rng.normal(size=(3, 4)).astype(np.float32))
    u = fg.Variable(rng.normal(size=(4, 4)).astype(np.float32) * 0.3)
    h = fg.zeros((2, 4), fg.float32)
    for x in xs:
        h = fg.tanh(fg.matmul(x, w) + fg.matmul(h, u))
    fetches = [h] + fg.gradients(fg.reduce_sum(h * h), [w, u])
    feed = {x: rng.normal(size=(2, 3)).astype(np.float32) for x in xs}
    prog = P.run_pipeline(lowered(fetches, xs))
    stacks = [n for n in prog.nodes if n.type == "Concat"
              and all(v[0].type == "Feed" for v in n.inputs)]
    assert len(stacks) == 1
    readers = [n for n in prog.nodes if n.type == "MatMul" and n.inputs[0] == (stacks[0], 0)]
    assert sorted(n.attrs["transpose_a"] for n in readers) == [False, True]
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        want = sess.run(fetches, feed)
    with fg.Session(config=fg.SessionConfig(optimize=True, compile="eager")) as sess:
        got = sess.run(fetches, feed)
        plan = next(iter(sess._plans.values()))
        copied = [origin for _, _, origin in plan._checked_steps if origin.type == "Concat"
                  and all(v[0].type == "Feed" for v in origin.inputs)]
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=2e-5, atol=1e-6)
    assert not copied


def test_stack_reduce_sums_makes_one_reduction_over_the_matmul_rows():
    # The bias and weight gradients of an unrolled RNN read the same stacked rows.
    a = [fg.placeholder(fg.float64, (4, 3)) for _ in range(3)]
    g = [fg.placeholder(fg.float64, (4, 5)) for _ in range(3)]
    weight = fg.add_n([fg.matmul(x, y, transpose_a=True) for x, y in zip(a, g)])
    bias = fg.add_n([fg.reduce_sum(y, axis=0) for y in g])
    # (without the pass that then folds this reduction into the matmul: test_passes_bias)
    prog = P.run_pipeline(lowered([weight, bias], a + g), [
        p for p in P.PIPELINE if p is not P.fold_column_sums_into_matmuls])
    assert types(prog).count("ReduceSum") == 1 and types(prog).count("Concat") == 2
    reduce_ = next(n for n in prog.nodes if n.type == "ReduceSum")
    matmul = next(n for n in prog.nodes if n.type == "MatMul")
    assert reduce_.inputs[0] == matmul.inputs[1]          # one concatenation, shared
    # Sums over other axes are left alone.
    other = fg.add_n([fg.reduce_sum(y, axis=1) for y in g])
    assert types(P.stack_reduce_sums(lowered([other], g))).count("ReduceSum") == 3


def test_untranspose_matmul_operands_copies_a_shared_weight_once():
    w = fg.placeholder(fg.float64, (5, 6))
    gs = [fg.placeholder(fg.float64, (64, 6)) for _ in range(3)]
    outs = [fg.matmul(g, w, transpose_b=True) for g in gs]
    prog = P.untranspose_matmul_operands(lowered(outs, gs + [w]))
    mms = [n for n in prog.nodes if n.type == "MatMul"]
    assert all(not m.attrs["transpose_b"] for m in mms)
    assert len({m.inputs[1] for m in mms}) == 1 and mms[0].inputs[1][0].type == "Copy"
    # Too few rows in all: the copy would not pay.
    few = P.untranspose_matmul_operands(lowered(outs[:1], gs[:1] + [w], [(4, 6), (5, 6)]))
    assert next(n for n in few.nodes if n.type == "MatMul").attrs["transpose_b"]


def test_untranspose_matmul_operands_leaves_a_tall_operand_transposed():
    # PTB's output projection backward: dlogits @ w.T with w 200 x 10000 here 4 x 64.
    w = fg.placeholder(fg.float64, (4, 8 * 4))
    g = fg.placeholder(fg.float64, (400, 8 * 4))
    prog = P.untranspose_matmul_operands(lowered([fg.matmul(g, w, transpose_b=True)], [g, w]))
    assert next(n for n in prog.nodes if n.type == "MatMul").attrs["transpose_b"]
    assert "Copy" not in [n.type for n in prog.nodes]


def test_uniform_constants_are_folded_to_one_broadcast_element():
    x = fg.placeholder(fg.float64, (3, 4))
    prog = P.prune(P.fold_constants(lowered([fg.ones_like(x) * 2.0], [x])))
    value = prog.nodes[0].attrs["value"]
    assert value.shape == (3, 4) and value.strides == (0, 0) and (value == 2.0).all()
    # Bitwise equality decides: -0.0 and 0.0 differ, NaNs are kept.
    mixed = fg.constant(np.array([0.0, -0.0])) * 1.0
    kept = P.prune(P.fold_constants(lowered([mixed])))
    assert np.signbit(kept.nodes[0].attrs["value"]).tolist() == [False, True]


def test_a_sum_of_a_fused_value_ends_that_region():
    x = fg.placeholder(fg.float64, (4, 3))
    y = fg.tanh(x) * 2.0
    total = fg.reduce_sum(y, axis=0)
    after = fg.exp(x) / fg.reduce_sum(fg.exp(x), axis=1, keepdims=True)   # softmax-like
    prog = P.run_pipeline(lowered([y, total, after], [x]))
    node = {n.type: n for n in prog.nodes}
    tanh = next(n for n in prog.nodes if n.type == "Tanh")
    sums = [n for n in prog.nodes if n.type == "ReduceSum"]
    assert all(s.group is not None for s in sums) and sums[0].group is tanh.group
    # What reads a sum cannot join the sum's own region: it needs the finished sum.
    div = node["Div"]
    assert div.group is not sums[1].group


def _sigmoid_layer_gradient():
    x = fg.placeholder(fg.float64, (4, 3))
    w = fg.placeholder(fg.float64, (3, 3))
    y = fg.sigmoid(x)                                   # the forward region
    loss = fg.reduce_sum(fg.square(fg.matmul(y, w)))
    (gx,) = fg.gradients(loss, [x])                     # dy * y * (1 - y), after the matmul
    return x, w, y, gx


def test_recompute_in_readers_moves_derivative_arithmetic_to_the_backward_region():
    x, w, y, gx = _sigmoid_layer_gradient()
    before = P.PIPELINE[:P.PIPELINE.index(P.fuse_elementwise)]
    fused = P.fuse_elementwise(P.run_pipeline(lowered([gx], [x, w]), before))
    sigmoid = next(n for n in fused.nodes if n.type == "Sigmoid")
    sub = next(n for n in fused.nodes if n.type == "Sub")
    assert sub.group is sigmoid.group       # fusion alone keeps it with the activation
    prog = P.recompute_in_readers(fused)
    last = next(n for n in reversed(prog.nodes) if n.group is not None)
    assert sub.group is last.group and sub.group is not sigmoid.group
    assert sigmoid.group.nodes == [sigmoid]           # it now stores only y
    order = {n: i for i, n in enumerate(prog.nodes)}
    assert all(order[a] < order[b] for a, b in zip(last.group.nodes, last.group.nodes[1:]))


def test_recompute_in_readers_keeps_fetched_values():
    x, w = fg.placeholder(fg.float64, (4, 3)), fg.placeholder(fg.float64, (3, 3))
    s = fg.sigmoid(x)
    d = 1.0 - s                                     # only the region after the matmul reads it
    out = fg.matmul(s, w) * d + s                   # ... and that region reads s anyway
    for fetches, moves in (([out], True), ([out, d], False)):
        prog = P.run_pipeline(lowered(fetches, [x, w]))
        sub = next(n for n in prog.nodes if n.type == "Sub")
        sigmoid = next(n for n in prog.nodes if n.type == "Sigmoid")
        assert (sub.group is not sigmoid.group) == moves


def test_recompute_in_readers_gives_the_reference_result():
    x, w, y, gx = _sigmoid_layer_gradient()
    rng = np.random.default_rng(0)
    feeds = {x: rng.normal(size=(4, 3)), w: rng.normal(size=(3, 3))}
    compiled = fg.Session(config=fg.SessionConfig(optimize=True)).run(gx, feeds)
    reference = fg.Session(config=fg.SessionConfig(optimize=False)).run(gx, feeds)
    np.testing.assert_allclose(compiled, reference, rtol=1e-13, atol=1e-15)
