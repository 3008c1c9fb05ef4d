"""Graphs deeper than Python's recursion limit build, differentiate, compile and run.

Nothing in graph building, ``gradients``, the passes or plan building may recurse
along a chain of ops: an unrolled RNN of a thousand steps is a chain tens of thousands
of ops deep. These graphs are long but cheap (tiny shapes, a few distinct kernels).
"""
import sys

import numpy as np
import pytest

import flowgraph as fg

DEPTH = 1200     # steps; each adds several ops, well past the recursion limit


@pytest.fixture
def low_recursion_limit():
    """Run with Python's default limit even if a plugin raised it."""
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def _deep_rnn(depth):
    x = fg.placeholder(fg.float64, (2, 3), name="x")
    w = fg.Variable(np.eye(3) * 0.5 + 0.1, name="w")
    h = x
    for _ in range(depth):
        # A matmul per step keeps the elementwise regions small (one kernel, shared);
        # the weight gradient is then a chain of `depth` adds of a.T @ b terms
        # (stacked into one GEMM by the compiler), the input gradient a chain of
        # `depth` matmuls.
        h = fg.tanh(fg.matmul(h, w)) + x * 0.01
    loss = fg.reduce_sum(fg.square(h))
    dx, dw = fg.gradients(loss, [x, w])
    return x, loss, dx, dw


@pytest.mark.parametrize("optimize", [True, False], ids=["compiled", "reference"])
def test_a_chain_deeper_than_the_recursion_limit_compiles_and_runs(optimize,
                                                                   low_recursion_limit):
    x, loss, dx, dw = _deep_rnn(DEPTH)
    assert len(x.graph.operations) > 4 * DEPTH
    value = np.random.default_rng(0).standard_normal((2, 3))
    config = fg.SessionConfig(optimize=optimize)
    with fg.Session(config=config) as sess:
        got = sess.run([loss, dx, dw], {x: value})
    # Against a direct NumPy forward and backward pass of the same chain.
    w0 = np.eye(3) * 0.5 + 0.1
    hs, h = [], value
    for _ in range(DEPTH):
        hs.append(h)
        h = np.tanh(h @ w0) + value * 0.01
    g, gx, gw = 2 * h, np.zeros_like(value), np.zeros_like(w0)
    for prev in reversed(hs):
        pre = 1 - np.tanh(prev @ w0) ** 2
        gx += g * 0.01
        gw += prev.T @ (g * pre)
        g = (g * pre) @ w0.T
    gx += g
    np.testing.assert_allclose(got[0], np.sum(h ** 2), rtol=1e-9)
    np.testing.assert_allclose(got[1], gx, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(got[2], gw, rtol=1e-8, atol=1e-12)


def test_a_long_chain_of_cheap_ops_read_by_another_region(low_recursion_limit):
    # recompute_in_readers follows chains of cheap ops that only another region reads
    # (to compute them there): a chain longer than the recursion limit.
    x = fg.placeholder(fg.float64, (2, 3))
    d = x * 2.0                               # in the chain's region...
    a = x
    for _ in range(DEPTH):
        a = a * 1.0001 + x * 0.5
    c = fg.tanh(fg.matmul(d, fg.ones((3, 3), fg.float64)))   # ...so c depends on it
    y = a * c + x                             # and y's region cannot be that region
    value = np.random.default_rng(1).standard_normal((2, 3))
    with fg.Session(config=fg.SessionConfig(compile="never")) as sess:
        got = sess.run(y, {x: value})
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        want = sess.run(y, {x: value})
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("optimize", [True, False], ids=["compiled", "reference"])
def test_slices_of_slices_deeper_than_the_recursion_limit(optimize, low_recursion_limit):
    # Every slice is a view of the one before: the plan resolves the chain of views.
    x = fg.placeholder(fg.float64, (DEPTH + 2,))
    y = x
    for _ in range(DEPTH):
        y = y[1:]
    value = np.arange(DEPTH + 2, dtype=np.float64)
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        got = sess.run(y * 2.0, {x: value})
    np.testing.assert_array_equal(got, [2.0 * DEPTH, 2.0 * (DEPTH + 1)])
