"""TF1's tf.einsum against np.einsum (the specification): a table of equations (matmul,
batch matmul, outer products, transposes, sums, traces and diagonals, three operands,
'...'), generated equations (Hypothesis), both the reference and the compiled path,
unknown batch dimensions, gradients first and second order against finite differences,
and errors naming einsum and the user's line."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowgraph as fg
from flowgraph.errors import DTypeError, ShapeError
from flowgraph.testing import check_gradients

from reference_runs import OPT, REF, run_both

CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]), ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("i,j->ij", [(3,), (4,)]), ("ij,kl->ijkl", [(2, 3), (1, 2)]),
    ("ij->ji", [(2, 3)]), ("ijk->kji", [(2, 3, 4)]), ("ij->", [(2, 3)]), ("ij->j", [(2, 3)]),
    ("i->", [(5,)]), ("ii->", [(3, 3)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]),
    ("iji->j", [(3, 2, 3)]), ("iij,jk->ik", [(3, 3, 2), (2, 4)]),
    ("i,i->", [(4,), (4,)]), ("i,i", [(4,), (4,)]), ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,ij->", [(2, 3), (2, 3)]), ("ijk,kj->i", [(2, 3, 4), (4, 3)]),
    ("ab,bc->ca", [(2, 3), (3, 4)]), (",->", [(), ()]), ("i,->i", [(3,), ()]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 5, 2, 3), (5, 3, 4)]), ("...ij,jk", [(2, 3), (3, 4)]),
    ("...i->...", [(2, 3, 4)]), ("i...->...i", [(2, 3, 4)]), ("Ab,bC->AC", [(2, 3), (3, 2)]),
    ("b i j , b j k -> b i k", [(2, 2, 3), (2, 3, 1)]),
]


@pytest.mark.parametrize("equation,shapes", CASES, ids=[c[0] for c in CASES])
def test_equations_match_numpy_on_both_paths(equation, shapes):
    rng = np.random.default_rng(1)
    values = [rng.normal(size=s) for s in shapes]
    xs = [fg.placeholder(fg.float64, s) for s in shapes]
    y = fg.einsum(equation, *xs)
    want = np.einsum(equation.replace(" ", ""), *values)
    assert y.shape == want.shape and y.dtype == fg.float64
    for got in run_both(y, dict(zip(xs, values))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_float32_and_int32_keep_their_dtype():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    with fg.Session() as sess:
        got = sess.run([fg.einsum("ij,kj->ik", a, a), fg.einsum("ij->j", a.astype(np.float32))])
    assert got[0].dtype == np.int32 and got[1].dtype == np.float32
    np.testing.assert_array_equal(got[0], a @ a.T)


def test_unknown_batch_dimensions_are_read_at_run_time():
    x = fg.placeholder(fg.float32, (None, None, 3))
    w = fg.placeholder(fg.float32, (3, 4))
    y = fg.einsum("btj,jk->btk", x, w)
    outer = fg.einsum("btj,c->btjc", x, w[0])
    assert y.shape == (None, None, 4) and outer.shape == (None, None, 3, 4)
    rng = np.random.default_rng(2)
    xv, wv = rng.normal(size=(2, 5, 3)).astype(np.float32), rng.normal(size=(3, 4)).astype(
        np.float32)
    for got, got_outer in run_both([y, outer], {x: xv, w: wv}):
        np.testing.assert_allclose(got, xv @ wv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_outer, xv[..., None] * wv[0], rtol=1e-6)


def test_every_dimension_unknown_contracted_ones_included():
    a = fg.placeholder(fg.float64, (None, None, None))
    b = fg.placeholder(fg.float64, (None, None, None))
    ys = [fg.einsum("bij,bjk->bik", a, b), fg.einsum("bij,bkj->bk", a, fg.transpose(
        b, [0, 2, 1])), fg.einsum("ij,ij->", a[0], a[1])]
    rng = np.random.default_rng(5)
    av, bv = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 5))
    want = [av @ bv, np.einsum("bij,bkj->bk", av, bv.transpose(0, 2, 1)), (av[0] * av[1]).sum()]
    for got in run_both(ys, {a: av, b: bv}):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    g, = fg.gradients(fg.reduce_sum(ys[0] * ys[0]), [a])
    assert check_gradients(fg.reduce_sum(g * g), [a], {a: av, b: bv}) < 1e-5


LETTERS = "abcd"


@st.composite
def equations(draw):
    sizes = {c: draw(st.integers(1, 3)) for c in LETTERS}
    n = draw(st.integers(1, 3))
    terms = [draw(st.lists(st.sampled_from(LETTERS), max_size=3)) for _ in range(n)]
    used = sorted(set(c for t in terms for c in t))
    if draw(st.booleans()):
        out = draw(st.permutations(used))[:draw(st.integers(0, len(used)))]
        eq = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    else:
        eq = ",".join("".join(t) for t in terms)
    return eq, [tuple(sizes[c] for c in t) for t in terms]


@settings(max_examples=40, deadline=None)
@given(case=equations(), seed=st.integers(0, 2 ** 16))
def test_generated_equations_match_numpy(case, seed):
    equation, shapes = case
    values = [np.random.default_rng(seed).normal(size=s) for s in shapes]
    with fg.Graph().as_default():
        y = fg.einsum(equation, *[fg.constant(v) for v in values])
        with fg.Session(config=REF) as sess:
            got = sess.run(y)
    want = np.einsum(equation, *values)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


GRAD_CASES = [("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]), ("i,j->ij", [(3,), (2,)]),
              ("ii->", [(3, 3)]), ("iij,jk->ik", [(2, 2, 3), (3, 2)]),
              ("abc,cd,de->abe", [(2, 2, 2), (2, 3), (3, 2)]), ("ij,ij->i", [(2, 3), (2, 3)]),
              ("...ij,jk", [(2, 2, 3), (3, 2)])]


@pytest.mark.parametrize("config", [REF, OPT], ids=["reference", "compiled"])
@pytest.mark.parametrize("equation,shapes", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradients_first_and_second_order(equation, shapes, config):
    rng = np.random.default_rng(4)
    values = [rng.normal(size=s) for s in shapes]
    xs = [fg.placeholder(fg.float64, s) for s in shapes]
    feed = dict(zip(xs, values))
    y = fg.einsum(equation, *xs)
    assert check_gradients(y * y, xs, feed, config=config) < 1e-6
    grads = fg.gradients(fg.reduce_sum(y * y), xs)
    assert check_gradients(fg.add_n([fg.reduce_sum(g * g) for g in grads]), xs, feed,
                           config=config) < 1e-5


@pytest.mark.parametrize("call,error,message", [
    (lambda a: fg.einsum("ij,jk->ik", a), ValueError, "names 2 operand"),
    (lambda a: fg.einsum("ijk", a), ValueError, "has 3 index"),
    (lambda a: fg.einsum("ij->iz", a), ValueError, "output index.*z.*appear in no input"),
    (lambda a: fg.einsum("ij->ii", a), ValueError, "repeats an index"),
    (lambda a: fg.einsum("i1", a), ValueError, "expected letters"),
    (lambda a: fg.einsum("ij,ij->ij", a, fg.transpose(a)), ShapeError, "index i .*sizes 2 and 3"),
    (lambda a: fg.einsum("ij,ij", a, fg.cast(a, fg.float64)), DTypeError, "one dtype"),
    (lambda a: fg.einsum("...ij,...jk->ik", fg.ones([2, 2, 3]), fg.ones([2, 3, 4])),
     ValueError, "output does not"),
    (lambda a: fg.einsum(3, a), TypeError, "expected the equation as a str"),
    (lambda a: fg.einsum("ii", fg.placeholder(fg.float32, (None, None))), ShapeError,
     "repeated index i"),
])
def test_errors_name_einsum_and_the_call_site(call, error, message):
    a = fg.ones([2, 3])
    with pytest.raises(error, match=r"einsum \(called at .*test_einsum.py:\d+\): .*" + message):
        call(a)
