"""CPU kernel generation details that the end-to-end comparisons cannot see: the
float32 vector math against float64 NumPy, and in-place outputs in generated loops."""
import numpy as np
import pytest

from kernels.cpu import codegen

# Max error in float32 ulps of the exact value, and the least share of correctly
# rounded results, of kernels/cpu/vmath.py's float32 functions (measured over a sweep
# of every 7th float32: 1.008, 2.34 and 1.51 ulp; 99.0%, 93.0% and 98.0%). NumPy's own
# float32 np.exp is up to 2.52 ulp off by the same measure.
BOUNDS = {"Exp": (1.01, 0.985), "Sigmoid": (2.4, 0.925), "Tanh": (1.55, 0.975)}

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-8, 88.7, 89.0,
                    -103.0, -104.0, -150.0, 20.0, -20.0, 9.0, -0.02, 0.02], np.float32)


def run_unary_float32(op, x):
    out = np.empty_like(x)
    spec = codegen.FusedSpec(1, [(op, [("in", 0)], {}, "float32")], [0])
    step, source = codegen.compile_fused(spec, [x, out])
    assert "vmath." in source            # the vectorizable version, not libm
    step()
    return out


@pytest.mark.parametrize("op, exact", [
    ("Exp", np.exp), ("Tanh", np.tanh), ("Sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)))])
def test_float32_vector_math_is_within_its_ulp_bound_of_float64_numpy(op, exact):
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.uniform(-30, 30, 20000).astype(np.float32),
                        rng.uniform(-0.05, 0.05, 5000).astype(np.float32),
                        rng.uniform(-110, 95, 5000).astype(np.float32)])
    got = run_unary_float32(op, x)
    with np.errstate(all="ignore"):
        want = exact(x.astype(np.float64)).astype(np.float32)   # correctly rounded
    assert np.array_equal(np.isnan(got), np.isnan(want))
    special = ~np.isfinite(want) | (want == 0)
    assert np.array_equal(got[special & ~np.isnan(want)], want[special & ~np.isnan(want)])
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0]))
    normal = ~special & (np.abs(want) >= np.finfo(np.float32).tiny)
    ulps = np.abs(got[normal].astype(np.float64) - want[normal]) / np.spacing(
        np.abs(want[normal]))
    assert ulps.max() <= BOUNDS[op][0]
    subnormal = ~special & ~normal       # exp/sigmoid far below zero
    assert np.all(np.abs(got[subnormal] - want[subnormal]) <= np.spacing(np.float32(0)))


def float32_ulps(got, want):
    """|got - want| in float32 ulps of ``want`` (float64, correctly rounded to float32)."""
    w = want.astype(np.float32)
    return np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(w)).astype(np.float64)


def test_float32_vector_math_is_inlined_and_the_loop_vectorized():
    """An LSTM cell's forward loop (sigmoids and tanh of tanh): no call per element
    (left to LLVM's inliner, tanh stayed a call and the loop scalar) and float32
    vector arithmetic in the loop."""
    import re
    from kernels.cache import _configure_llvm
    x = [np.linspace(-3, 3, 64, dtype=np.float32) + k for k in range(3)]
    outs = [np.empty(64, np.float32) for _ in range(2)]
    spec = codegen.FusedSpec(3, [("Sigmoid", [("in", 0)], {}, "float32"),
                                 ("Tanh", [("in", 1)], {}, "float32"),
                                 ("Mul", [("node", 0), ("node", 1)], {}, "float32"),
                                 ("Add", [("node", 2), ("in", 2)], {}, "float32"),
                                 ("Tanh", [("node", 3)], {}, "float32")], [3, 4])
    source, types, args = codegen.prepare_fused(spec, x + outs)
    _configure_llvm()
    namespace = {}                          # compiled here, not loaded: its IR is kept
    exec(compile(source, "<fused kernel>", "exec"), namespace)
    kernel = namespace["kernel"]
    kernel(*args)
    ir = kernel.inspect_llvm(types)
    assert not re.search(r"call [^\n]*vmath", ir)
    assert re.search(r"fmul[^\n]*<\d+ x float>", ir)
    want = np.tanh(1.0 / (1.0 + np.exp(-x[0].astype(np.float64)))
                   * np.tanh(x[1].astype(np.float64)) + x[2])
    np.testing.assert_allclose(outs[1], want, rtol=3e-7, atol=0)


@pytest.mark.parametrize("op, exact", [
    ("Exp", np.exp), ("Tanh", np.tanh), ("Sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)))])
def test_float32_vector_math_max_ulp_error_over_the_float32_range(op, exact):
    """Every float32 in the range where the result is a normal float32 (a dense sweep
    of their bit patterns): within ``bound`` ulp of the exact value (correct rounding
    is 0.5), and correctly rounded for most of them (:data:`BOUNDS`)."""
    lo, hi = {"Exp": (-87.3, 88.7), "Tanh": (-9.1, 9.1), "Sigmoid": (-87.3, 88.7)}[op]
    bound, rounded = BOUNDS[op]
    neg = np.arange(np.float32(-0.0).view(np.int32) + 1, np.float32(lo).view(np.int32), 101,
                    dtype=np.int32).view(np.float32)
    pos = np.arange(np.int32(1), np.float32(hi).view(np.int32), 101,
                    dtype=np.int32).view(np.float32)
    x = np.concatenate([neg, pos])
    x = x[np.abs(x) > 1e-30]
    got = run_unary_float32(op, x)
    with np.errstate(all="ignore"):
        want = exact(x.astype(np.float64))
    normal = np.abs(want) >= np.finfo(np.float32).tiny
    ulps = float32_ulps(got[normal], want[normal])
    assert ulps.max() <= bound
    assert np.mean(got[normal] == want[normal].astype(np.float32)) >= rounded


def test_an_output_in_place_of_its_input_is_stored_through_that_input():
    a = np.linspace(-1, 1, 12).reshape(3, 4)
    b = np.arange(4.0)
    expected = a + a + b
    spec = codegen.FusedSpec(2, [("Add", [("in", 0), ("in", 0)], {}, "float64"),
                                 ("Add", [("node", 0), ("in", 1)], {}, "float64")], [1])
    step, source = codegen.compile_fused(spec, [a, b, a])     # the output is a itself
    assert spec.inplace == {0: 0} and "def kernel(a0, a1)" in source
    step()
    np.testing.assert_array_equal(a, expected)


def test_windows_of_one_array_are_one_argument_at_their_own_offsets():
    """Two column windows of one matrix read and two written into another (an LSTM
    cell's gates): each matrix is passed once, each window keeps its offsets."""
    gates = np.linspace(-2, 2, 4 * 10).reshape(4, 10)
    grads = np.full((4, 10), np.nan)
    i, f = gates[:, 0:5], gates[:, 5:10]
    di, df = grads[:, 0:5], grads[:, 5:10]
    spec = codegen.FusedSpec(2, [("Mul", [("in", 0), ("in", 1)], {}, "float64"),
                                 ("Sub", [("in", 0), ("in", 1)], {}, "float64")], [0, 1])
    parents = {id(i): gates, id(f): gates, id(di): grads, id(df): grads}
    step, source = codegen.compile_fused(spec, [i, f, di, df], parents)
    assert "def kernel(a0, o0, a0_off0, a0_off1, a1_off0, a1_off1, o0_off0" in source
    step()
    np.testing.assert_array_equal(grads[:, 0:5], i * f)
    np.testing.assert_array_equal(grads[:, 5:10], i - f)



def _compiled_here(source, types, args):
    """The kernel of ``source`` compiled in this process (not loaded from the disk
    cache, so that its LLVM IR is kept) and run once over ``args``."""
    from kernels.cache import _configure_llvm
    _configure_llvm()
    namespace = {}
    exec(compile(source, "<fused kernel>", "exec"), namespace)
    kernel = namespace["kernel"]
    kernel(*args)
    return kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous_parent", [True, False])
def test_gate_windows_of_one_parent_written_into_another_give_numpys_result(
        dtype, contiguous_parent):
    """An LSTM cell's shape of kernel: four column windows of one matrix read, a
    state read, outputs written to their own arrays and to a window of a third. No
    written array overlaps another argument, so the kernel is compiled noalias (no
    run-time overlap check left in its loop); from a parent that is itself a strided
    view, its windows are strided arrays (no parent to index): the same results."""
    import re
    rng = np.random.default_rng(3)
    B, H = 5, 19                      # odd sizes: vector loop and remainder both run
    big = rng.standard_normal((B, 4 * H + 3)).astype(dtype)
    z = big[:, :4 * H] if not contiguous_parent else np.ascontiguousarray(big[:, :4 * H])
    c = rng.standard_normal((B, H)).astype(dtype)
    hcat = np.full((B, H + 7), np.nan, dtype)
    outs = [np.full((B, H), np.nan, dtype) for _ in range(2)]
    gates = [z[:, k * H:(k + 1) * H] for k in range(4)]
    h = hcat[:, 7:]
    spec = codegen.FusedSpec(5, [("Sigmoid", [("in", 0)], {}, z.dtype.name),
                                 ("Sigmoid", [("in", 1)], {}, z.dtype.name),
                                 ("Tanh", [("in", 3)], {}, z.dtype.name),
                                 ("Mul", [("node", 1), ("in", 4)], {}, z.dtype.name),
                                 ("Mul", [("node", 0), ("node", 2)], {}, z.dtype.name),
                                 ("Add", [("node", 3), ("node", 4)], {}, z.dtype.name),
                                 ("Sigmoid", [("in", 2)], {}, z.dtype.name),
                                 ("Tanh", [("node", 5)], {}, z.dtype.name),
                                 ("Mul", [("node", 6), ("node", 7)], {}, z.dtype.name)],
                             [5, 7, 8])
    parents = {id(g): z for g in gates} if contiguous_parent else {}
    parents[id(h)] = hcat
    source, types, args = codegen.prepare_fused(spec, gates + [c] + outs + [h], parents)
    assert "pipeline_class=NoAlias" in source
    kernel = _compiled_here(source, types, args)
    if contiguous_parent:
        assert "vector.memcheck" not in kernel.inspect_llvm(types)
    if contiguous_parent and dtype == np.float32:     # (float64 calls libm's exp)
        assert re.search(r"fmul[^\n]*<\d+ x (float|double)>", kernel.inspect_llvm(types))

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))
    i, f, o, g = (a.astype(np.float64) for a in gates)
    c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(outs[0], c2, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(outs[1], np.tanh(c2), rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(h, sigmoid(o) * np.tanh(c2), rtol=rtol, atol=1e-7)
    assert np.isnan(hcat[:, :7]).all()             # nothing written outside the window


def test_an_output_overlapping_an_input_it_is_not_keeps_llvms_overlap_checks():
    """An output that shares memory with an input without being it (shifted by five
    elements) is not compiled noalias: the loop keeps its element order, as a plain
    Python loop over the same memory gives it (a noalias kernel, vectorized 8 wide,
    would read elements before the loop wrote them: measured, it does at
    200 elements)."""
    x = np.arange(240.0)
    want = x.copy()
    for k in range(200):
        want[5 + k] = want[k] * 2.0 + 1.0
    two = np.full(200, 2.0)
    # x * 2 + 1, with the constant operands as arrays
    spec = codegen.FusedSpec(3, [("Mul", [("in", 0), ("in", 1)], {}, "float64"),
                                 ("Add", [("node", 0), ("in", 2)], {}, "float64")], [1])
    source, types, args = codegen.prepare_fused(spec, [x[:200], two, np.ones(200), x[5:205]])
    assert "NoAlias" not in source
    _compiled_here(source, types, args)
    np.testing.assert_array_equal(x, want)


def test_writes_are_disjoint_counts_only_overlaps_with_a_written_array():
    x = np.zeros((4, 6), np.float32)
    left, right, row = x[:, :3], x[:, 3:], x[1]
    # the bounds of two interleaved column windows overlap (a conservative test)
    assert not codegen.writes_are_disjoint([left, right], [False, True])
    assert codegen.writes_are_disjoint([left, right], [False, False])
    assert codegen.writes_are_disjoint([x[:2], x[2:]], [True, True])
    assert not codegen.writes_are_disjoint([row, x[1:3]], [True, False])
    assert codegen.writes_are_disjoint([x[:0], x], [True, True])     # empty: no memory
    reversed_view = x[::-1]
    assert not codegen.writes_are_disjoint([reversed_view[3:], x[0]], [False, True])
    assert codegen.overlap_pattern([x[:2], 3, x[1:], x[3]]) == {(0, 2), (2, 3)}

# --- row kernels: softmax cross-entropy, the embedding gradient --------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loss_kernels_row_max_gives_numpys_nan_and_inf_rows(dtype):
    """The row max is the kernel's (maxnum skips a NaN): a row with a NaN is still all
    NaN, a row of -inf NaN, a +inf logit NaN, as np.max's softmax gives them; for the
    sparse and the dense-label kernel."""
    from kernels.cpu import softmax_xent
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 37)).astype(dtype)
    x[0, 3] = np.nan
    x[1, :] = -np.inf
    x[2, 5] = np.inf
    x[3, :] = np.nan
    x[4, 7] = -np.inf
    labels = np.array([1, 2, 5, 0, 3, 4], np.int32)
    loss, probs = np.empty(6, dtype), np.empty_like(x)
    with np.errstate(all="ignore"):
        softmax_xent.forward_step({}, [x, labels], [loss, probs])()
        top = x.max(1, keepdims=True)
        e = np.exp(x - top)
        want_loss = np.log(e.sum(1)) + top[:, 0] - x[np.arange(6), labels]
        want_probs = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7, equal_nan=True)
    assert np.isnan(loss[[0, 1, 2, 3]]).all() and np.isfinite(loss[[4, 5]]).all()
    # the dense-label kernel takes its row max the same way
    dense = np.zeros_like(x)
    dense[np.arange(6), labels] = 0.75
    dense[np.arange(6), (labels + 1) % 37] = 0.25
    loss, probs = np.empty(6, dtype), np.empty_like(x)
    with np.errstate(all="ignore"):
        softmax_xent.dense_forward_step({}, [x, dense], [loss, probs])()
        want_loss = (dense.sum(1) * (np.log(e.sum(1)) + top[:, 0])
                     - (dense * x).sum(1))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, equal_nan=True)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7, equal_nan=True)
    assert np.isnan(loss[[0, 1, 2, 3]]).all() and np.isfinite(loss[5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_xent_kernels_against_numpy_with_extremes(dtype):
    from flowgraph.errors import InvalidArgumentError
    from kernels.cpu import softmax_xent
    rng = np.random.default_rng(0)
    x = rng.uniform(-40, 40, (2, 3, 67)).astype(dtype)     # leading dims, odd row length
    x[0, 0, 5] = -np.inf                                    # a class that cannot occur
    labels = rng.integers(0, 67, (2, 3)).astype(np.int64)
    labels[0, 0] = 4
    loss, probs = np.empty((2, 3), dtype), np.empty_like(x)
    softmax_xent.forward_step({}, [x, labels], [loss, probs])()
    x64 = x.astype(np.float64)
    top = x64.max(-1, keepdims=True)
    lse = np.log(np.exp(x64 - top).sum(-1)) + top[..., 0]
    want_p = np.exp(x64 - lse[..., None])
    want_loss = lse - np.take_along_axis(x64, labels[..., None], -1)[..., 0]
    # float32: x - max is rounded to float32 (as in the reference) before exp
    rtol = 5e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(probs, want_p, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(loss, want_loss, rtol=rtol)
    g, out = rng.uniform(-1, 1, (2, 3)).astype(dtype), np.empty_like(x)
    softmax_xent.backward_step({}, [probs, labels, g], [out])()
    onehot = labels[..., None] == np.arange(67)
    np.testing.assert_allclose(out, g[..., None] * (probs - onehot), rtol=rtol, atol=1e-30)
    dense = rng.uniform(0, 1, x.shape).astype(dtype)
    dense[0, 0, 5] = 0.0
    softmax_xent.dense_forward_step({}, [x[1:], dense[1:]], [loss[1:], probs[1:]])()
    want_dense = (dense[1:] * (lse[1:, :, None] - x64[1:])).sum(-1)
    np.testing.assert_allclose(loss[1:], want_dense, rtol=rtol * 10)
    np.testing.assert_allclose(probs[1:], want_p[1:], rtol=rtol, atol=1e-30)
    labels[1, 2] = 67
    for step in (softmax_xent.forward_step({}, [x, labels], [loss, probs]),
                 softmax_xent.backward_step({}, [probs, labels, g], [out])):
        with pytest.raises(InvalidArgumentError, match=r"expected labels in \[0, 67\), "
                                                       r"found 67"):
            step()


def test_gather_grad_kernel_adds_repeated_rows_and_checks_indices():
    from flowgraph.errors import InvalidArgumentError
    from kernels.cpu import scatter
    rng = np.random.default_rng(0)
    idx = np.array([[3, 0], [3, 3]], np.int32)
    g = rng.standard_normal((2, 2, 2, 5))
    out = np.full((4, 2, 5), np.nan)                        # stale values are zeroed
    scatter.gather_grad_step({}, [g, idx, out], [out])()
    want = np.zeros((4, 2, 5))
    np.add.at(want, idx, g)
    np.testing.assert_allclose(out, want, rtol=1e-15)
    before = out.copy()
    idx[1, 0] = -1
    with pytest.raises(InvalidArgumentError, match=r"expected indices in \[0, 4\), found -1"):
        scatter.gather_grad_step({}, [g, idx, out], [out])()
    np.testing.assert_array_equal(out, before)              # nothing written


def test_gather_grad_kernel_stages_a_strided_g():
    # the gradient of a gather along an inner axis arrives as a transpose's view: the
    # kernel copies it into a contiguous buffer (each run) instead of leaving the step
    # to the reference's np.add.at
    from kernels.cpu import scatter
    rng = np.random.default_rng(1)
    base = rng.standard_normal((3, 4, 5))
    g = base.transpose(1, 0, 2)                              # [4, 3, 5], not contiguous
    idx = np.array([2, 0, 2, 1], np.int32)
    out = np.full((3, 3, 5), np.nan)
    step = scatter.gather_grad_step({}, [g, idx, out], [out])
    assert step is not None
    for _ in range(2):                                        # a new g each run is read
        base[...] = rng.standard_normal(base.shape)
        step()
        want = np.zeros((3, 3, 5))
        np.add.at(want, idx, g)
        np.testing.assert_allclose(out, want, rtol=1e-15)


def test_every_declared_fact_is_usable():
    """The facts each primitive declares are well formed: a ufunc is a NumPy ufunc or
    names a compound, a template renders, a float-only op's shape rule refuses ints,
    a float32 template names a vmath function."""
    import flowgraph  # noqa: F401  (declares the primitives)
    from flowgraph.errors import DTypeError
    from flowgraph.primitives import _PRIMITIVES
    from kernels.cpu import ufuncs, vmath

    class Spec:
        def __init__(self, dtype):
            self.shape, self.dtype, self.name = (2,), np.dtype(dtype), "x"

    class Op:
        def __init__(self, prim, dtype):
            self.type, self.attrs, self.name, self.location = prim.name, {}, "op", None
            self.inputs = [Spec(dtype)]

    for name, prim in _PRIMITIVES.items():
        if isinstance(prim.ufunc, str):
            assert prim.ufunc in ufuncs.COMPOUNDS, name
        else:
            assert prim.ufunc is None or isinstance(prim.ufunc, np.ufunc), name
        if prim.template is not None:
            prim.template.format("a", "b", "c", exponent=2.0)
        if prim.template_f32 is not None:
            assert prim.template_f32.startswith("vmath."), name
            assert hasattr(vmath, prim.template_f32[6:].split("(")[0]), name
        if prim.float_only:
            with pytest.raises(DTypeError):
                prim.infer(Op(prim, "int32"))
        assert len(prim.cost_ns) == 2, name
        assert len(prim.ufunc_ns) == 2 and min(prim.ufunc_ns) >= 0, name
        assert prim.ufunc is not None or prim.ufunc_ns == (0.0, 0.0), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_of_a_matrix_are_a_gemv(dtype):
    """ReduceSum over axis 0 of a C-contiguous float matrix (a bias gradient) is
    ``ones @ x`` (BLAS, faster than np.sum there): its result is that GEMV's, equal to
    np.sum's within rounding, including infinities and NaN; other sums stay np.sum."""
    from kernels.cpu import build
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 33)).astype(dtype)
    x[3, 1], x[5, 2], x[7, 2], x[9, 3] = np.inf, np.inf, -np.inf, np.nan
    for axis, keepdims in (((0,), False), ((0,), True), (0, False)):
        out = np.empty((1, 33) if keepdims else (33,), dtype)
        with np.errstate(invalid="ignore"):                 # inf - inf is NaN, on purpose
            build("ReduceSum", {"axis": axis, "keepdims": keepdims}, [x], [out])()
            want = np.sum(x, axis=0, keepdims=keepdims)
            gemv = np.matmul(np.ones(64, dtype), x)
        tol = 1e-5 if dtype == np.float32 else 1e-12       # (sums of 64 values near 1)
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
        np.testing.assert_array_equal(out.reshape(-1), gemv)
    rows = np.empty(64, dtype)                       # along the rows: np.sum as before
    with np.errstate(invalid="ignore"):
        build("ReduceSum", {"axis": (1,), "keepdims": False}, [x], [rows])()
        want = np.sum(x, axis=1)
    np.testing.assert_array_equal(rows, want)
    strided = x[:, ::2]                              # not C-contiguous: np.sum
    out = np.empty(strided.shape[1], dtype)
    with np.errstate(invalid="ignore"):
        build("ReduceSum", {"axis": (0,), "keepdims": False}, [strided], [out])()
        want = np.sum(strided, axis=0)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_over_leading_axes_are_a_gemv(dtype):
    """ReduceSum over the leading axes of a C-contiguous float array (a loop's bias
    gradient over its stacked rows, ``sum(dZs, axis=(0, 1))``) is the GEMV of the
    array seen as a [rows, rest] matrix: equal to np.sum within rounding, bitwise
    that GEMV's; sums over other axes, or of a strided array, stay np.sum."""
    from kernels.cpu import build
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 7, 3, 4)).astype(dtype)
    x[1, 2, 0, 1], x[3, 3, 2, 3] = np.inf, np.nan
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for axis, keepdims in (((0, 1), False), ((1, 0), True), ((0, 1, 2), False),
                           ((-4, -3), False), (0, False)):
        lead = 1 if axis == 0 else len(axis)
        want_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
        out = np.empty(want_shape, dtype)
        with np.errstate(invalid="ignore"):
            build("ReduceSum", {"axis": axis, "keepdims": keepdims}, [x], [out])()
            want = np.sum(x, axis=axis, keepdims=keepdims)
            rows = int(np.prod(x.shape[:lead]))
            gemv = np.matmul(np.ones(rows, dtype), x.reshape(rows, -1))
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
        np.testing.assert_array_equal(out.reshape(-1), gemv)
    for axis, y in (((0, 2), x), ((1, 2), x), ((0, 1), x[:, :, ::2])):
        out = np.empty(np.sum(y, axis=axis).shape, dtype)      # np.sum, as before
        with np.errstate(invalid="ignore"):
            build("ReduceSum", {"axis": axis, "keepdims": False}, [y], [out])()
            want = np.sum(y, axis=axis)
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_a_transposing_copy_takes_the_tiled_kernel_at_power_of_two_widths(dtype):
    """Copy of a transposed matrix whose source rows are a multiple of 1 KiB long is
    the tiled Numba kernel (whole tiles and the rows and columns past them); other
    copies stay np.copyto. Either way the copy is exact."""
    from kernels import compiles_for, lookup
    from kernels.cpu import build, transpose
    rng = np.random.default_rng(5)
    width = 1024 // np.dtype(dtype).itemsize
    for rows in (64, 83):                     # 83: rows past the last whole 8x8 tile
        w = (rng.standard_normal((rows, width)) * 100).astype(dtype)
        out = np.full((width, rows), -1, dtype)
        assert transpose.transposes({}, [w.T], [out])
        assert compiles_for(lookup("Copy", "cpu"), {}, [w.T], [out])
        build("Copy", {}, [w.T], [out])()
        np.testing.assert_array_equal(out, w.T)
    w = rng.standard_normal((83, width + 3)).astype(dtype)      # other widths: NumPy
    out = np.empty((width + 3, 83), dtype)
    assert not transpose.transposes({}, [w.T], [out])
    assert not compiles_for(lookup("Copy", "cpu"), {}, [w.T], [out])
    build("Copy", {}, [w.T], [out])()
    np.testing.assert_array_equal(out, w.T)
    plain = np.empty((83, width + 3), dtype)                    # not a transpose
    assert not transpose.transposes({}, [w], [plain])
