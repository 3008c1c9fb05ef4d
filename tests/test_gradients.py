"""Every differentiable primitive's gradient against central finite differences, first
and second order, in float64; and the tanh derivative chain (HIPS autograd's example).

``GRAD_CASES`` has one case per differentiable primitive (``primitive.grad is not
None``); ``test_every_differentiable_primitive_has_a_gradient_case`` fails when a new
differentiable primitive is added without one. A case builds ``(y, xs, feed)`` with
values away from kinks (relu at 0, ties in maximum) so finite differences are exact
up to rounding.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph import api
from flowgraph.ops import all_primitives
from flowgraph.testing import strategies as fgst

F64 = np.float64
GRAD_CASES = {}


def grad_case(*primitives):
    def register(fn):
        for p in primitives:
            assert p not in GRAD_CASES, p
            GRAD_CASES[p] = fn
        return fn
    return register


def arr(data, shape=None, lo=-2.0, hi=2.0):
    return data.draw(fgst.arrays(F64, fgst.shapes(max_side=3) if shape is None else shape,
                                 lo, hi), label="x")


def ph(data, value, unknown=True):
    value = np.asarray(value)
    return fg.placeholder(value.dtype, data.draw(fgst.static_shapes(value.shape, unknown)))


def away_from_zero(data, shape=None):
    """Values with |x| >= 0.25: no kink of relu/abs/sign within reach of the FD step."""
    grid = data.draw(fgst.arrays(np.int64, fgst.shapes(max_side=3) if shape is None else shape,
                                 -4, 3), label="grid")
    return grid * 0.5 + 0.25


def one_input(data, fn, lo=-2.0, hi=2.0, values=None):
    x = arr(data, lo=lo, hi=hi) if values is None else values
    p = ph(data, x)
    return fn(p), [p], {p: x}


UNARY = {
    "Neg": (fg.negative, -2, 2), "Exp": (fg.exp, -2, 2), "Log": (fg.log, 0.3, 3),
    "Log1p": (fg.log1p, -0.7, 3), "Sin": (fg.sin, -4, 4), "Cos": (fg.cos, -4, 4),
    "Erf": (fg.erf, -2.5, 2.5),
    "Tan": (fg.tan, -1.2, 1.2), "Atan": (fg.atan, -3, 3), "Asin": (fg.asin, -0.8, 0.8),
    "Acos": (fg.acos, -0.8, 0.8), "Sinh": (fg.sinh, -2, 2), "Cosh": (fg.cosh, -2, 2),
    "Asinh": (fg.asinh, -2, 2), "Atanh": (fg.atanh, -0.7, 0.7), "Acosh": (fg.acosh, 1.3, 3),
    "Expm1": (fg.expm1, -2, 2), "Erfc": (fg.erfc, -2.5, 2.5),
    "Tanh": (fg.tanh, -2, 2), "Sigmoid": (fg.sigmoid, -3, 3), "Sqrt": (fg.sqrt, 0.3, 3),
    "Square": (fg.square, -2, 2), "Identity": (fg.identity, -2, 2),
}
for _prim, (_fn, _lo, _hi) in UNARY.items():
    grad_case(_prim)((lambda fn, lo, hi: lambda data: one_input(data, fn, lo, hi))(
        _fn, _lo, _hi))


@grad_case("Relu", "Abs", "Sign", "Floor", "Ceil", "Round")
def _kinks(data):
    x = away_from_zero(data)     # k/2 + 1/4: a quarter from every integer and half
    p = ph(data, x)
    steps = fg.floor(p) * p + fg.ceil(p * 1.5) * p + fg.round(p) * p * p
    return fg.relu(p) * 1.5 + fg.abs(p) * p + fg.sign(p) * p + steps, [p], {p: x}


@grad_case("StopGradient")
def _stop_gradient(data):
    # The stopped value is also fed, so finite differences do not see through it
    # either; were stop_gradient an identity, the symbolic gradient would gain 2*x*x.
    x = arr(data)
    p = ph(data, x)
    s = fg.stop_gradient(p * p)
    return s * p + p * 3.0, [p], {p: x, s: x * x}


@grad_case("PowScalar")
def _pow(data):
    exponent = data.draw(st.sampled_from([2, 3, 0.5, -1, 1.5, 1, 0]))
    return one_input(data, lambda p: p ** exponent, 0.3, 2.0)


@grad_case("Cast")
def _cast(data):
    # float64 -> float64 keeps FD exact; the float32 round trip is checked in test_autodiff
    return one_input(data, lambda p: fg.cast(p, fg.float64) * fg.cast(p, "float64"))


def _two_broadcast(data, lo_b=-2.0, hi_b=2.0):
    sa, sb = data.draw(fgst.broadcastable_shapes(max_side=3), label="shapes")
    a, b = arr(data, sa), arr(data, sb, lo_b, hi_b)
    pa, pb = ph(data, a), ph(data, b)
    return pa, pb, {pa: a, pb: b}


BINARY = {"Add": fg.add, "Sub": fg.subtract, "Mul": fg.multiply}
for _prim, _fn in BINARY.items():
    grad_case(_prim)((lambda fn: lambda data: (lambda pa, pb, feed: (
        fn(pa, pb) * fn(pb, pa), [pa, pb], feed))(*_two_broadcast(data)))(_fn))


@grad_case("Div")
def _div(data):
    pa, pb, feed = _two_broadcast(data, 0.5, 2.0)
    return pa / pb, [pa, pb], feed


@grad_case("Atan2")
def _atan2(data):
    pa, pb, feed = _two_broadcast(data, 0.5, 2.0)      # x away from 0: no branch cut near
    return fg.atan2(pa, pb) * pa, [pa, pb], feed


@grad_case("Maximum", "Minimum")
def _minmax(data):
    sa, sb = data.draw(fgst.broadcastable_shapes(max_side=3), label="shapes")
    a = away_from_zero(data, sa)  # a on the grid k/2 + 1/4, b on k/2: never a tie
    b = data.draw(fgst.arrays(np.int64, sb, -4, 4)) * 0.5
    pa, pb = ph(data, a), ph(data, b)
    y = fg.maximum(pa, pb) * fg.minimum(pa, pb) + fg.maximum(pa, pb)
    return y, [pa, pb], {pa: a, pb: b}


@grad_case("Where")
def _where(data):
    sc, sx, sy = data.draw(fgst.broadcastable_shapes(3, max_side=3), label="shapes")
    cond = data.draw(fgst.arrays(np.bool_, sc))
    x, y = arr(data, sx), arr(data, sy)
    pc, px, py = ph(data, cond), ph(data, x), ph(data, y)
    return fg.where(pc, px * px, py * 2.0), [px, py], {pc: cond, px: x, py: y}


@grad_case("BroadcastLike", "SumLike")
def _broadcast_like(data):
    small, big = data.draw(fgst.broadcastable_shapes(max_side=3), label="shapes")
    x = arr(data, small)
    like = arr(data, np.broadcast_shapes(small, big))
    px, pl = ph(data, x), ph(data, like)
    b = fg.broadcast_like(px, pl)
    s = api.sum_like(b * b * pl, px)
    return s * px, [px, pl], {px: x, pl: like}


@grad_case("MatMul")
def _matmul(data):
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    batch = data.draw(fgst.broadcastable_shapes(max_rank=1, max_side=2), label="batch")
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    a = arr(data, batch[0] + ((k, m) if ta else (m, k)))
    b = arr(data, batch[1] + ((n, k) if tb else (k, n)))
    pa, pb = ph(data, a), ph(data, b)
    y = fg.matmul(pa, pb, transpose_a=ta, transpose_b=tb)
    return y * y, [pa, pb], {pa: a, pb: b}


@grad_case("Transpose")
def _transpose(data):
    x = arr(data)
    perm = data.draw(st.permutations(range(x.ndim)))
    p = ph(data, x)
    return fg.transpose(p * p, perm) * fg.constant(np.transpose(x, perm)), [p], {p: x}


@grad_case("Reshape", "ReshapeLike")
def _reshape(data):
    x = arr(data)
    p = ph(data, x)
    like = fg.placeholder(F64, None)
    flat = fg.reshape(p, [-1])
    y = fg.reshape(p * p, [-1]) * np.arange(x.size) + api.reshape_like(p * p, like) * flat
    return y, [p], {p: x, like: x.reshape(-1)}


@grad_case("ReshapeTo")
def _reshape_to(data):
    x = arr(data)
    p = ph(data, x)
    shape = fg.placeholder(fg.int32, (2,))
    y = fg.reshape(p * p, shape) * np.arange(x.size).reshape(1, -1)
    return y, [p], {p: x, shape: np.array([1, x.size], np.int32)}


@grad_case("ExpandDims", "Squeeze")
def _expand(data):
    x = arr(data)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    p = ph(data, x)
    e = fg.expand_dims(p * p, axis)
    return fg.squeeze(e * 2.0, axis) * p, [p], {p: x}


@grad_case("ReduceSum")
def _reduce_sum(data):
    x = arr(data)
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)) if x.ndim
                     else st.none())
    keepdims = data.draw(st.booleans())
    p = ph(data, x)
    s = fg.reduce_sum(p * p, axis, keepdims)
    m = fg.reduce_mean(p, axis, keepdims)
    return s * s + m * s, [p], {p: x}


@grad_case("ReduceMax")
def _reduce_max(data):
    shape = data.draw(fgst.shapes(min_rank=1, max_side=3))
    n = int(np.prod(shape))
    order = np.array(data.draw(st.permutations(range(n))), dtype=F64)
    x = (order * 0.3 - 1.0).reshape(shape)  # distinct values: no ties
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    p = ph(data, x)
    mx = fg.reduce_max(p * p * p, axis, keepdims)
    return mx * mx, [p], {p: x}


@grad_case("Concat", "SplitLike", "Split")
def _concat(data):
    x = arr(data, fgst.shapes(min_rank=1, max_side=3))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    shape = list(x.shape)
    shape[axis] = data.draw(st.integers(1, 2))
    z = arr(data, tuple(shape))
    px, pz = ph(data, x), ph(data, z)
    joined = fg.concat([px * px, pz], axis)
    q = fg.placeholder(F64, x.shape)
    parts = fg.split(q * q, [1, x.shape[axis] - 1] if x.shape[axis] > 1 else [1], axis)
    back_x, back_z = api.split_like(joined * joined, [px, pz], axis)
    y = fg.reduce_sum(joined * joined) + fg.reduce_sum(parts[0] * 3.0) \
        + fg.reduce_sum(parts[-1] * parts[-1]) + fg.reduce_sum(back_x * px) \
        + fg.reduce_sum(back_z * 0.5)
    return y, [px, pz, q], {px: x, pz: z, q: x}


@grad_case("StridedSlice", "SliceGrad")
def _slice(data):
    x = arr(data, fgst.shapes(min_rank=1, max_side=4))
    axis = data.draw(st.integers(0, x.ndim - 1))
    d = x.shape[axis]
    start = data.draw(st.integers(0, d - 1))
    step = data.draw(st.sampled_from([1, 2, -1]))
    key = (slice(None),) * axis + (slice(start, None, step),)
    p = ph(data, x)
    s = (p * p)[key]
    g = fg.placeholder(F64, np.empty(x.shape)[key].shape)
    back = api.slice_grad(g * g, p, api._normalize_index(key))
    return fg.reduce_sum(s * s) + fg.reduce_sum(back * p), [p, g], \
        {p: x, g: arr(data, np.empty(x.shape)[key].shape)}


@grad_case("Gather", "GatherGrad")
def _gather(data):
    x = arr(data, fgst.shapes(min_rank=1, max_rank=2, max_side=3))
    idx = data.draw(fgst.arrays(np.int32, fgst.shapes(max_rank=2, max_side=3), 0,
                                x.shape[0] - 1))
    p = ph(data, x)
    rows = fg.gather(p * p, idx)
    g = fg.placeholder(F64, idx.shape + x.shape[1:])
    back = api.gather_grad(g * g, idx, p)
    return fg.reduce_sum(rows * rows) + fg.reduce_sum(back * p), [p, g], \
        {p: x, g: arr(data, idx.shape + x.shape[1:])}


@grad_case("ExtractPatches", "PatchesGrad")
def _patches(data):
    # the image's height and width are known (the API needs them), its batch is not
    from patches_reference import geometries, naive_patches
    from flowgraph.patches_ops import extract_patches, patches_grad
    shape, k, s, d, pads = data.draw(geometries(max_side=4, max_c=2), label="geometry")
    gshape = naive_patches(np.zeros(shape), k, s, d, pads).shape
    p = fg.placeholder(F64, (None, *shape[1:]))
    g = fg.placeholder(F64, (None, *gshape[1:]))
    cols = extract_patches(p * p, k, s, d, pads)
    back = patches_grad(g * g, shape[1:3], k, s, d, pads)
    return fg.reduce_sum(cols * cols) + fg.reduce_sum(back * p), [p, g], \
        {p: arr(data, st.just(shape)), g: arr(data, st.just(gshape))}


@grad_case("GatherGradSq")
def _gather_grad_sq(data):
    x = arr(data, fgst.shapes(min_rank=1, max_rank=2, max_side=3))
    idx = data.draw(fgst.arrays(np.int32, fgst.shapes(max_rank=2, max_side=3), 0,
                                x.shape[0] - 1))
    p = ph(data, x)
    g = fg.placeholder(F64, idx.shape + x.shape[1:])
    return api.gather_grad_sq(g * fg.tanh(g), idx, p), [g], \
        {p: x, g: arr(data, idx.shape + x.shape[1:])}


@grad_case("TopK")
def _top_k(data):
    # distinct values half a unit apart: no tie within reach of the FD step
    shape = data.draw(fgst.shapes(min_rank=1, max_rank=3, max_side=3), label="shape")
    grid = data.draw(st.permutations(range(int(np.prod(shape)))), label="grid")
    x = (np.array(grid, F64) * 0.5 - 1.0).reshape(shape)
    k = data.draw(st.integers(1, shape[-1]), label="k")
    p = ph(data, x)
    values, _ = fg.nn.top_k(p * p * p, k)      # a cube: monotone, second derivative 6x
    return values * values, [p], {p: x}


@grad_case("Print")
def _print(data):
    # the identity to input_ (data gets nothing)
    x = arr(data, fgst.shapes(max_side=3))
    p = ph(data, x)
    return fg.Print(p * p * p, [p], "grad case ") * p, [p], {p: x}


# --- TF1's "more ops" (issue 14) ---------------------------------------------------------

@grad_case("Cumsum")
def _cumsum(data):
    x = arr(data, fgst.shapes(min_rank=1, max_side=3))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    p = ph(data, x)
    # squared, so the second derivative (a cumsum of cumsums) is not zero
    return fg.square(fg.cumsum(p, axis, exclusive, reverse)), [p], {p: x}


@grad_case("Cumprod")
def _cumprod(data):
    x = away_from_zero(data, fgst.shapes(min_rank=1, max_side=3))   # TF1's grad divides by x
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    p = ph(data, x)
    return fg.cumprod(p, axis, exclusive, reverse) * p, [p], {p: x}


@grad_case("ReduceProd")
def _reduce_prod(data):
    # Values on a grid that includes 0, so slices with one zero and with two zeros
    # (where only the first / no element has a non-zero derivative) are drawn too.
    grid = data.draw(fgst.arrays(np.int64, fgst.shapes(min_rank=1, max_side=3), -2, 2),
                     label="grid")
    x = grid * 0.5 + np.where(grid == 0, 0.0, 0.25)
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    p = ph(data, x)
    return fg.reduce_prod(p, axis, keepdims) * 1.5, [p], {p: x}


@grad_case("Pow")
def _pow_tensor(data):
    sa, sb = data.draw(fgst.broadcastable_shapes(max_side=3), label="shapes")
    a, b = arr(data, sa, 0.3, 2.0), arr(data, sb, -1.5, 1.5)
    pa, pb = ph(data, a), ph(data, b)
    return fg.pow(pa, pb) * pa, [pa, pb], {pa: a, pb: b}


@grad_case("Fill")
def _fill(data):
    x = arr(data)
    p = ph(data, x)
    v = fg.placeholder(F64, ())
    return fg.fill(fg.shape(p), v * v) * p, [p, v], {p: x, v: 0.75}


@grad_case("SparseSoftmaxXent", "SparseSoftmaxXentGrad")
def _sparse_softmax_xent(data):
    x = arr(data, fgst.shapes(min_rank=1, max_rank=3, min_side=1, max_side=3))
    labels = data.draw(fgst.arrays(np.int32, x.shape[:-1], 0, x.shape[-1] - 1))
    p = ph(data, x)
    loss, probs = api.sparse_softmax_xent(p * p, labels)
    g = fg.placeholder(F64, labels.shape)
    back = api.sparse_softmax_xent_grad(probs * p, labels, g * g)
    y = fg.reduce_sum(loss * loss) + fg.reduce_sum(probs * p) + fg.reduce_sum(back * p)
    return y, [p, g], {p: x, g: arr(data, labels.shape)}


@grad_case("SoftmaxXent")
def _softmax_xent(data):
    x = arr(data, fgst.shapes(min_rank=1, max_rank=3, min_side=1, max_side=3))
    p = ph(data, x)
    labels = fg.placeholder(F64, x.shape)
    loss, probs = api.softmax_xent(p * p, labels * p)
    y = fg.reduce_sum(loss * loss) + fg.reduce_sum(probs * p)
    return y, [p, labels], {p: x, labels: arr(data, x.shape, 0.0, 1.0)}


@grad_case("Copy")
def _copy(data):
    return one_input(data, lambda p: api.copy_to(p * p, "/cpu:0") * p)


@grad_case("AllReduceMean")
def _allreduce_mean(data):
    import flowgraph.distributed as fgd
    return one_input(data, lambda p: fgd.allreduce_mean([p * p, fg.tanh(p)])[0] * p)


# --- control flow (flowgraph.control_flow) ----------------------------------------------

@grad_case("While")
def _while(data):
    xs = arr(data, (data.draw(st.integers(1, 3), label="T"), 2), -1.0, 1.0)
    w = arr(data, (2,), -1.0, 1.0)
    p, q = ph(data, xs), ph(data, w)
    states = fg.scan(lambda h, x: fg.tanh(h * q + x), p, initializer=q * 0.5)
    _, y = fg.while_loop(lambda i, v: i < 2, lambda i, v: (i + 1, fg.sigmoid(v) * q),
                         (fg.constant(0), states[-1]))
    return y + fg.reduce_sum(states, axis=0), [p, q], {p: xs, q: w}


@grad_case("If")
def _if(data):
    x = arr(data, (2,), -1.0, 1.0)
    p = ph(data, x)
    flag = data.draw(st.booleans(), label="branch")
    y = fg.cond(fg.constant(flag), lambda: fg.tanh(p) * p, lambda: fg.sigmoid(p) + p * p)
    return y, [p], {p: x}


# --- the tests -------------------------------------------------------------------------

def test_every_differentiable_primitive_has_a_gradient_case():
    differentiable = {n for n, p in all_primitives().items() if p.grad is not None}
    missing = sorted(differentiable - set(GRAD_CASES))
    assert not missing, f"differentiable primitives without a gradient test: {missing}"


def _grouped():
    groups = {}
    for prim, fn in GRAD_CASES.items():
        groups.setdefault(fn, []).append(prim)
    return [pytest.param(fn, tuple(p), id="+".join(p)) for fn, p in groups.items()]


def _on_path(y, primitives):
    """The primitives' ops are on the path from the inputs to y."""
    seen, stack = set(), [y.op]
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(t.op for t in op.inputs)
    built = {op.type for op in seen}
    assert set(primitives) <= built, f"the case's y does not use {set(primitives) - built}"


@pytest.mark.parametrize("case, primitives", _grouped())
@settings(max_examples=8)
@given(data=st.data())
def test_first_order_gradient_matches_finite_differences(case, primitives, data):
    with fg.Graph().as_default():
        y, xs, feed = case(data)
        _on_path(y, primitives)
        fg.testing.check_gradients(y, xs, feed)


@pytest.mark.parametrize("case, primitives", _grouped())
@settings(max_examples=6)
@given(data=st.data())
def test_second_order_gradient_matches_finite_differences(case, primitives, data):
    with fg.Graph().as_default():
        y, xs, feed = case(data)
        grads = fg.gradients(y, xs)
        # a weighted sum of the first derivatives, so every second-order term counts
        weights = [data.draw(fgst.arrays(F64, np.shape(feed[x]), 0.5, 1.5), label="w")
                   for x in xs]
        total = fg.add_n([fg.reduce_sum(g * w) for g, w in zip(grads, weights)])
        # Through the compiled plan (every pass, fusion, buffer reuse) on its NumPy
        # kernel chains: generating a Numba kernel for every fused region of every drawn
        # second-order graph cost most of this file's time (each about 0.7 s to compile
        # on a 2-vCPU Zen 3), and every primitive's generated kernel is already checked
        # against finite differences by the first-order test above, and on random
        # second-order graphs by tests/test_random_graphs.py.
        fg.testing.check_gradients(total, xs, feed, config=fg.SessionConfig(compile="never"))


# --- the tanh chain --------------------------------------------------------------------

TANH_DERIVATIVES_AT_1 = [0.41997434161402614, -0.6397000084492246, 0.6216266807712962,
                         0.6650910447505024]


def test_tanh_derivative_chain_to_fourth_order_and_fifth_by_finite_differences():
    x = fg.placeholder(fg.float64, (), name="x")
    chain = [fg.tanh(x)]
    for _ in range(4):
        chain.append(fg.gradients(chain[-1], [x])[0])
    with fg.Session() as sess:
        values = sess.run(chain[1:], {x: 1.0})
    for order, (got, want) in enumerate(zip(values, TANH_DERIVATIVES_AT_1), start=1):
        assert abs(float(got) - want) <= 1e-15, (order, float(got), want)
    # the 5th derivative against central differences of the 4th
    fifth = fg.gradients(chain[-1], [x])[0]
    with fg.Session() as sess:
        h = 1e-5
        lo, hi, d5 = sess.run(chain[4], {x: 1.0 - h}), sess.run(chain[4], {x: 1.0 + h}), \
            sess.run(fifth, {x: 1.0})
    t = np.tanh(1.0)
    exact = 16 - 136 * t ** 2 + 240 * t ** 4 - 120 * t ** 6  # d^5/dx^5 tanh, closed form
    assert abs(float(d5) - exact) < 1e-12
    assert abs(float(d5) - (hi - lo) / (2 * h)) < 1e-6
    fg.testing.check_gradients(chain[4], [x], {x: 1.0})


def test_tanh_chain_on_a_constant_and_in_float32():
    c = fg.constant(1.0, fg.float64)
    d1 = fg.gradients(fg.tanh(c), [c])[0]
    d2 = fg.gradients(d1, [c])[0]
    x32 = fg.placeholder(fg.float32, ())
    e1 = fg.gradients(fg.tanh(x32), [x32])[0]
    with fg.Session() as sess:
        a, b, f = sess.run([d1, d2, e1], {x32: 1.0})
    assert abs(float(a) - TANH_DERIVATIVES_AT_1[0]) <= 1e-15
    assert abs(float(b) - TANH_DERIVATIVES_AT_1[1]) <= 1e-15
    assert f.dtype == np.float32 and abs(float(f) - TANH_DERIVATIVES_AT_1[0]) < 1e-6


# --- composites ------------------------------------------------------------------------

COMPOSITES = {
    "softmax": lambda p, lab: fg.nn.softmax(p, axis=0) * fg.nn.softmax(p),
    "log_softmax": lambda p, lab: fg.nn.log_softmax(p) * p,
    "xent": lambda p, lab: fg.nn.softmax_cross_entropy_with_logits(labels=lab, logits=p),
    "sparse_xent": lambda p, lab: fg.nn.sparse_softmax_cross_entropy_with_logits(
        labels=[0, 2], logits=p),
    "reduce_mean_unknown": lambda p, lab: fg.reduce_mean(p * p, axis=0) * fg.reduce_mean(p),
    "clip": lambda p, lab: fg.clip_by_value(p, -1.0, 1.0) * p,
    "embedding": lambda p, lab: fg.nn.embedding_lookup(p, [1, 1, 0]) ** 2,
    "stack_unstack": lambda p, lab: fg.stack(fg.unstack(p * p, axis=1), axis=0) * 2.0,
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
@pytest.mark.parametrize("order", [1, 2])
@settings(max_examples=5)
@given(data=st.data())
def test_composite_gradients_match_finite_differences(name, order, data):
    x = away_from_zero(data, (2, 3)) * 0.9  # clip's kinks at +-1 are out of reach
    labels = data.draw(fgst.arrays(F64, (2, 3), 0.0, 1.0))
    with fg.Graph().as_default():
        p = fg.placeholder(F64, (None, 3))
        y = COMPOSITES[name](p, labels / labels.sum(-1, keepdims=True).clip(1e-3))
        if order == 2:
            (g,) = fg.gradients(y, [p])
            y = g * np.arange(1.0, 7.0).reshape(2, 3)
        fg.testing.check_gradients(y, [p], {p: x})


def test_the_coverage_guard_catches_a_differentiable_primitive_without_a_case(monkeypatch):
    from flowgraph import ops
    monkeypatch.setitem(ops._PRIMITIVES, "Unheard", ops.get_primitive("Tanh"))
    with pytest.raises(AssertionError, match="Unheard"):
        test_every_differentiable_primitive_has_a_gradient_case()
