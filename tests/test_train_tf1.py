"""TF1's optimizers, the global step and learning-rate schedules (issue 14), step by
step against TF1's documented update formulas in float64, and against torch where
torch has the same formula."""
import numpy as np
import pytest

import flowgraph as fg

try:
    import torch
except ImportError:  # optional cross-check
    torch = None

STEPS = 4


def _problem(rng):
    """Two variables whose gradients change every step: loss = sum(w^4)/4 + sum(u^3*c)/3
    (gradients w^3 and u^2*c)."""
    w = fg.Variable(rng.uniform(0.5, 1.5, 3), name="w")
    u = fg.Variable(rng.uniform(0.5, 1.5, 2), name="u")
    c = rng.uniform(0.5, 1.5, 2)
    loss = fg.reduce_sum(w ** 4) / 4.0 + fg.reduce_sum(u ** 3 * c) / 3.0

    def grads(wv, uv):
        return wv ** 3, uv ** 2 * c
    return (w, u), loss, grads


def _train(opt, rng, steps=STEPS, feed=None):
    (w, u), loss, grads = _problem(rng)
    train = opt.minimize(loss)
    sess = fg.Session()
    start = [sess.variable_value(w), sess.variable_value(u)]
    history = []
    for _ in range(steps):
        sess.run(train, feed)
        history.append([sess.variable_value(w), sess.variable_value(u)])
    return start, grads, history, sess, (w, u)


# --- Adagrad ---------------------------------------------------------------------------

def test_adagrad_is_tf1s_formula():
    lr, init = 0.3, 0.1
    opt = fg.train.AdagradOptimizer(lr, initial_accumulator_value=init)
    params, grads, history, sess, variables = _train(opt, np.random.default_rng(0))
    accum = [np.full(3, init), np.full(2, init)]
    for got in history:
        g = grads(*params)
        for k in range(2):
            accum[k] = accum[k] + g[k] * g[k]                 # ApplyAdagrad
            params[k] = params[k] - lr * g[k] / np.sqrt(accum[k])
            np.testing.assert_allclose(got[k], params[k], rtol=1e-13)
    slot = opt.get_slot(variables[0], "accumulator")
    np.testing.assert_allclose(sess.variable_value(slot), accum[0], rtol=1e-13)
    assert set(opt.variables()) == {opt.get_slot(v, "accumulator") for v in variables}


def test_adagrad_rejects_a_non_positive_initial_accumulator():
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        fg.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)


# --- RMSProp ----------------------------------------------------------------------------

def _rmsprop_update_numpy(var, g, mg, rms, mom, lr, decay, momentum, epsilon, centered):
    """tensorflow/python/training/rmsprop_test.py's reference."""
    rms_t = rms * decay + (1 - decay) * g * g
    denom_t = rms_t + epsilon
    if centered:
        mg_t = mg * decay + (1 - decay) * g
        denom_t = denom_t - mg_t * mg_t
    else:
        mg_t = mg
    mom_t = momentum * mom + lr * g / np.sqrt(denom_t)
    return var - mom_t, mg_t, rms_t, mom_t


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_is_tf1s_formula(centered, momentum):
    lr, decay, eps = 0.05, 0.8, 1e-4
    opt = fg.train.RMSPropOptimizer(lr, decay=decay, momentum=momentum, epsilon=eps,
                                    centered=centered)
    params, grads, history, sess, variables = _train(opt, np.random.default_rng(1))
    # TF1 starts the mean square at ones (not zeros as torch and Keras do)
    mg, rms, mom = [np.zeros(3), np.zeros(2)], [np.ones(3), np.ones(2)], \
        [np.zeros(3), np.zeros(2)]
    for got in history:
        g = grads(*params)
        for k in range(2):
            params[k], mg[k], rms[k], mom[k] = _rmsprop_update_numpy(
                params[k], g[k], mg[k], rms[k], mom[k], lr, decay, momentum, eps, centered)
            np.testing.assert_allclose(got[k], params[k], rtol=1e-13)
    w = variables[0]
    np.testing.assert_allclose(sess.variable_value(opt.get_slot(w, "rms")), rms[0], rtol=1e-13)
    np.testing.assert_allclose(sess.variable_value(opt.get_slot(w, "momentum")), mom[0],
                               rtol=1e-13)
    assert (opt.get_slot(w, "mg") is not None) == centered


# --- Momentum ------------------------------------------------------------------------------

@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_may_be_a_tensor(nesterov):
    lr, m = 0.1, 0.6
    momentum = fg.placeholder(fg.float64, ())
    opt = fg.train.MomentumOptimizer(fg.constant(lr, fg.float64), momentum,
                                     use_nesterov=nesterov)
    params, grads, history, *_ = _train(opt, np.random.default_rng(2), feed={momentum: m})
    accum = [np.zeros(3), np.zeros(2)]
    for got in history:
        g = grads(*params)
        for k in range(2):
            accum[k] = m * accum[k] + g[k]
            step = g[k] + m * accum[k] if nesterov else accum[k]   # TF1's ApplyMomentum
            params[k] = params[k] - lr * step
            np.testing.assert_allclose(got[k], params[k], rtol=1e-13)


@pytest.mark.skipif(torch is None, reason="torch is not installed (optional cross-check; "
                    "the formulas are tested above)")
@pytest.mark.parametrize("kind", ["nesterov", "adagrad"])
def test_nesterov_and_adagrad_equal_torch(kind):
    (w, u), loss, grads = _problem(np.random.default_rng(3))
    sess = fg.Session()
    tw = torch.tensor(sess.variable_value(w), requires_grad=True)
    tu = torch.tensor(sess.variable_value(u), requires_grad=True)
    if kind == "nesterov":
        opt = fg.train.MomentumOptimizer(0.05, 0.7, use_nesterov=True)
        topt = torch.optim.SGD([tw, tu], lr=0.05, momentum=0.7, nesterov=True)
    else:   # torch's Adagrad with eps=0 is TF1's
        opt = fg.train.AdagradOptimizer(0.2, initial_accumulator_value=0.3)
        topt = torch.optim.Adagrad([tw, tu], lr=0.2, initial_accumulator_value=0.3, eps=0.0)
    train = opt.minimize(loss)
    for _ in range(STEPS):
        gw, gu = grads(tw.detach().numpy(), tu.detach().numpy())
        tw.grad, tu.grad = torch.from_numpy(gw), torch.from_numpy(gu)
        topt.step()
        sess.run(train)
        np.testing.assert_allclose(sess.variable_value(w), tw.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(sess.variable_value(u), tu.detach().numpy(), rtol=1e-13)


# --- sharing: one optimizer applied more than once -----------------------------------------

def _adam_update_numpy(param, g_t, t, m, v, alpha=0.001, beta1=0.9, beta2=0.999,
                       epsilon=1e-8):
    """tensorflow/python/training/adam_test.py's reference."""
    alpha_t = alpha * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    m_t = beta1 * m + (1 - beta1) * g_t
    v_t = beta2 * v + (1 - beta2) * g_t * g_t
    return param - alpha_t * m_t / (np.sqrt(v_t) + epsilon), m_t, v_t


def test_adam_sharing_as_tf1s_testSharing():
    """TF1's adam_test.testSharing: two apply_gradients of one optimizer, run in turn,
    share the moments and the beta powers, so step t uses b1**t whichever op runs."""
    var0_np, var1_np = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    grads0_np, grads1_np = np.array([0.1, 0.1]), np.array([0.01, 0.01])
    var0, var1 = fg.Variable(var0_np, name="var0"), fg.Variable(var1_np, name="var1")
    grads0, grads1 = fg.constant(grads0_np), fg.constant(grads1_np)
    opt = fg.train.AdamOptimizer()
    update1 = opt.apply_gradients(zip([grads0, grads1], [var0, var1]))
    update2 = opt.apply_gradients(zip([grads0, grads1], [var0, var1]))
    assert len(opt.variables()) == 6          # m and v of two variables, two beta powers
    sess = fg.Session()
    m0 = v0 = m1 = v1 = 0.0
    for t in range(1, 4):
        # flowgraph's powers count the steps taken: b**(t-1) before step t (TF1 keeps
        # b**t, one ahead; the step uses b**t either way)
        np.testing.assert_allclose(sess.run(opt.beta1_power), 0.9 ** (t - 1), rtol=1e-15)
        np.testing.assert_allclose(sess.run(opt.beta2_power), 0.999 ** (t - 1), rtol=1e-15)
        sess.run(update1 if t % 2 else update2)
        var0_np, m0, v0 = _adam_update_numpy(var0_np, grads0_np, t, m0, v0)
        var1_np, m1, v1 = _adam_update_numpy(var1_np, grads1_np, t, m1, v1)
        # TF1 adds epsilon to sqrt(v), Kingma & Ba (and flowgraph, torch) to
        # sqrt(v_hat): equal to ~1e-8 relative here
        np.testing.assert_allclose(sess.variable_value(var0), var0_np, rtol=1e-7)
        np.testing.assert_allclose(sess.variable_value(var1), var1_np, rtol=1e-7)
        if t == 2:   # the figure: 0.998000 (0.997656 with per-call powers)
            assert round(float(sess.variable_value(var0)[0]), 6) == 0.998


def test_momentum_sharing_uses_one_slot_per_variable():
    w = fg.Variable(np.array([1.0]), name="w")
    opt = fg.train.MomentumOptimizer(0.1, 0.9)
    a = opt.minimize(fg.reduce_sum(w * 2.0))
    b = opt.minimize(fg.reduce_sum(w * 3.0))
    assert len(opt.variables()) == 1
    sess = fg.Session()
    sess.run(a)
    sess.run(b)
    # accum: 2, then 0.9*2 + 3 = 4.8; w: 1 - 0.2 - 0.48
    np.testing.assert_allclose(sess.variable_value(w), [1 - 0.2 - 0.48], rtol=1e-14)


# --- the global step and schedules ----------------------------------------------------------

def test_global_step_is_created_once_and_incremented_by_minimize_and_apply():
    step = fg.train.get_or_create_global_step()
    assert step is fg.train.get_or_create_global_step() is fg.train.get_global_step()
    assert step.dtype == np.int64 and not step.trainable and step.op.name == "global_step"
    with pytest.raises(ValueError, match="already"):
        fg.train.create_global_step()
    w = fg.Variable(1.0, name="w")
    opt = fg.train.GradientDescentOptimizer(0.1)
    train = opt.minimize(fg.square(w), global_step=step)
    apply = opt.apply_gradients(opt.compute_gradients(fg.square(w)), global_step=step)
    sess = fg.Session()
    assert int(sess.run(step)) == 0
    sess.run(train)
    sess.run(apply)
    sess.run(train)
    assert int(sess.run(step)) == 3


def test_global_step_under_a_name_scope_is_still_global_step():
    with fg.name_scope("model"):
        step = fg.train.get_or_create_global_step()
    assert step.op.name == "global_step"


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay_is_tf1s_formula(staircase):
    step = fg.train.get_or_create_global_step()
    lr = fg.train.exponential_decay(fg.constant(0.5, fg.float64), step, 3, 0.6,
                                    staircase=staircase)
    bump = step.assign_add(np.int64(1))
    sess = fg.Session()
    for k in range(8):
        p = k // 3 if staircase else k / 3
        np.testing.assert_allclose(sess.run(lr), 0.5 * 0.6 ** p, rtol=1e-14)
        sess.run(bump)
    assert fg.train.exponential_decay(0.1, step, 10, 0.9).dtype == np.float32


def test_the_learning_rate_schedule_drives_training():
    step = fg.train.get_or_create_global_step()
    lr = fg.train.piecewise_constant(step, [1, 2], [0.5, 0.25, 0.125])
    w = fg.Variable(np.float32(0.0), name="w")
    train = fg.train.GradientDescentOptimizer(lr).minimize(-w, global_step=step)
    sess = fg.Session()
    moves = []
    for _ in range(4):
        before = float(sess.variable_value(w))
        sess.run(train)
        moves.append(float(sess.variable_value(w)) - before)
    # step k uses the rate of k (read at the start of the run): 0.5, 0.5, 0.25, 0.125
    assert moves == [0.5, 0.5, 0.25, 0.125]


def test_piecewise_constant_boundaries_and_errors():
    x = fg.placeholder(fg.float32, ())
    pc = fg.train.piecewise_constant(x, [0.5, 1.5], [10, 20, 30])
    sess = fg.Session()
    got = [int(sess.run(pc, {x: v})) for v in (-1.0, 0.5, 0.6, 1.5, 1.6)]
    assert got == [10, 10, 20, 20, 30]
    with pytest.raises(ValueError, match="len"):
        fg.train.piecewise_constant(x, [0.5], [1.0])
