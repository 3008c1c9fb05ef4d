"""drop_zero_products: matmul work by known zeros removed, the results unchanged."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph import passes as P

from reference_runs import run_both


def lowered(fetches, feeds):
    return P.fold_constants(P.lower(list(fetches), [], list(feeds), [f.shape for f in feeds]))


def matmuls(prog):
    return [n for n in prog.nodes if n.type == "MatMul"]


def test_first_step_product_reads_only_the_rows_of_the_input():
    x = fg.placeholder(fg.float64, (3, 4))
    k = fg.placeholder(fg.float64, (9, 8))
    h0 = fg.constant(np.zeros((3, 5)))
    prog = P.drop_zero_products(lowered([fg.matmul(fg.concat([h0, x], 1), k)], [x, k]))
    mm, = matmuls(prog)
    assert mm.inputs[0][0].type == "Feed" and mm.shapes == [(3, 8)]
    rows = mm.inputs[1][0]
    assert rows.type == "StridedSlice" and rows.shapes == [(4, 8)]
    assert rows.attrs["spec"] == (("slice", 5, 9, None),)
    assert "Concat" not in [n.type for n in prog.nodes]


def test_transposed_weight_is_sliced_along_its_columns():
    x = fg.placeholder(fg.float64, (3, 4))
    k = fg.placeholder(fg.float64, (8, 9))
    prog = P.drop_zero_products(lowered(
        [fg.matmul(fg.concat([x, fg.zeros((3, 5), fg.float64)], 1), k, transpose_b=True)],
        [x, k]))
    mm, = matmuls(prog)
    assert mm.attrs["transpose_b"] and mm.inputs[1][0].shapes == [(8, 4)]


def test_product_with_a_zero_operand_becomes_a_zero_constant():
    x = fg.placeholder(fg.float64, (5, 3))
    w = fg.placeholder(fg.float64, (4, 2))
    zeros = fg.constant(np.zeros((5, 4)))
    prog = P.drop_zero_products(lowered(
        [fg.matmul(zeros, w), fg.matmul(x, fg.zeros((2, 3), fg.float64), transpose_b=True)],
        [x, w]))
    assert not matmuls(prog)
    for v, shape in zip(prog.fetches, [(5, 2), (5, 2)]):
        assert v[0].type == "Const" and v[0].shapes == [shape]
        assert not np.any(v[0].attrs["value"])


def test_weight_gradient_terms_are_kept_for_the_stacked_gemm():
    # h0.T @ dz0 stays a block of the stacked weight gradient, whose rows the bias
    # gradient's sum shares.
    dz = fg.placeholder(fg.float64, (5, 3))
    x = fg.placeholder(fg.float64, (5, 2))
    zeros = fg.constant(np.zeros((5, 4)))
    terms = [fg.matmul(zeros, dz, transpose_a=True),
             fg.matmul(fg.concat([zeros, x], 1), dz, transpose_a=True)]
    prog = P.drop_zero_products(lowered(terms, [dz, x]))
    assert len(matmuls(prog)) == 2 and all(n.attrs["transpose_a"] for n in matmuls(prog))


def test_left_alone_without_a_contiguous_run_of_nonzero_parts():
    x, y = fg.placeholder(fg.float64, (3, 2)), fg.placeholder(fg.float64, (3, 2))
    k = fg.placeholder(fg.float64, (7, 4))
    parts = fg.concat([x, fg.constant(np.zeros((3, 3))), y], 1)    # zeros in the middle
    stacked = fg.concat([fg.constant(np.zeros((3, 7))), parts], 0)    # rows: not a block
    prog = P.drop_zero_products(lowered([fg.matmul(parts, k),
                                         fg.matmul(stacked, k, transpose_a=False)], [x, y, k]))
    assert [n.inputs[0][0].type for n in matmuls(prog)] == ["Concat", "Concat"]
    assert all(n.inputs[1][0].type == "Feed" for n in matmuls(prog))
    # A nonzero constant is not zeros.
    c = fg.concat([fg.constant(np.full((3, 3), 1e-300)), x], 1)
    prog = P.drop_zero_products(lowered([fg.matmul(c, fg.placeholder(fg.float64, (5, 4)))],
                                        [x]))
    assert matmuls(prog)[0].inputs[0][0].type == "Concat"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unrolled_cells_from_a_zero_state_match_the_reference(cell):
    # Forward and every gradient, with the first step's products dropped.
    rng = np.random.default_rng(7)
    B, I, H, T = 3, 2, 4, 4
    xs = [fg.placeholder(fg.float64, (B, I)) for _ in range(T)]
    if cell == "lstm":
        k = fg.Variable(rng.normal(size=(H + I, 4 * H)) * 0.5)
        b = fg.Variable(rng.normal(size=4 * H) * 0.1)
        weights = [k, b]
    else:
        w = fg.Variable(rng.normal(size=(I, 3 * H)) * 0.5)
        u = fg.Variable(rng.normal(size=(H, 3 * H)) * 0.5)
        weights = [w, u]
    h = c = fg.zeros((B, H), fg.float64)
    for x in xs:
        if cell == "lstm":
            i, f, o, g = fg.split(fg.matmul(fg.concat([h, x], 1), k) + b, 4, axis=1)
            c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
            h = fg.sigmoid(o) * fg.tanh(c)
        else:
            xr, xz, xn = fg.split(fg.matmul(x, w), 3, axis=1)
            hr, hz, hn = fg.split(fg.matmul(h, u), 3, axis=1)
            r, z = fg.sigmoid(xr + hr), fg.sigmoid(xz + hz)
            h = (1.0 - z) * fg.tanh(xn + r * hn) + z * h
    fetches = [h] + fg.gradients(fg.reduce_mean(h * h), weights)
    ref, opt = run_both(fetches, {x: rng.normal(size=(B, I)) for x in xs})
    for a, b_ in zip(ref, opt):
        np.testing.assert_allclose(b_, a, rtol=1e-10, atol=1e-12)
