"""Every primitive on /gpu:0 against /cpu:0: forward values and gradients.

Runs on the numba.cuda simulator when no GPU is present (tests/conftest.py sets
NUMBA_ENABLE_CUDASIM=1), unchanged on a real GPU. Tensors are tiny: the simulator
costs about a millisecond per simulated thread.
"""
import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda (extra 'gpu') is not installed")

import flowgraph as fg
from flowgraph import ops as primitives
from flowgraph.testing import compare_devices

pytestmark = pytest.mark.skipif(
    "/gpu:0" not in fg.list_devices(),
    reason="numba.cuda sees no GPU and the simulator is off (a driver without a device?)")

DEVICES = ("/cpu:0", "/gpu:0")
rng = np.random.default_rng(0)


def _arr(shape, dtype=np.float32, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(dtype)


def _with_grads(y, xs, feed, extra=()):
    """Fetch y and d(sum y)/dxs."""
    grads = fg.gradients(fg.reduce_sum(y * y), xs)
    return [y, *grads, *extra], feed


def check(build, **tol):
    results = compare_devices(build, devices=DEVICES, **tol)
    assert set(results) == set(DEVICES)
    return results


# --- elementwise ------------------------------------------------------------------------

UNARY = {
    "neg": (fg.negative, -1, 1), "exp": (fg.exp, -1, 1), "log": (fg.log, 0.5, 2),
    "log1p": (fg.log1p, -0.5, 2), "sin": (fg.sin, -3, 3), "cos": (fg.cos, -3, 3),
    "erf": (fg.erf, -3, 3),
    "tan": (fg.tan, -1, 1), "atan": (fg.atan, -3, 3), "asin": (fg.asin, -0.8, 0.8),
    "acos": (fg.acos, -0.8, 0.8), "sinh": (fg.sinh, -2, 2), "cosh": (fg.cosh, -2, 2),
    "asinh": (fg.asinh, -2, 2), "atanh": (fg.atanh, -0.7, 0.7), "acosh": (fg.acosh, 1.3, 3),
    "expm1": (fg.expm1, -2, 2), "erfc": (fg.erfc, -3, 3),
    "tanh": (fg.tanh, -2, 2), "sigmoid": (fg.sigmoid, -3, 3), "relu": (fg.relu, -1, 1),
    "sqrt": (fg.sqrt, 0.5, 2), "abs": (fg.abs, -1, 1), "square": (fg.square, -1, 1),
    "identity": (fg.identity, -1, 1), "pow3": (lambda x: x ** 3, -1, 1),
    "pow_half": (lambda x: x ** 0.5, 0.5, 2),
    "stop_gradient": (lambda x: fg.stop_gradient(x) * x, -1, 1),
    "sign": (lambda x: fg.sign(x) * x, -1, 1),
    "floor_ceil_round": (lambda x: fg.floor(x * 3.0) * x + fg.ceil(x * 3.0) * x
                         + fg.round(x * 3.0) * x, -1, 1),
    "clip": (lambda x: fg.clip_by_value(x, -0.5, 0.5), -1, 1),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_forward_and_gradient(name):
    fn, low, high = UNARY[name]
    value = _arr((2, 3), low=low, high=high)

    def build():
        x = fg.placeholder(fg.float32, (2, 3), name="x")
        return _with_grads(fn(x), [x], {x: value})
    check(build)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_floor_ceil_round_at_halves_signed_zeros_and_non_finite_values(dtype):
    value = np.array([[0.5, -0.5, 1.5, 2.5, -2.5, -0.0],
                      [-0.3, 3.7, np.inf, -np.inf, np.nan, 2.0 ** 60]], dtype)

    def build():
        x = fg.placeholder(dtype, (2, 6))
        return [fg.floor(x), fg.ceil(x), fg.round(x)], {x: value}
    results = check(build, rtol=0, atol=0)
    for got, ref in zip(results["/gpu:0"], (np.floor, np.ceil, np.rint)):
        np.testing.assert_array_equal(got, ref(value))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref(value)))


BINARY = {"add": fg.add, "sub": fg.subtract, "mul": fg.multiply, "div": fg.divide,
          "maximum": fg.maximum, "minimum": fg.minimum, "atan2": fg.atan2}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_broadcasting_forward_and_gradient(name, dtype):
    a, b = _arr((2, 3), dtype, 0.5, 1.5), _arr((3,), dtype, 0.5, 1.5)

    def build():
        x = fg.placeholder(dtype, (2, 3))
        y = fg.placeholder(dtype, (3,))
        s = fg.constant(np.asarray(0.25, dtype))  # a scalar input
        return _with_grads(BINARY[name](x, y) + s, [x, y], {x: a, y: b})
    check(build)


def test_comparisons_where_cast_and_fills():
    a, b = _arr((3, 2)), _arr((3, 2))
    b[0, 0] = a[0, 0]  # an equal pair

    def build():
        x = fg.placeholder(fg.float32, (3, 2))
        y = fg.placeholder(fg.float32, (3, 2))
        cmps = [x < y, x <= y, x > y, x >= y, fg.equal(x, y), fg.not_equal(x, y)]
        w = fg.where(x > y, x * 2.0, y)
        gx, gy = fg.gradients(fg.reduce_sum(w), [x, y])
        casts = [fg.cast(x * 10.0, fg.int32), fg.cast(fg.cast(x * 10.0, fg.int64), fg.float64),
                 fg.cast(x > 0.0, fg.float32), fg.cast(x, fg.float64)]
        fills = [fg.zeros_like(x), fg.ones_like(x), fg.ones_like(x, dtype=fg.int32)]
        return cmps + [w, gx, gy] + casts + fills, {x: a, y: b}
    results = check(build)
    gpu = results["/gpu:0"]
    assert gpu[0].dtype == np.bool_ and gpu[9].dtype == np.int32


def test_integer_arithmetic_and_division():
    def build():
        i = fg.constant(np.array([7, -3, 4], np.int32))
        j = fg.constant(np.array([2, 2, -3], np.int32))
        return [i + j, i * j, i - j, i / j, fg.maximum(i, j), -i, fg.abs(i)], {}
    results = check(build)
    assert results["/gpu:0"][3].dtype == np.float64


def test_fused_chain_with_intermediate_used_later():
    # tanh(x) is inside a fused run and also needed by a later matmul: it must be stored.
    a = _arr((2, 2))

    def build():
        x = fg.placeholder(fg.float32, (2, 2))
        t = fg.tanh(x * 2.0 + 1.0)
        u = fg.sigmoid(t) * t
        return _with_grads(fg.matmul(u, t), [x], {x: a})
    check(build)


# --- matmul -----------------------------------------------------------------------------

@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_transpose_flags(ta, tb, dtype):
    # 5x6 @ 6x7: not multiples of the tile, so the edge guards are exercised.
    a = _arr((6, 5) if ta else (5, 6), dtype)
    b = _arr((7, 6) if tb else (6, 7), dtype)

    def build():
        x = fg.constant(a)
        y = fg.constant(b)
        out = fg.matmul(x, y, transpose_a=ta, transpose_b=tb)
        return [out, *fg.gradients(fg.reduce_sum(out * out), [x, y])], {}
    results = check(build)
    ref = (a.T if ta else a) @ (b.T if tb else b)
    np.testing.assert_allclose(results["/gpu:0"][0], ref, rtol=1e-5, atol=1e-6)


def test_batched_matmul_broadcast():
    a, b = _arr((2, 1, 2, 3)), _arr((3, 3, 2))

    def build():
        x = fg.constant(a)
        y = fg.constant(b)
        out = x @ y
        return [out, *fg.gradients(fg.reduce_sum(out), [x, y])], {}
    check(build)


def test_integer_matmul():
    def build():
        return fg.matmul(fg.constant(np.arange(6, dtype=np.int32).reshape(2, 3)),
                         fg.constant(np.arange(6, dtype=np.int32).reshape(3, 2))), {}
    check(build)


# --- reductions ---------------------------------------------------------------------------

@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), ((0, 2), False),
                                           (-1, False), ((), False)])
def test_reductions(axis, keepdims):
    value = _arr((2, 3, 4))
    value[1, 2, 3] = value[1, 2, 2]  # a tie for reduce_max's gradient

    def build():
        x = fg.placeholder(fg.float32, (2, 3, 4))
        s = fg.reduce_sum(x, axis, keepdims=keepdims)
        m = fg.reduce_mean(x * x, axis, keepdims=keepdims)
        mx = fg.reduce_max(x, axis, keepdims=keepdims)
        grads = fg.gradients([fg.reduce_sum(s * s), m, mx], [x])
        return [s, m, mx, *grads], {x: value}
    check(build)


def test_reduce_mean_over_unknown_dimension_and_integer_sum():
    value = _arr((3, 2))

    def build():
        x = fg.placeholder(fg.float32, (None, 2))
        return [fg.reduce_mean(x, 0), fg.reduce_sum(fg.constant(np.arange(6).reshape(2, 3)), 1),
                fg.reduce_max(fg.constant(np.array([[1, 5], [7, 2]], np.int32)), 1)], {x: value}
    check(build)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_cumsum_every_axis_exclusive_and_reverse(dtype):
    # The GPU kernel adds each line in the reference's order: equal bit for bit.
    value = (_arr((2, 3, 2), np.float64) * 10).astype(dtype)
    combos = [(axis, exclusive, reverse) for axis in (0, 1, -1)
              for exclusive in (False, True) for reverse in (False, True)]

    def build():
        x = fg.placeholder(dtype, (2, 3, 2))
        return [fg.cumsum(x, a, e, r) for a, e, r in combos], {x: value}
    results = check(build, rtol=0, atol=0)
    for got, (axis, exclusive, reverse) in zip(results["/gpu:0"], combos):
        want = np.cumsum(np.flip(value, axis) if reverse else value, axis, dtype=dtype)
        if exclusive:          # shifted by one along the axis, a zero first
            n = value.shape[axis]
            want = np.concatenate([np.zeros_like(np.take(want, [0], axis)),
                                   np.take(want, range(n - 1), axis)], axis)
        np.testing.assert_array_equal(got, np.flip(want, axis) if reverse else want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_cumprod_every_axis_exclusive_and_reverse(dtype):
    # Cumsum's kernel multiplying, in the reference's order: equal bit for bit.
    value = (_arr((2, 3, 2), np.float64, 0.5, 2) * (2 if dtype == np.int32 else 1)).astype(dtype)
    combos = [(axis, exclusive, reverse) for axis in (0, 1, -1)
              for exclusive in (False, True) for reverse in (False, True)]

    def build():
        x = fg.placeholder(dtype, (2, 3, 2))
        return [fg.cumprod(x, a, e, r) for a, e, r in combos], {x: value}
    results = check(build, rtol=0, atol=0)
    for got, (axis, exclusive, reverse) in zip(results["/gpu:0"], combos):
        want = np.cumprod(np.flip(value, axis) if reverse else value, axis, dtype=dtype)
        if exclusive:          # shifted by one along the axis, a one first
            n = value.shape[axis]
            want = np.concatenate([np.ones_like(np.take(want, [0], axis)),
                                   np.take(want, range(n - 1), axis)], axis)
        np.testing.assert_array_equal(got, np.flip(want, axis) if reverse else want)


def test_cumprod_gradients_on_gpu():
    value = _arr((3, 4), low=0.5, high=1.5)

    def build():
        x = fg.placeholder(fg.float32, (3, 4), name="x")
        y = fg.cumprod(x, 1, exclusive=True) * fg.cumprod(x * 0.5, 0, reverse=True)
        return _with_grads(y, [x], {x: value})
    check(build)


def test_cumsum_gradients_on_gpu():
    value = _arr((3, 4))

    def build():
        x = fg.placeholder(fg.float32, (3, 4), name="x")
        y = fg.cumsum(fg.sin(x), 1, exclusive=True) * fg.cumsum(fg.cos(x), 0, reverse=True)
        return _with_grads(y, [x], {x: value})
    check(build)


# --- shape ops ----------------------------------------------------------------------------

def test_reshape_transpose_expand_squeeze():
    value = _arr((2, 3, 4))

    def build():
        x = fg.placeholder(fg.float32, (2, 3, 4))
        r = fg.reshape(x, (4, -1))
        t = fg.transpose(x, (2, 0, 1))
        e = fg.expand_dims(x, 1)
        s = fg.squeeze(fg.reshape(x, (1, 2, 12, 1)))
        y = fg.reduce_sum(r * r) + fg.reduce_sum(t * fg.transpose(t)[0, 0, 0]) + \
            fg.reduce_sum(e * 3.0) + fg.reduce_sum(fg.tanh(s))
        return [r, t, e, s, *fg.gradients(y, [x])], {x: value}
    check(build)


def test_concat_split_stack_unstack():
    a, b = _arr((2, 3)), _arr((2, 2))

    def build():
        x = fg.placeholder(fg.float32, (2, 3))
        y = fg.placeholder(fg.float32, (2, 2))
        c = fg.concat([x, y], 1)
        p, q = fg.split(c, [1, 4], axis=1)
        st = fg.stack([x, x * 2.0])
        u = fg.unstack(st, axis=1)
        loss = fg.reduce_sum(p * q[:, :1]) + fg.reduce_sum(st * st) + fg.reduce_sum(u[1] ** 3)
        return [c, p, q, st, *u, *fg.gradients(loss, [x, y])], {x: a, y: b}
    check(build)


def test_strided_slices_and_their_gradients():
    value = _arr((3, 4, 5))

    def build():
        x = fg.placeholder(fg.float32, (3, 4, 5))
        pieces = [x[1], x[:, 1:3], x[::-1, :, ::2], x[..., -1], x[:, None, 2, 1:4],
                  x[2:0:-1, -2]]
        loss = fg.add_n([fg.reduce_sum(p * p) for p in pieces])
        return [*pieces, *fg.gradients(loss, [x])], {x: value}
    check(build)


# --- index ops ----------------------------------------------------------------------------

def test_gather_embedding_lookup_and_gradient_with_repeats():
    table = _arr((5, 3))
    ids = np.array([[0, 4], [4, 2]], np.int32)

    def build():
        params = fg.placeholder(fg.float32, (5, 3))
        i = fg.placeholder(fg.int32, (2, 2))
        g = fg.gather(params, i)
        e = fg.nn.embedding_lookup(params, fg.constant(np.array([1, 1, 3], np.int64)))
        loss = fg.reduce_sum(g * g) + fg.reduce_sum(fg.sigmoid(e))
        return [g, e, *fg.gradients(loss, [params])], {params: table, i: ids}
    check(build)


def test_gather_grad_sq_on_gpu_equals_the_cpu_rows_only_kernel():
    ids = np.array([[0, 4], [4, 2]], np.int32)          # a repeated row: summed first
    table, rows = _arr((5, 3)), _arr((2, 2, 3))

    def build():
        like = fg.placeholder(fg.float32, (5, 3))
        g = fg.placeholder(fg.float32, (2, 2, 3))
        i = fg.placeholder(fg.int32, (2, 2))
        sq = fg.api.gather_grad_sq(g * 2.0, i, like)
        return [sq, *fg.gradients(sq, [g])], {like: table, g: rows, i: ids}
    check(build)


def test_one_hot_and_losses():
    logits = _arr((3, 4), low=-2, high=2)
    labels = np.array([0, 3, 5], np.int32)  # 5 is out of range: an all-zero one_hot row

    def build():
        x = fg.placeholder(fg.float32, (3, 4))
        lab = fg.placeholder(fg.int32, (3,))
        oh = fg.one_hot(lab, 4)
        sm = fg.nn.softmax(x)
        lsm = fg.nn.log_softmax(x)
        xent = fg.nn.softmax_cross_entropy_with_logits(labels=oh, logits=x)
        sparse = fg.nn.sparse_softmax_cross_entropy_with_logits(labels=lab[:2], logits=x[:2])
        loss = fg.reduce_sum(xent) + fg.reduce_sum(sparse) + fg.reduce_sum(sm * lsm)
        return [oh, sm, lsm, xent, sparse, *fg.gradients(loss, [x])], {x: logits, lab: labels}
    check(build)


def test_sparse_softmax_xent_kernels_and_a_bad_label_on_gpu():
    from flowgraph import api
    from flowgraph.errors import InvalidArgumentError
    logits = _arr((3, 5), low=-3, high=3)
    labels = np.array([4, 0, 2], np.int32)
    dense_labels = _arr((3, 5), low=0.0, high=1.0)

    def build():
        x = fg.placeholder(fg.float32, (3, 5))
        lab = fg.placeholder(fg.int32, (3,))
        dense = fg.placeholder(fg.float32, (3, 5))
        loss, probs = api.sparse_softmax_xent(x, lab)
        dense_loss, dense_probs = api.softmax_xent(x, dense)
        total = fg.reduce_sum(loss * loss) + fg.reduce_sum(probs * x) + \
            fg.reduce_sum(dense_loss * dense_loss)
        (g, gd) = fg.gradients(total, [x, dense])
        (h,) = fg.gradients(fg.reduce_sum(g * g), [x])
        return [loss, probs, dense_loss, dense_probs, g, gd, h], \
            {x: logits, lab: labels, dense: dense_labels}
    check(build)
    with fg.Graph().as_default(), fg.device("/gpu:0"):
        x = fg.placeholder(fg.float32, (3, 5))
        lab = fg.placeholder(fg.int32, (3,))
        loss, probs = api.sparse_softmax_xent(x, lab)
        back = api.sparse_softmax_xent_grad(x, lab, fg.ones_like(loss))
        with fg.Session() as sess:
            for fetch in (loss, back):
                with pytest.raises(InvalidArgumentError,
                                   match=r"expected labels in \[0, 5\), found 7"):
                    sess.run(fetch, {x: logits, lab: [0, 7, 1]})

def test_second_order_gradient_on_gpu():
    value = _arr((2, 2))

    def build():
        x = fg.placeholder(fg.float64, (2, 2))
        y = fg.reduce_sum(fg.tanh(x) * fg.sigmoid(x @ x))
        (g,) = fg.gradients(y, [x])
        (h,) = fg.gradients(fg.reduce_sum(g * g), [x])
        return [y, g, h], {x: value.astype(np.float64)}
    check(build)


def test_explicit_copy_op_and_its_gradient():
    value = _arr((2, 2))

    def build():
        x = fg.placeholder(fg.float32, (2, 2))
        on_gpu = fg.api.copy_to(fg.exp(x), "/gpu:0")
        back = fg.api.copy_to(on_gpu * 2.0, "/cpu:0")
        return _with_grads(back, [x], {x: value})
    check(build)


# --- TF1's "more ops" (issue 14) ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arg_reductions_products_and_powers(dtype):
    value = _arr((3, 4), dtype, 0.2, 1.5)
    value[1, 2] = value[1, 0]                      # a tie: the first index wins
    exponent = _arr((4,), dtype, -1.0, 2.0)

    def build():
        x = fg.placeholder(dtype, (3, 4))
        e = fg.placeholder(dtype, (4,))
        outs = [fg.argmax(x, 1), fg.argmin(x, 0, output_type=fg.int32),
                fg.argmax(-x, -1), fg.reduce_prod(x, 1), fg.reduce_prod(x, keepdims=True),
                fg.reduce_prod(x, [0, 1]), fg.pow(x, e)]
        loss = fg.reduce_sum(fg.reduce_prod(x, 1)) + fg.reduce_sum(fg.pow(x, e))
        return outs + fg.gradients(loss, [x, e]), {x: value, e: exponent}
    check(build)


def test_shapes_as_values_ranges_fills_and_composites():
    value = _arr((3, 2))

    def build():
        x = fg.placeholder(fg.float32, (None, 2))
        n = fg.placeholder(fg.int32, ())
        lengths = fg.constant(np.array([2, 0, 1], np.int32))
        outs = [fg.shape(x), fg.size(x), fg.range(n), fg.range(1, n, 2),
                fg.fill(fg.shape(x), 3.5), fg.fill(fg.stack([n, 2]), 1),
                fg.reverse(x, [0, 1]), fg.tile(x, [2, 1]), fg.sequence_mask(lengths, 3),
                fg.reduce_min(x, 0), fg.reduce_any(x > 0.0, 1),
                fg.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0),
                fg.reshape(x, [fg.shape(x)[0] * 2]), fg.reshape(x, fg.stack([2, n - 1]))]
        loss = fg.reduce_sum(fg.tile(x, [2, 1]) * fg.tile(fg.reverse(x, [0, 1]), [2, 1]))
        return outs + fg.gradients(loss, [x]), {x: value, n: 4}
    check(build)


# --- coverage ---------------------------------------------------------------------------

# Ops the CUDA backend evaluates itself rather than through a kernel: sources are
# uploaded (Const) or fed (Placeholder); state ops read and write the session's values.
HANDLED_BY_THE_PLAN = {"Placeholder", "Variable", "ReadVariable", "Assign", "AssignAdd",
                       "AssignSub", "SparseRowsSGD", "InitVariables"}
# Random ops: a documented host fallback (flowgraph.backends.host_fallback: they run on
# the host, drawn as the CPU draws them, and are copied up: bit-identical to the CPU's);
# test_random_ops_and_dropout_on_the_gpu_are_bit_identical checks it.
HANDLED_BY_THE_PLAN |= {"RandomUniform", "RandomStandardNormal", "TruncatedNormal"}
# TF1's sampling ops are random ops too (tests/test_sampled_losses.py runs them on the GPU)
HANDLED_BY_THE_PLAN |= {"RandomShuffle", "Multinomial", "CandidateSampler"}
# Print and PyFunc (kind "io"): a documented host fallback too (host_fallback: they run
# Python on the host); tests/test_tf1_print.py runs them on the GPU.
HANDLED_BY_THE_PLAN |= {"Print", "PyFunc"}


def test_random_ops_and_dropout_on_the_gpu_are_bit_identical():
    def build():
        fg.set_random_seed(3)
        x = fg.placeholder(fg.float32, (None, 5))
        keep = fg.placeholder(fg.float32, ())
        y = fg.nn.dropout(x * 2.0, keep)
        g, = fg.gradients(fg.reduce_sum(y * y), [x])
        return [y, g, fg.random_normal((2, 3), seed=1),
                fg.truncated_normal((4,), dtype=fg.float64),
                fg.random_uniform(fg.constant([3, 2]), -1.0, 1.0)], \
            {x: np.linspace(-1, 1, 15, dtype=np.float32).reshape(3, 5), keep: 0.5}
    results = check(build, rtol=0, atol=0)
    cpu, gpu = results["/cpu:0"], results["/gpu:0"]
    for a, b in zip(cpu, gpu):
        np.testing.assert_array_equal(a, b)
    assert (cpu[0] == 0).any() and (cpu[0] != 0).any()


def test_every_primitive_has_a_gpu_kernel():
    from kernels import cuda as gpu_kernels  # noqa: F401  (registers the kernels)
    from kernels import lookup
    # MPI collectives (flowgraph.distributed) run on the host by design: the plan copies
    # their operands (tested in test_collective_on_the_gpu_runs_on_the_host). So do loops
    # (While, If: kind "loop"), whose bodies are plans of their own.
    missing = [name for name, prim in primitives.all_primitives().items()
               if name not in HANDLED_BY_THE_PLAN and prim.kind not in ("collective", "loop")
               and lookup(name, "gpu") is None]
    assert missing == []


# --- fusion: random elementwise graphs ------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_SAFE_UNARY = [fg.tanh, fg.sigmoid, fg.negative, fg.square, fg.abs, fg.relu,
               lambda x: fg.exp(fg.tanh(x)), lambda x: fg.sqrt(fg.abs(x) + 1.0)]
_SAFE_BINARY = [fg.add, fg.subtract, fg.multiply, fg.maximum, fg.minimum,
                lambda x, y: x / (fg.abs(y) + 1.0), lambda x, y: fg.where(x > y, x, y * 2.0)]
_SHAPES = [(2, 3), (3,), (1, 3), (2, 1), ()]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(0, 100),
                          st.integers(0, 100)), min_size=2, max_size=7),
       st.sampled_from([np.float32, np.float64]))
def test_random_elementwise_graphs_fuse_to_the_reference(program, dtype):
    """Random DAGs of elementwise ops over broadcasting inputs: the fused GPU kernels
    equal the CPU, forward and gradient (each intermediate may be used later)."""
    values = [_arr(s, dtype) for s in _SHAPES]

    def build():
        inputs = [fg.placeholder(dtype, s) for s in _SHAPES]
        nodes = list(inputs)
        for binary, which, i, j in program:
            a = nodes[i % len(nodes)]
            if binary:
                nodes.append(_SAFE_BINARY[which % len(_SAFE_BINARY)](a, nodes[j % len(nodes)]))
            else:
                nodes.append(_SAFE_UNARY[which](a))
        out = fg.add_n([fg.reduce_sum(n) for n in nodes[len(inputs):]])
        grads = fg.gradients(out, inputs)
        return [out, nodes[-1], *grads], dict(zip(inputs, values))
    check(build)


def test_plan_fuses_elementwise_runs():
    from flowgraph.placed_plan import PlacedPlan
    x = fg.placeholder(fg.float32, (2, 3))
    with fg.device("/gpu:0"):
        y = fg.tanh(x * 2.0 + 1.0) * fg.sigmoid(x)
    with fg.Session() as sess:
        out = sess.run(y, {x: np.ones((2, 3))})
        (plan,) = sess._plans.values()
    assert isinstance(plan, PlacedPlan)
    fused = [step for step in plan.steps if step.kind == "fused kernel"]
    # x*2, +1, tanh, sigmoid, * : one kernel storing only its last value
    assert len(fused) == 1 and len(fused[0].infos[0].ops) == 5
    assert len(fused[0].writes) == 1 and fused[0].device == "/gpu:0"
    np.testing.assert_allclose(out, np.tanh(3.0) / (1 + np.exp(-1.0)) * np.ones((2, 3)),
                               rtol=1e-6)


def test_log1p_runs_in_a_generated_fused_kernel():
    # log1p is declared with a scalar template only: it joins the generated kernel.
    from flowgraph.placed_plan import PlacedPlan
    x = fg.placeholder(fg.float32, (2, 3))
    with fg.device("/gpu:0"):
        y = fg.log1p(x * 0.5) * x
    value = _arr((2, 3), low=-1.0, high=2.0)
    with fg.Session() as sess:
        out = sess.run(y, {x: value})
        (plan,) = sess._plans.values()
    assert isinstance(plan, PlacedPlan)
    fused = [step for step in plan.steps if step.kind == "fused kernel"]
    assert len(fused) == 1 and "log1p" in fused[0].infos[0].ops
    np.testing.assert_allclose(out, np.log1p(value * 0.5) * value, rtol=1e-6)


def test_empty_tensors_on_gpu():
    def build():
        x = fg.placeholder(fg.float32, (None, 3))
        w = fg.constant(np.ones((3, 2), np.float32))
        y = fg.tanh(x @ w)
        return [y, fg.reduce_sum(y, 0), fg.reduce_sum(y), fg.concat([x, x], 0),
                *fg.gradients(fg.reduce_sum(y), [x])], {x: np.zeros((0, 3), np.float32)}
    results = check(build)
    assert results["/gpu:0"][0].shape == (0, 2)
    np.testing.assert_array_equal(results["/gpu:0"][1], [0.0, 0.0])


def test_collective_on_the_gpu_runs_on_the_host():
    """An allreduce placed on /gpu:0 (world size 1: the identity) gives the CPU result."""
    import flowgraph.distributed as fgd

    def build():
        x = fg.placeholder(fg.float32, (3,))
        y, = fgd.allreduce_mean([fg.tanh(x)])
        return [y * 2.0, fg.gradients(fg.reduce_sum(y * y), [x])], {x: [0.1, -0.2, 0.3]}

    fg.testing.compare_devices(build)
