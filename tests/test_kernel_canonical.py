"""Fused regions with the same arithmetic share one generated kernel: operand order of
commutative ops and the rank of whole-array loops with scalar operands do not make new
kernels (fewer distinct kernels: a shorter first compile)."""
import numpy as np

import flowgraph as fg

EAGER = fg.SessionConfig(optimize=True, compile="eager")


def _plan(sess):
    plan, = sess._plans.values()
    return plan


def test_the_same_update_of_a_matrix_and_a_vector_is_one_kernel():
    # Adam-like: every weight gets the same arithmetic with one-element hyperparameters.
    lr = fg.Variable(np.float32(0.1), name="lr")
    m = fg.placeholder(fg.float32, (4, 5))
    v = fg.placeholder(fg.float32, (5,))
    updates = [x - lr * (x * 0.5 + 1.0) / (fg.sqrt(x * x) + 1e-3) for x in (m, v)]
    feeds = {m: np.arange(20, dtype=np.float32).reshape(4, 5), v: np.ones(5, np.float32)}
    with fg.Session(config=EAGER) as sess:
        got = sess.run(updates, feeds)
        assert _plan(sess).distinct_kernels == 1
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        want = sess.run(updates, feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_commuted_operands_are_one_kernel():
    x = fg.placeholder(fg.float64, (3, 4))
    y = fg.placeholder(fg.float64, (3, 4))
    w = fg.placeholder(fg.float64, (4, 4))
    # Two regions separated by a matmul: (x*y + x) and (y*x + x) in another order.
    first = fg.tanh(x) * y + x
    second = y * fg.tanh(fg.matmul(first, w)) + fg.matmul(first, w)
    rng = np.random.default_rng(0)
    feeds = {x: rng.normal(size=(3, 4)), y: rng.normal(size=(3, 4)), w: rng.normal(size=(4, 4))}
    with fg.Session(config=EAGER) as sess:
        got = sess.run([first, second], feeds)
        kernels = _plan(sess).distinct_kernels
    with fg.Session(config=fg.SessionConfig(optimize=False)) as sess:
        want = sess.run([first, second], feeds)
    assert kernels == 1
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12)
