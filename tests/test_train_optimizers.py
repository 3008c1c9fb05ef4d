"""Optimizers against their update formulas, clip_by_global_norm."""
import numpy as np
import pytest

import flowgraph as fg

try:
    import torch
except ImportError:  # optional cross-check
    torch = None

STEPS = 5


def _quadratic_problem(rng):
    """loss = sum((A @ w - b)^2) + sum(u^2 * c): two variables, gradients change each step."""
    A, b, c = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=2) ** 2
    w = fg.Variable(rng.normal(size=3), name="w")
    u = fg.Variable(rng.normal(size=2), name="u")
    loss = fg.reduce_sum(fg.square(fg.matmul(fg.constant(A), fg.reshape(w, (3, 1)))[:, 0] - b)) \
        + fg.reduce_sum(fg.square(u) * c)

    def grads(wv, uv):
        return 2 * A.T @ (A @ wv - b), 2 * uv * c

    def loss_np(wv, uv):
        return np.sum((A @ wv - b) ** 2) + np.sum(uv ** 2 * c)
    return w, u, loss, grads, loss_np


def _run_steps(opt, rng):
    w, u, loss, grads, loss_np = _quadratic_problem(rng)
    train = opt.minimize(loss)
    sess = fg.Session()
    w0, u0 = sess.variable_value(w), sess.variable_value(u)
    history = []
    for _ in range(STEPS):
        before = (sess.variable_value(w), sess.variable_value(u))
        loss_value, _ = sess.run([loss, train])
        # the loss fetched with the train op is the loss before the step
        np.testing.assert_allclose(loss_value, loss_np(*before), rtol=1e-12)
        history.append((sess.variable_value(w), sess.variable_value(u)))
    return (w0, u0), grads, history, sess, opt, (w, u)


def test_gradient_descent_formula():
    (w, u), grads, history, *_ = _run_steps(fg.train.GradientDescentOptimizer(0.05),
                                           np.random.default_rng(0))
    for got in history:
        gw, gu = grads(w, u)
        w, u = w - 0.05 * gw, u - 0.05 * gu
        np.testing.assert_allclose(got[0], w, rtol=1e-12)
        np.testing.assert_allclose(got[1], u, rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_formula(nesterov):
    opt = fg.train.MomentumOptimizer(0.03, 0.9, use_nesterov=nesterov)
    (w, u), grads, history, sess, opt, (wv, uv) = _run_steps(opt, np.random.default_rng(1))
    aw, au = np.zeros(3), np.zeros(2)
    for got in history:
        gw, gu = grads(w, u)
        aw, au = 0.9 * aw + gw, 0.9 * au + gu
        sw, su = (gw + 0.9 * aw, gu + 0.9 * au) if nesterov else (aw, au)
        w, u = w - 0.03 * sw, u - 0.03 * su
        np.testing.assert_allclose(got[0], w, rtol=1e-12)
        np.testing.assert_allclose(got[1], u, rtol=1e-12)
    slot = opt.get_slot(wv, "momentum")
    assert not slot in fg.trainable_variables() and slot in fg.global_variables()
    np.testing.assert_allclose(sess.variable_value(slot), aw, rtol=1e-12)


def test_adam_formula():
    lr, b1, b2, eps = 0.1, 0.8, 0.95, 1e-6
    opt = fg.train.AdamOptimizer(lr, b1, b2, eps)
    (w, u), grads, history, sess, opt, (wv, uv) = _run_steps(opt, np.random.default_rng(2))
    m = [np.zeros(3), np.zeros(2)]
    v = [np.zeros(3), np.zeros(2)]
    p = [w, u]
    for t, got in enumerate(history, start=1):
        g = grads(*p)
        for k in range(2):
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
            p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
            np.testing.assert_allclose(got[k], p[k], rtol=1e-11)
    np.testing.assert_allclose(sess.variable_value(opt.get_slot(wv, "m")), m[0], rtol=1e-11)
    np.testing.assert_allclose(sess.variable_value(opt.get_slot(uv, "v")), v[1], rtol=1e-11)
    assert all(not var.trainable for var in opt.variables())
    assert opt.get_slot(wv, "m").op.name == "w/Adam/m"
    assert opt.get_slot_names() == ["m", "v"]


@pytest.mark.skipif(torch is None, reason="torch is not installed (optional cross-check; "
                    "the formula is tested above)")
@pytest.mark.parametrize("kind", ["adam", "momentum", "sgd"])
def test_optimizers_equal_torch(kind):
    rng = np.random.default_rng(3)
    w, u, loss, grads, _ = _quadratic_problem(rng)
    sess = fg.Session()
    tw = torch.tensor(sess.variable_value(w), requires_grad=True)
    tu = torch.tensor(sess.variable_value(u), requires_grad=True)
    if kind == "adam":
        opt = fg.train.AdamOptimizer(0.05, 0.85, 0.99, 1e-7)
        topt = torch.optim.Adam([tw, tu], lr=0.05, betas=(0.85, 0.99), eps=1e-7)
    elif kind == "momentum":
        opt = fg.train.MomentumOptimizer(0.05, 0.7)
        topt = torch.optim.SGD([tw, tu], lr=0.05, momentum=0.7)
    else:
        opt = fg.train.GradientDescentOptimizer(0.05)
        topt = torch.optim.SGD([tw, tu], lr=0.05)
    train = opt.minimize(loss)
    for _ in range(STEPS):
        gw, gu = grads(tw.detach().numpy(), tu.detach().numpy())
        tw.grad, tu.grad = torch.from_numpy(gw), torch.from_numpy(gu)
        topt.step()
        sess.run(train)
        np.testing.assert_allclose(sess.variable_value(w), tw.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(sess.variable_value(u), tu.detach().numpy(), rtol=1e-12)


def test_compute_and_apply_gradients_with_var_list_and_global_step():
    w = fg.Variable(np.array([1.0, -2.0]), name="w")
    frozen = fg.Variable(np.array([3.0]), name="frozen")
    step = fg.Variable(np.int64(0), name="global_step", trainable=False)
    loss = fg.reduce_sum(fg.square(w)) * frozen[0]
    opt = fg.train.GradientDescentOptimizer(0.1)
    gvs = opt.compute_gradients(loss, var_list=[w])
    assert [v for _, v in gvs] == [w]
    train = opt.apply_gradients(gvs, global_step=step)
    sess = fg.Session()
    sess.run(train)
    sess.run(train)
    assert int(sess.variable_value(step)) == 2
    np.testing.assert_allclose(sess.variable_value(w), np.array([1.0, -2.0]) * (1 - 0.6) ** 2)
    np.testing.assert_array_equal(sess.variable_value(frozen), [3.0])


def test_learning_rate_may_be_a_placeholder():
    w = fg.Variable(np.float64(1.0), name="w")
    lr = fg.placeholder(fg.float64, ())
    train = fg.train.GradientDescentOptimizer(lr).minimize(fg.square(w))
    sess = fg.Session()
    sess.run(train, {lr: 0.25})
    assert float(sess.variable_value(w)) == 0.5


def test_float32_variables_under_adam():
    w = fg.Variable(np.ones(3, np.float32), name="w")
    train = fg.train.AdamOptimizer(0.1).minimize(fg.reduce_sum(w * 3.0))
    sess = fg.Session()
    for _ in range(3):
        sess.run(train)
    value = sess.variable_value(w)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, 1 - 0.3, rtol=1e-5)  # |Adam step| = lr for a constant gradient


def test_no_variables_is_a_clear_error():
    with pytest.raises(ValueError, match="no variables"):
        fg.train.AdamOptimizer().minimize(fg.reduce_sum(fg.constant([1.0])))


def test_clip_by_global_norm_scales_when_above_and_not_below():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 2)), rng.normal(size=4)
    norm = np.sqrt((a ** 2).sum() + (b ** 2).sum())
    sess = fg.Session()
    for clip in (norm / 3, norm * 2):
        (ca, none, cb), gn = fg.clip_by_global_norm([fg.constant(a), None, fg.constant(b)],
                                                    clip)
        assert none is None
        va, vb, vn = sess.run([ca, cb, gn])
        np.testing.assert_allclose(vn, norm, rtol=1e-12)
        scale = min(1.0, clip / norm)
        np.testing.assert_allclose(va, a * scale, rtol=1e-12)
        np.testing.assert_allclose(vb, b * scale, rtol=1e-12)
    assert fg.clip_by_global_norm is fg.train.clip_by_global_norm


def test_clipped_training_step_moves_by_at_most_lr_times_clip():
    w = fg.Variable(np.array([100.0, -50.0]), name="w")
    opt = fg.train.GradientDescentOptimizer(0.1)
    grads, variables = zip(*opt.compute_gradients(fg.reduce_sum(fg.square(w))))
    clipped, norm = fg.clip_by_global_norm(grads, 1.0)
    train = opt.apply_gradients(zip(clipped, variables))
    sess = fg.Session()
    before = sess.variable_value(w)
    sess.run(train)
    moved = np.linalg.norm(sess.variable_value(w) - before)
    np.testing.assert_allclose(moved, 0.1, rtol=1e-12)
