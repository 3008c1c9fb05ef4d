"""Every primitive's forward result against NumPy, on Hypothesis-drawn shapes and values,
with broadcasting and unknown (``None``) dimensions.

Each primitive of ``flowgraph.ops.all_primitives()`` has a case in ``CASES``; a case
builds a graph that contains the primitive, runs it with the default session and
compares with NumPy. ``test_every_primitive_has_a_forward_case`` fails when a new
primitive is added without a case here.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph import api
from flowgraph.ops import all_primitives
from flowgraph.testing import strategies as fgst

CASES = {}


def case(*primitives):
    """Register ``fn(data)`` as the forward case of ``primitives``."""
    def register(fn):
        for p in primitives:
            assert p not in CASES, p
            CASES[p] = fn
        return fn
    return register


def close(got, want, dtype=None, scale=1.0):
    """Equal dtype and shape, values within a few ulps; ``scale`` is the magnitude of
    the terms a result sums (reductions may sum in another order than NumPy).
    """
    want = np.asarray(want)
    got = np.asarray(got)
    dtype = np.dtype(dtype or want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == dtype, (got.dtype, dtype)
    if dtype.kind == "f":
        rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-6, 1e-6)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, scale))
    else:
        np.testing.assert_array_equal(got, want)


def run(fetches, feed=None):
    with fg.Session() as sess:
        return sess.run(fetches, feed)


def feed_ph(data, value, unknown=True):
    """A placeholder for ``value`` with some dimensions drawn as unknown."""
    value = np.asarray(value)
    shape = data.draw(fgst.static_shapes(value.shape, unknown=unknown), label="static")
    return fg.placeholder(value.dtype, shape)


floats = st.sampled_from([np.float32, np.float64])


def float_array(data, lo=-3.0, hi=3.0, shape=None, dtype=None):
    dtype = dtype or data.draw(floats, label="dtype")
    return data.draw(fgst.arrays(dtype, fgst.shapes() if shape is None else shape, lo, hi), label="x")


# --- sources and state -----------------------------------------------------------------

@case("Const")
def _const(data):
    x = float_array(data)
    close(run(fg.constant(x)), x)
    ints = data.draw(fgst.arrays(np.int64, fgst.shapes(), -5, 5))
    close(run(fg.constant(ints)), ints)


@case("Placeholder")
def _placeholder(data):
    x = float_array(data)
    p = feed_ph(data, x)
    close(run(p, {p: x}), x)
    close(run(p * 1, {p: x}), x)


@case("Variable", "Assign", "AssignAdd", "AssignSub", "ReadVariable", "InitVariables")
def _variables(data):
    x = float_array(data)
    y = float_array(data, shape=x.shape, dtype=x.dtype)
    v = fg.Variable(x)
    assign, add, sub = v.assign(y), v.assign_add(y), v.assign_sub(y)
    with fg.control_dependencies([add]):
        after = v.read_value()
    init = fg.global_variables_initializer()
    with fg.Session() as sess:
        close(sess.run(v), x)
        close(sess.run(assign.outputs[0]), y)
        assert sess.run(assign) is None
        close(sess.run(v), y)
        close(sess.run(sub.outputs[0]), y - y)
        close(sess.run([v.value(), after])[1], y - y + y)
        assert sess.run(init) is None
        close(sess.run(v), x)
        close(sess.run(add.outputs[0]), x + y)


@case("NoOp")
def _noop(data):
    x = float_array(data)
    v = fg.Variable(x)
    grouped = fg.group(v.assign_add(x))
    with fg.Session() as sess:
        assert sess.run(fg.no_op()) is None
        assert sess.run(grouped) is None
        close(sess.run(v), x + x)


# --- elementwise unary -----------------------------------------------------------------

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {
    "Neg": (fg.negative, np.negative, -3, 3),
    "Exp": (fg.exp, np.exp, -3, 3),
    "Log": (fg.log, np.log, 0.01, 5),
    "Log1p": (fg.log1p, np.log1p, -0.99, 5),
    "Tanh": (fg.tanh, np.tanh, -4, 4),
    "Sin": (fg.sin, np.sin, -7, 7),
    "Cos": (fg.cos, np.cos, -7, 7),
    "Erf": (fg.erf, np.vectorize(math.erf, otypes=[np.float64]), -6, 6),   # NumPy has none
    # TF1's tan ... expm1 (the inverse functions over their domains)
    "Tan": (fg.tan, np.tan, -1.5, 1.5), "Atan": (fg.atan, np.arctan, -6, 6),
    "Asin": (fg.asin, np.arcsin, -1, 1), "Acos": (fg.acos, np.arccos, -1, 1),
    "Sinh": (fg.sinh, np.sinh, -5, 5), "Cosh": (fg.cosh, np.cosh, -5, 5),
    "Asinh": (fg.asinh, np.arcsinh, -6, 6), "Atanh": (fg.atanh, np.arctanh, -0.99, 0.99),
    "Acosh": (fg.acosh, np.arccosh, 1, 6), "Expm1": (fg.expm1, np.expm1, -3, 3),
    "Erfc": (fg.erfc, np.vectorize(math.erfc, otypes=[np.float64]), -6, 9),
    "Sigmoid": (fg.sigmoid, _sigmoid, -6, 6),
    "Relu": (fg.relu, lambda x: np.maximum(x, 0), -3, 3),
    "Sqrt": (fg.sqrt, np.sqrt, 0, 5),
    "Abs": (fg.abs, np.abs, -3, 3),
    "Sign": (fg.sign, np.sign, -3, 3),
    "Floor": (fg.floor, np.floor, -5, 5),
    "Ceil": (fg.ceil, np.ceil, -5, 5),
    "Round": (fg.round, np.rint, -5, 5),
    "Square": (fg.square, np.square, -3, 3),
    "Identity": (fg.identity, lambda x: x, -3, 3),
    "StopGradient": (fg.stop_gradient, lambda x: x, -3, 3),
}


def _unary_case(prim):
    fn, ref, lo, hi = UNARY[prim]

    def check(data):
        x = float_array(data, lo, hi)
        p = feed_ph(data, x)
        y = fn(p)
        assert y.dtype == x.dtype and y.op.type == prim
        with np.errstate(all="ignore"):
            want = ref(x).astype(x.dtype)
        close(run(y, {p: x}), want)
    return check


for _prim in UNARY:
    case(_prim)(_unary_case(_prim))


@case("PowScalar")
def _pow(data):
    exponent = data.draw(st.sampled_from([0, 1, 2, 3, -1, 0.5, 1.5, -2]))
    positive = exponent != int(exponent) or exponent < 0
    x = float_array(data, 0.1 if positive else -2.0, 2.0)
    p = feed_ph(data, x)
    close(run(p ** exponent, {p: x}), np.power(x, x.dtype.type(exponent)))
    ints = np.arange(-3, 4, dtype=np.int32)
    close(run(fg.constant(ints) ** 2), ints ** 2)


@case("Cast")
def _cast(data):
    x = float_array(data, -5, 5)
    p = feed_ph(data, x)
    out = run([fg.cast(p, fg.int32), fg.cast(p, fg.float64), fg.cast(p, fg.float32),
               fg.cast(p > 0, fg.float32), fg.cast(fg.cast(p, fg.int64), "float64")],
              {p: x})
    close(out[0], x.astype(np.int32))
    close(out[1], x.astype(np.float64))
    close(out[2], x.astype(np.float32))
    close(out[3], (x > 0).astype(np.float32))
    close(out[4], x.astype(np.int64).astype(np.float64))


@case("ZerosLike", "OnesLike")
def _fill(data):
    x = float_array(data)
    p = feed_ph(data, x)
    z, o, zi = run([fg.zeros_like(p), fg.ones_like(p), fg.zeros_like(p, dtype=fg.int32)],
                   {p: x})
    close(z, np.zeros_like(x))
    close(o, np.ones_like(x))
    close(zi, np.zeros(x.shape, np.int32))


# --- elementwise binary ----------------------------------------------------------------

BINARY = {
    "Add": (fg.add, np.add), "Sub": (fg.subtract, np.subtract),
    "Mul": (fg.multiply, np.multiply), "Div": (fg.divide, np.true_divide),
    "Maximum": (fg.maximum, np.maximum), "Minimum": (fg.minimum, np.minimum),
    "Less": (fg.less, np.less), "LessEqual": (fg.less_equal, np.less_equal),
    "Greater": (fg.greater, np.greater), "GreaterEqual": (fg.greater_equal, np.greater_equal),
    "Equal": (fg.equal, np.equal), "NotEqual": (fg.not_equal, np.not_equal),
}


def _binary_case(prim):
    fn, ref = BINARY[prim]

    def check(data):
        shape_a, shape_b = data.draw(fgst.broadcastable_shapes(), label="shapes")
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.int64]))
        a = data.draw(fgst.arrays(dtype, shape_a, -4, 4), label="a")
        b = data.draw(fgst.arrays(dtype, shape_b, -4, 4), label="b")
        if prim == "Div":
            b = np.where(np.abs(b) < 0.5, b.dtype.type(1), b)
        pa, pb = feed_ph(data, a), feed_ph(data, b)
        y = fn(pa, pb)
        assert y.op.type == prim
        want = ref(a, b)
        if prim == "Div" and np.dtype(dtype).kind == "i":
            want = want.astype(np.float64)  # integer true division gives float64
        close(run(y, {pa: a, pb: b}), want)
    return check


for _prim in BINARY:
    case(_prim)(_binary_case(_prim))


@case("Atan2")
def _atan2(data):
    shape_a, shape_b = data.draw(fgst.broadcastable_shapes(), label="shapes")
    y = float_array(data, -3, 3, shape=shape_a)
    x = float_array(data, -3, 3, shape=shape_b, dtype=y.dtype)
    py, px = feed_ph(data, y), feed_ph(data, x)
    out = fg.atan2(py, px)
    assert out.op.type == "Atan2" and out.dtype == y.dtype
    close(run(out, {py: y, px: x}), np.arctan2(y, x))


@case("Where")
def _where(data):
    sc, sx, sy = data.draw(fgst.broadcastable_shapes(3), label="shapes")
    cond = data.draw(fgst.arrays(np.bool_, sc))
    x = float_array(data, shape=sx)
    y = float_array(data, shape=sy, dtype=x.dtype)
    pc, px, py = feed_ph(data, cond), feed_ph(data, x), feed_ph(data, y)
    close(run(fg.where(pc, px, py), {pc: cond, px: x, py: y}), np.where(cond, x, y))


@case("BroadcastLike", "SumLike")
def _broadcast_like(data):
    small, big = data.draw(fgst.broadcastable_shapes(), label="shapes")
    target = np.broadcast_shapes(small, big)
    x = float_array(data, shape=small)
    like = np.zeros(target, x.dtype)
    px, pl = feed_ph(data, x), feed_ph(data, like)
    got = run(fg.broadcast_like(px, pl), {px: x, pl: like})
    close(got, np.broadcast_to(x, target))
    # sum_like undoes the broadcast: sums over the broadcast axes
    g = float_array(data, shape=target, dtype=x.dtype)
    pg = feed_ph(data, g)
    lead = len(target) - len(small)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(small)
                                      if d == 1 and target[lead + i] != 1)
    want = np.sum(g, axis=axes, keepdims=True).reshape(small) if axes else g
    close(run(api.sum_like(pg, px), {pg: g, px: x}), want, scale=float(np.abs(g).sum()))


# --- linear algebra and shapes ---------------------------------------------------------

@case("MatMul")
def _matmul(data):
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(fgst.broadcastable_shapes(max_rank=2), label="batch")
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    dtype = data.draw(floats)
    a = data.draw(fgst.arrays(dtype, batch[0] + ((k, m) if ta else (m, k))))
    b = data.draw(fgst.arrays(dtype, batch[1] + ((n, k) if tb else (k, n))))
    pa, pb = feed_ph(data, a), feed_ph(data, b)
    want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    got = run(fg.matmul(pa, pb, transpose_a=ta, transpose_b=tb), {pa: a, pb: b})
    want = want.astype(dtype)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-13)
    ints = np.arange(6, dtype=np.int64).reshape(2, 3)
    close(run(fg.constant(ints) @ ints.T), ints @ ints.T)


@case("Transpose")
def _transpose(data):
    x = float_array(data)
    perm = data.draw(st.permutations(range(x.ndim)))
    p = feed_ph(data, x)
    close(run(fg.transpose(p, perm), {p: x}), np.transpose(x, perm))
    if x.ndim:
        q = fg.placeholder(x.dtype, x.shape)
        close(run(fg.transpose(q), {q: x}), x.T)


def _reshape_target(data, x):
    """A new shape for ``x``: its dimensions permuted, one of them -1 at times."""
    target = list(data.draw(st.permutations(x.shape))) if x.ndim else []
    if target and data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    return target


@case("Reshape", "ReshapeLike")
def _reshape(data):
    x = float_array(data)
    target = _reshape_target(data, x)
    p = feed_ph(data, x)
    close(run(fg.reshape(p, target), {p: x}), x.reshape(target))
    like = np.zeros(x.shape[::-1], x.dtype)
    pl = feed_ph(data, like)
    close(run(api.reshape_like(p, pl), {p: x, pl: like}), x.reshape(like.shape))


@case("ReshapeTo")
def _reshape_to(data):
    x = float_array(data)
    target = _reshape_target(data, x)
    p = feed_ph(data, x)
    shape = fg.placeholder(fg.int32, (len(target),))     # known only from the data
    close(run(fg.reshape(p, shape), {p: x, shape: np.array(target, np.int32)}),
          x.reshape(target))
    if x.ndim and x.size:
        # the first entry the run-time size of a dimension: folded once shapes are fixed
        mixed = fg.reshape(p, [fg.shape(p)[0], -1])
        assert mixed.shape == (None, None)
        close(run(mixed, {p: x}), x.reshape(x.shape[0], -1))


@case("ExpandDims", "Squeeze")
def _expand_squeeze(data):
    x = float_array(data)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    p = feed_ph(data, x)
    e = fg.expand_dims(p, axis)
    close(run(e, {p: x}), np.expand_dims(x, axis))
    close(run(fg.squeeze(e, axis), {p: x}), x)
    ones = x.reshape((1,) + x.shape + (1,))
    q = fg.placeholder(x.dtype, ones.shape)
    close(run(fg.squeeze(q), {q: ones}), np.squeeze(ones))


# --- reductions ------------------------------------------------------------------------

@case("ReduceSum", "ReduceMax", "Size")
def _reductions(data):
    x = float_array(data)
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1) if x.ndim
                               else st.none(),
                               st.lists(st.integers(0, max(x.ndim - 1, 0)), unique=True,
                                        max_size=x.ndim).map(tuple)))
    keepdims = data.draw(st.booleans())
    p = feed_ph(data, x)
    got = run([fg.reduce_sum(p, axis, keepdims), fg.reduce_max(p, axis, keepdims),
               fg.reduce_mean(p, axis, keepdims)], {p: x})
    scale = float(np.abs(x).sum())
    close(got[0], np.sum(x, axis=axis, keepdims=keepdims).astype(x.dtype), scale=scale)
    close(got[1], np.max(x, axis=axis, keepdims=keepdims).astype(x.dtype))
    close(got[2], np.mean(x, axis=axis, keepdims=keepdims).astype(x.dtype), scale=scale)
    # an unknown dimension makes reduce_mean divide by a run-time Size
    x1 = x if x.ndim else x.reshape(1)
    axis1 = None if axis == () or not x.ndim else axis
    q = fg.placeholder(x.dtype, (None,) * x1.ndim)
    close(run(fg.reduce_mean(q, axis1, keepdims), {q: x1}),
          np.mean(x1, axis=axis1, keepdims=keepdims).astype(x.dtype), scale=scale)
    ints = data.draw(fgst.arrays(np.int32, x.shape, -9, 9))
    close(run(fg.reduce_sum(fg.constant(ints), axis, keepdims)),
          np.sum(ints, axis=axis, keepdims=keepdims).astype(np.int32))


# --- concat / split / slicing ----------------------------------------------------------

@case("Concat", "Split", "SplitLike")
def _concat_split(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    extra = list(x.shape)
    extra[axis] = data.draw(st.integers(1, 3))
    y = float_array(data, shape=tuple(extra), dtype=x.dtype)
    px, py = feed_ph(data, x), feed_ph(data, y)
    joined = fg.concat([px, py], axis)
    close(run(joined, {px: x, py: y}), np.concatenate([x, y], axis))
    q = fg.placeholder(x.dtype, x.shape)
    sizes = [x.shape[axis] - 1, 1] if x.shape[axis] > 1 else [1]
    parts = run(fg.split(q, sizes, axis), {q: x})
    for got, want in zip(parts, np.split(x, np.cumsum(sizes)[:-1], axis)):
        close(got, want)
    a, b = run(api.split_like(joined, [px, py], axis), {px: x, py: y})
    close(a, x)
    close(b, y)
    stacked = run(fg.stack([q, q * 2.0], axis=0), {q: x})
    close(stacked, np.stack([x, x * 2]))
    for got, want in zip(run(fg.unstack(q, axis=0), {q: x}), list(x)):
        close(got, want)


@st.composite
def _index(draw, shape):
    """A static index: ints, slices (any bounds, steps +-1, +-2), None and Ellipsis,
    for the leading dimensions, or after an Ellipsis for the trailing ones.
    """
    k = draw(st.integers(0, len(shape)))
    trailing = draw(st.booleans())
    dims = shape[len(shape) - k:] if trailing else shape[:k]
    key = []
    for d in dims:
        kind = draw(st.sampled_from(["index", "slice", "all"]))
        if kind == "index":
            key.append(draw(st.integers(-d, d - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-d - 1, d + 1)))
            stop = draw(st.one_of(st.none(), st.integers(-d - 1, d + 1)))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            key.append(slice(start, stop, step))
        else:
            key.append(slice(None))
    if trailing:
        key.insert(0, Ellipsis)
    elif draw(st.booleans()):
        key.append(Ellipsis)
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    return tuple(key)


@case("StridedSlice", "SliceGrad")
def _strided_slice(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    key = data.draw(_index(x.shape), label="key")
    p = feed_ph(data, x)
    close(run(p[key], {p: x}), x[key])
    spec = api._normalize_index(key)
    g = np.ones(x[key].shape, x.dtype)
    want = np.zeros_like(x)
    want[key] = g
    close(run(api.slice_grad(g, p, spec), {p: x}), want)


@case("Gather", "GatherGrad", "GatherGradSq")
def _gather(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    idx = data.draw(fgst.arrays(np.int32, fgst.shapes(max_rank=2), 0, x.shape[0] - 1))
    p, pi = feed_ph(data, x), feed_ph(data, idx)
    close(run(fg.gather(p, pi), {p: x, pi: idx}), x[idx])
    close(run(fg.nn.embedding_lookup(p, pi), {p: x, pi: idx}), x[idx])
    if x.ndim > 1:
        cols = np.array([x.shape[1] - 1, 0], np.int64)
        q = fg.placeholder(x.dtype, (None,) * x.ndim)  # axis=1 needs a known rank
        close(run(fg.gather(q, cols, axis=1), {q: x}), np.take(x, cols, axis=1))
    g = float_array(data, shape=idx.shape + x.shape[1:], dtype=x.dtype)
    want = np.zeros_like(x)
    np.add.at(want, idx, g)
    close(run(api.gather_grad(g, pi, p), {p: x, pi: idx}), want, scale=float(np.abs(g).sum()))
    close(run(api.gather_grad_sq(g, pi, p), {p: x, pi: idx}), np.sum(want * want),
          scale=float(np.sum(want * want)) + 1.0)


@case("ExtractPatches", "PatchesGrad")
def _patches(data):
    # conv2d's im2col and its adjoint against the naive loops of tests/test_patches.py
    from patches_reference import geometries, naive_col2im, naive_patches
    from flowgraph.patches_ops import extract_patches, patches_grad
    shape, k, s, d, pads = data.draw(geometries(), label="geometry")
    x = float_array(data, shape=shape)
    p = fg.placeholder(x.dtype, (None, *shape[1:]))
    want = naive_patches(x, k, s, d, pads)
    close(run(extract_patches(p, k, s, d, pads), {p: x}), want)
    g = float_array(data, shape=want.shape, dtype=x.dtype)
    q = fg.placeholder(x.dtype, (None, *want.shape[1:]))
    close(run(patches_grad(q, shape[1:3], k, s, d, pads), {q: g}),
          naive_col2im(g, shape[1:3], k, s, d, pads), scale=float(np.abs(g).sum()))


@case("SegmentCount", "CaseIndex", "UniqueIds")
def _segment_count_and_case_index(data):
    # fg.segment_sum's row count (sorted ids), fg.case's branch (the first true) and
    # fg.scatter_update's distinct indices
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    ids = np.sort(data.draw(fgst.arrays(np.int64, st.just((x.shape[0],)), 0, 4)))
    p, pi = feed_ph(data, x), feed_ph(data, ids)
    want = np.zeros((int(ids.max()) + 1 if ids.size else 0,) + x.shape[1:], x.dtype)
    np.add.at(want, ids, x)
    close(run(fg.segment_sum(p, pi), {p: x, pi: ids}), want, scale=float(np.abs(x).sum()))
    flags = data.draw(st.lists(st.booleans(), min_size=1, max_size=4))
    fl = fg.placeholder(fg.bool_, (len(flags),))
    picked = fg.case([(fl[j], lambda j=j: fg.constant(float(j))) for j in range(len(flags))],
                     default=lambda: fg.constant(-1.0))
    close(run(picked, {fl: np.array(flags)}),
          np.float32(flags.index(True) if True in flags else -1))
    rows = data.draw(st.permutations(range(x.shape[0])))
    table = fg.Variable(np.zeros_like(x))
    new = fg.scatter_update(table, np.array(rows, np.int64), p)
    with fg.Session() as sess:
        sess.run(table.initializer)
        close(sess.run(new, {p: x}), x[np.argsort(rows)])


@case("TopK", "MaskPositions")
def _top_k_and_mask_positions(data):
    # fg.nn.top_k (values and int32 indices; equal values in increasing position) and
    # fg.boolean_mask (the masked rows, the mask's first dimension over the tensor's)
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32]), label="dtype")
    x = data.draw(fgst.arrays(dtype, fgst.shapes(min_rank=1), -2, 2), label="x")  # ties
    k = data.draw(st.integers(0, x.shape[-1]), label="k")
    p = feed_ph(data, x)
    values, indices = fg.nn.top_k(p, k)
    order = np.argsort(-x.astype(np.float64), axis=-1, kind="stable")[..., :k]
    got_v, got_i = run([values, indices], {p: x})
    close(got_i, order.astype(np.int32))
    close(got_v, np.take_along_axis(x, order, -1))
    mask = data.draw(fgst.arrays(np.bool_, st.just(x.shape[:1])), label="mask")
    q = fg.placeholder(dtype, (None,) * x.ndim)
    m = feed_ph(data, mask, unknown=False)
    close(run(fg.boolean_mask(q, m), {q: x, m: mask}), x[mask])


@case("Print")
def _print(data):
    # fg.Print: the input unchanged, whatever data it writes to stderr
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.bool_]),
                      label="dtype")
    x = data.draw(fgst.arrays(dtype, fgst.shapes()), label="x")
    p = feed_ph(data, x)
    close(run(fg.Print(p, [p, fg.size(p)], "forward case: ", summarize=2), {p: x}), x)


@case("PyFunc")
def _py_func(data):
    # fg.py_func: NumPy's own function on the values, its dtype kept
    x = float_array(data)
    p = feed_ph(data, x)
    close(run(fg.py_func(np.cumsum, [p], p.dtype), {p: x}), np.cumsum(x))


@case("SparseRowsSGD")
def _sparse_rows_sgd(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    idx = data.draw(fgst.arrays(np.int32, fgst.shapes(max_rank=2), 0, x.shape[0] - 1))
    g = float_array(data, shape=idx.shape + x.shape[1:], dtype=x.dtype)
    v = fg.Variable(x)
    pi = feed_ph(data, idx)
    step = fg.get_default_graph().create_op(
        "SparseRowsSGD", [fg.constant(g), pi, fg.constant(np.asarray(0.5, x.dtype))],
        {"variable": v}, "sgd")
    want = np.zeros_like(x)
    np.add.at(want, idx, g)
    with fg.Session() as sess:
        close(sess.run(step.outputs[0], {pi: idx}), x - np.asarray(0.5, x.dtype) * want,
              scale=float(np.abs(g).sum()) + 1.0)
        close(sess.run(v), x - np.asarray(0.5, x.dtype) * want, scale=float(np.abs(g).sum()) + 1.0)


@case("OneHot")
def _one_hot(data):
    depth = data.draw(st.integers(1, 5))
    idx = data.draw(fgst.arrays(np.int64, fgst.shapes(max_rank=2), -1, depth))
    p = feed_ph(data, idx)
    dtype = data.draw(st.sampled_from([fg.float32, fg.float64, fg.int32]))
    want = (idx[..., None] == np.arange(depth)).astype(dtype)  # out of range: zero rows
    close(run(fg.one_hot(p, depth, dtype=dtype), {p: idx}), want)


# --- TF1's "more ops" (issue 14): arg reductions, products, powers, shapes, ranges, fills

@case("ArgMax", "ArgMin")
def _arg_reductions(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    if data.draw(st.booleans(), label="ties"):
        x = np.round(x)          # ties: the first index wins, as in NumPy and TF
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    out_type = data.draw(st.sampled_from([fg.int32, fg.int64]))
    p = feed_ph(data, x)
    got = run([fg.argmax(p, axis, output_type=out_type), fg.argmin(p, axis, out_type)],
              {p: x})
    close(got[0], np.argmax(x, axis).astype(out_type))
    close(got[1], np.argmin(x, axis).astype(out_type))
    ints = data.draw(fgst.arrays(np.int32, x.shape, -3, 3))
    close(run(fg.argmax(fg.constant(ints))), np.argmax(ints, 0).astype(np.int64))


@case("ReduceProd")
def _reduce_prod(data):
    x = float_array(data, -1.5, 1.5)
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1) if x.ndim
                               else st.none()))
    keepdims = data.draw(st.booleans())
    p = feed_ph(data, x)
    close(run(fg.reduce_prod(p, axis, keepdims), {p: x}),
          np.prod(x, axis=axis, keepdims=keepdims).astype(x.dtype))
    ints = data.draw(fgst.arrays(np.int64, x.shape, -3, 3))
    close(run(fg.reduce_prod(fg.constant(ints), axis, keepdims)),
          np.prod(ints, axis=axis, keepdims=keepdims))


def cumsum_loop(x, axis, exclusive, reverse):
    """TF1's cumsum written as the loop it is (not np.cumsum, which the reference uses);
    tests/test_tf1_trig_cumsum_norm.py checks against it too."""
    lines = np.moveaxis(x, axis, 0)
    out = np.empty_like(lines)
    acc = np.zeros(lines.shape[1:], x.dtype)
    order = range(len(lines) - 1, -1, -1) if reverse else range(len(lines))
    for k in order:
        if exclusive:
            out[k] = acc
            acc = acc + lines[k]
        else:
            acc = acc + lines[k]
            out[k] = acc
    return np.moveaxis(out, 0, axis)


@case("Cumsum")
def _cumsum(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    p = feed_ph(data, x)
    close(run(fg.cumsum(p, axis, exclusive, reverse), {p: x}),
          cumsum_loop(x, axis, exclusive, reverse))
    ints = data.draw(fgst.arrays(np.int32, x.shape, -3, 3))
    close(run(fg.cumsum(fg.constant(ints), axis, exclusive, reverse)),
          cumsum_loop(ints, axis, exclusive, reverse))


def cumprod_loop(x, axis, exclusive, reverse):
    """TF1's cumprod written as the loop it is (tests/test_cumprod.py checks against it)."""
    lines = np.moveaxis(x, axis, 0)
    out = np.empty_like(lines)
    acc = np.ones(lines.shape[1:], x.dtype)
    order = range(len(lines) - 1, -1, -1) if reverse else range(len(lines))
    for k in order:
        if exclusive:
            out[k] = acc
            acc = acc * lines[k]
        else:
            acc = acc * lines[k]
            out[k] = acc
    return np.moveaxis(out, 0, axis)


@case("Cumprod")
def _cumprod(data):
    x = float_array(data, -2, 2, shape=fgst.shapes(min_rank=1))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    p = feed_ph(data, x)
    close(run(fg.cumprod(p, axis, exclusive, reverse), {p: x}),
          cumprod_loop(x, axis, exclusive, reverse))
    ints = data.draw(fgst.arrays(np.int32, x.shape, -3, 3))
    close(run(fg.cumprod(fg.constant(ints), axis, exclusive, reverse)),
          cumprod_loop(ints, axis, exclusive, reverse))


@case("Pow")
def _pow_tensor(data):
    sa, sb = data.draw(fgst.broadcastable_shapes(), label="shapes")
    dtype = data.draw(floats)
    a = data.draw(fgst.arrays(dtype, sa, 0.1, 3.0))
    b = data.draw(fgst.arrays(dtype, sb, -2.0, 2.0))
    pa, pb = feed_ph(data, a), feed_ph(data, b)
    close(run(fg.pow(pa, pb), {pa: a, pb: b}), np.power(a, b))
    # negative bases with integer-valued exponents, and integers
    ia = data.draw(fgst.arrays(np.int32, sa, -3, 3))
    ib = data.draw(fgst.arrays(np.int32, sb, 0, 3))
    close(run(fg.pow(ia.astype(dtype), ib.astype(dtype))),
          np.power(ia.astype(dtype), ib.astype(dtype)))
    close(run(fg.pow(fg.constant(ia), fg.constant(ib))), np.power(ia, ib))


@case("Shape", "Range", "Fill")
def _shapes_as_values(data):
    x = float_array(data)
    p = feed_ph(data, x)
    out_type = data.draw(st.sampled_from([fg.int32, fg.int64]))
    close(run(fg.shape(p, out_type), {p: x}), np.array(x.shape, out_type))
    # a range whose limit is the fed size (dynamic), and one of fed scalars
    n = fg.placeholder(fg.int32, ())
    start, limit, delta = data.draw(st.tuples(st.integers(-5, 5), st.integers(-5, 5),
                                              st.sampled_from([-2, -1, 1, 3])))
    close(run(fg.range(n, limit, delta), {n: start}),
          np.arange(start, limit, delta, dtype=np.int32))
    close(run(fg.range(fg.size(p)), {p: x}), np.arange(x.size, dtype=np.int32))
    f = fg.placeholder(fg.float64, ())
    close(run(fg.range(f, 2.5, 0.5), {f: -1.0}), np.arange(-1.0, 2.5, 0.5))
    value = float(data.draw(st.floats(-3, 3)))
    close(run(fg.fill(fg.shape(p), fg.constant(value, x.dtype)), {p: x}),
          np.full(x.shape, value, x.dtype))
    close(run(fg.fill([2, 0, 1], 4)), np.full((2, 0, 1), 4, np.int32))


@case("SparseSoftmaxXent", "SparseSoftmaxXentGrad")
def _sparse_softmax_xent(data):
    x = float_array(data, lo=-20.0, hi=20.0, shape=fgst.shapes(min_rank=1, min_side=1))
    labels = data.draw(fgst.arrays(np.int32, x.shape[:-1], 0, x.shape[-1] - 1))
    g = float_array(data, shape=labels.shape, dtype=x.dtype)
    p, pl = feed_ph(data, x), feed_ph(data, labels)
    loss, probs = api.sparse_softmax_xent(p, pl)
    got = run([loss, probs, api.sparse_softmax_xent_grad(probs, pl, g)], {p: x, pl: labels})
    x64 = x.astype(np.float64)
    top = x64.max(-1, keepdims=True)
    lse = np.log(np.exp(x64 - top).sum(-1)) + top[..., 0]
    picked = np.take_along_axis(x64, labels[..., None].astype(np.intp), -1)[..., 0]
    softmax = np.exp(x64 - lse[..., None])
    onehot = labels[..., None] == np.arange(x.shape[-1])
    close(got[0], (lse - picked).astype(x.dtype), scale=float(np.abs(x64).max(initial=1.0)))
    close(got[1], softmax.astype(x.dtype))
    close(got[2], (g[..., None] * (softmax - onehot)).astype(x.dtype),
          scale=float(np.abs(g).max(initial=1.0)))


@case("SoftmaxXent")
def _softmax_xent(data):
    x = float_array(data, lo=-20.0, hi=20.0, shape=fgst.shapes(min_rank=1, min_side=1))
    labels = float_array(data, lo=0.0, hi=1.0, shape=x.shape, dtype=x.dtype)
    p, pl = feed_ph(data, x), feed_ph(data, labels)
    got = run(list(api.softmax_xent(p, pl)), {p: x, pl: labels})
    x64 = x.astype(np.float64)
    top = x64.max(-1, keepdims=True)
    log_softmax = x64 - top - np.log(np.exp(x64 - top).sum(-1, keepdims=True))
    close(got[0], -(labels * log_softmax).sum(-1).astype(x.dtype),
          scale=float(np.abs(x64).sum(-1).max(initial=1.0)))
    close(got[1], np.exp(log_softmax).astype(x.dtype))


@case("Copy")
def _copy(data):
    x = float_array(data)
    p = feed_ph(data, x)
    close(run(api.copy_to(p, "/cpu:0"), {p: x}), x)


@case("AllReduceMean")
def _allreduce_mean(data):
    # In one process (world size 1) the mean over ranks is the value itself; the
    # multi-rank result is tested under mpiexec in test_mpi.py.
    import flowgraph.distributed as fgd
    x = float_array(data)
    y = float_array(data, dtype=np.float32)  # one fused message per dtype
    p, q = feed_ph(data, x), feed_ph(data, y)
    got = run(fgd.allreduce_mean([p, q * 2]), {p: x, q: y})
    close(got[0], x)
    close(got[1], y * 2)


@case("RandomUniform", "RandomStandardNormal", "TruncatedNormal")
def _random(data):
    # The specification is flowgraph.philox (known-answer tested in test_random.py):
    # the first run of a session draws with run number 0 and key (graph seed, op seed).
    from flowgraph import philox
    shape = data.draw(fgst.shapes(max_rank=3), label="shape")
    dtype = data.draw(floats)
    seed = data.draw(st.integers(0, 2 ** 31 - 2), label="seed")
    key = (fg.random_ops.DEFAULT_GRAPH_SEED, seed)
    lo, hi = data.draw(st.sampled_from([(0.0, 1.0), (-2.0, 3.0)]))
    like = feed_ph(data, np.zeros(shape, dtype))        # shapes from a tensor, or static
    fetch = [fg.random_uniform(shape, lo, hi, dtype=dtype, seed=seed),
             fg.random_normal(shape, 1.0, 2.0, dtype=dtype, seed=seed),
             fg.truncated_normal(shape, -1.0, 0.5, dtype=dtype, seed=seed),
             fg.random_ops.random_op("RandomUniform", None, dtype, seed, None, like=like,
                                     minval=lo, maxval=hi)]
    got = run(fetch, {like: np.zeros(shape, dtype)})
    close(got[0], philox.uniform(shape, dtype, key, 0, lo, hi))
    close(got[1], philox.normal(shape, dtype, key, 0, 1.0, 2.0))
    close(got[2], philox.truncated_normal(shape, dtype, key, 0, -1.0, 0.5))
    close(got[3], got[0])
    np.testing.assert_array_equal(got[3], got[0])


@case("RandomShuffle", "Multinomial", "CandidateSampler")
def _sampling(data):
    # TF1's sampling ops: their specification is the NumPy draw of flowgraph's sampling
    # modules, from the same Philox words (tests/test_sampling.py: statistics, TF1's
    # expected counts); here each against it, run 0 and key (graph seed, op seed).
    from flowgraph import candidate_sampling_ops as cs
    from flowgraph import sampling_ops as so
    seed = data.draw(st.integers(0, 2 ** 31 - 2), label="seed")
    key = (fg.random_ops.DEFAULT_GRAPH_SEED, seed)
    x = float_array(data, shape=fgst.shapes(min_rank=1, max_rank=3))
    logits = float_array(data, shape=st.tuples(st.integers(1, 3), st.integers(1, 4)))
    n = data.draw(st.integers(1, 5), label="n")
    unique = data.draw(st.booleans(), label="unique")
    p, q = feed_ph(data, x), feed_ph(data, logits)
    true = np.array([[0], [2]], np.int64)
    fetch = [fg.random.shuffle(p, seed=seed), fg.random.categorical(q, n, seed=seed),
             list(fg.nn.log_uniform_candidate_sampler(true, 1, n, unique, 6, seed=seed))]
    got = run(fetch, {p: x, q: logits})
    bits = so.bits64(*so.words64(key, 0, x.shape[0]))
    np.testing.assert_array_equal(got[0], x[np.argsort(bits, kind="stable")]
                                  if x.shape[0] > 1 else x)
    assert got[1].shape == (logits.shape[0], n) and got[1].dtype == np.int64
    assert ((0 <= got[1]) & (got[1] < logits.shape[1])).all()
    attrs = {"sampler": "log_uniform", "range_max": 6, "num_sampled": n, "unique": unique}
    candidates, tries = cs.sample(attrs, key, 0)
    np.testing.assert_array_equal(got[2][0], candidates)
    np.testing.assert_array_equal(got[2][1], cs.expected_counts(
        cs.probabilities(attrs, true), n, tries))


# --- control flow (flowgraph.control_flow) ----------------------------------------------

@case("While")
def _while(data):
    x = float_array(data, shape=fgst.shapes(min_rank=1, max_side=3), lo=-1.0, hi=1.0)
    p = feed_ph(data, x)
    n = data.draw(st.integers(0, 4), label="n")
    i, y = fg.while_loop(lambda i, v: i < n, lambda i, v: (i + 1, fg.tanh(v) + v),
                         (fg.constant(0), p))
    want = x.copy()
    for _ in range(n):
        want = (np.tanh(want) + want).astype(x.dtype)
    got_i, got_y = run([i, y], {p: x})
    assert got_i == n
    close(got_y, want)
    sums = fg.scan(lambda a, r: a + r, p)                  # cumulative sum along axis 0
    close(run(sums, {p: x}), np.cumsum(x, axis=0).astype(x.dtype), scale=len(x))


@case("If")
def _if(data):
    x = float_array(data)
    p = feed_ph(data, x)
    flag = fg.placeholder(fg.bool_, ())
    y = fg.cond(flag, lambda: fg.tanh(p), lambda: p * 2.0)
    close(run(y, {p: x, flag: True}), np.tanh(x))
    close(run(y, {p: x, flag: False}), x * 2)


# --- the tests -------------------------------------------------------------------------

def test_every_primitive_has_a_forward_case():
    missing = sorted(set(all_primitives()) - set(CASES))
    assert not missing, f"primitives without a forward test in {__file__}: {missing}"


def _grouped_cases():
    groups = {}
    for prim, fn in CASES.items():
        groups.setdefault(fn, []).append(prim)
    return [pytest.param(fn, tuple(prims), id="+".join(prims)) for fn, prims in groups.items()]


@pytest.mark.parametrize("check, primitives", _grouped_cases())
@settings(max_examples=12)
@given(data=st.data())
def test_forward_matches_numpy(check, primitives, data):
    graph = fg.Graph()
    with graph.as_default():
        check(data)
    built = {op.type for op in graph.operations}
    assert set(primitives) <= built, f"the case built no {set(primitives) - built} op"


# --- composites (compositions of primitives: README "Concepts") -------------------------

def _softmax_np(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@settings(max_examples=15)
@given(x=fgst.arrays(np.float64, fgst.shapes(min_rank=1), -30, 30), data=st.data())
def test_softmax_family_matches_numpy(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    labels = _softmax_np(data.draw(fgst.arrays(np.float64, x.shape)), -1)
    with fg.Graph().as_default():
        p = feed_ph(data, x)
        got = run([fg.nn.softmax(p, axis), fg.nn.log_softmax(p, axis),
                   fg.nn.softmax_cross_entropy_with_logits(labels=labels, logits=p)], {p: x})
    sm = _softmax_np(x, axis)
    np.testing.assert_allclose(got[0], sm, rtol=1e-12, atol=1e-300)
    shifted = x - x.max(axis=axis, keepdims=True)
    log_sm = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    np.testing.assert_allclose(got[1], log_sm, rtol=1e-12, atol=1e-12)
    last = x - x.max(-1, keepdims=True)
    xent = -(labels * (last - np.log(np.exp(last).sum(-1, keepdims=True)))).sum(-1)
    np.testing.assert_allclose(got[2], xent, rtol=1e-12, atol=1e-12)


@settings(max_examples=15)
@given(x=fgst.arrays(np.float32, fgst.shapes(min_rank=2, max_rank=2), -5, 5), data=st.data())
def test_sparse_cross_entropy_matches_numpy(x, data):
    labels = data.draw(fgst.arrays(np.int32, (x.shape[0],), 0, x.shape[1] - 1))
    with fg.Graph().as_default():
        p = fg.placeholder(fg.float32, (None, x.shape[1]))
        loss = fg.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=p)
        got = run(loss, {p: x})
    x64 = x.astype(np.float64)
    want = -np.log(_softmax_np(x64))[np.arange(len(labels)), labels]
    assert got.dtype == np.float32 and got.shape == (x.shape[0],)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_other_composites_match_numpy():
    x = np.array([[-2.0, 0.5, 3.0], [1.0, -0.25, 0.0]])
    p = fg.placeholder(fg.float64, (None, 3))
    got = run({"clip": fg.clip_by_value(p, -1.0, 1.0), "add_n": fg.add_n([p, p, p]),
               "stack": fg.stack([p, p], axis=1), "unstack": fg.unstack(p, axis=1),
               "onehot": fg.one_hot([0, 2], 3, on_value=5.0, off_value=-1.0),
               "zeros": fg.zeros((2,), fg.int32), "ones": fg.ones((1, 2)),
               "sq": fg.squeeze(fg.expand_dims(p, 0), 0),
               "mean": fg.reduce_mean(p, axis=[0, 1], keepdims=True)}, {p: x})
    np.testing.assert_array_equal(got["clip"], np.clip(x, -1, 1))
    np.testing.assert_array_equal(got["add_n"], 3 * x)
    np.testing.assert_array_equal(got["stack"], np.stack([x, x], axis=1))
    for part, want in zip(got["unstack"], x.T):
        np.testing.assert_array_equal(part, want)
    np.testing.assert_array_equal(got["onehot"], [[5, -1, -1], [-1, -1, 5]])
    assert got["zeros"].dtype == np.int32 and got["ones"].dtype == np.float32
    np.testing.assert_array_equal(got["sq"], x)
    np.testing.assert_allclose(got["mean"], x.mean(keepdims=True))


def test_the_coverage_guard_catches_a_primitive_without_a_case(monkeypatch):
    from flowgraph import ops
    monkeypatch.setitem(ops._PRIMITIVES, "Unheard", ops.get_primitive("Tanh"))
    with pytest.raises(AssertionError, match="Unheard"):
        test_every_primitive_has_a_forward_case()
