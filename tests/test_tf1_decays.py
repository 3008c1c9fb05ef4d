"""TF1's polynomial_decay, cosine_decay, natural_exp_decay and inverse_time_decay against
their formulas (learning_rate_decay.py) written in NumPy, over steps before, at and past
decay_steps; cycle and staircase; the learning rate's dtype kept (float32 for a Python
number); one drives an optimizer through the global step."""
import math

import numpy as np
import pytest

import flowgraph as fg

STEPS = [0, 1, 3, 7, 10, 11, 25, 100]


def polynomial(lr, step, decay_steps, end, power, cycle):
    if cycle:
        decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (lr - end) * (1 - step / decay_steps) ** power + end


def cosine(lr, step, decay_steps, alpha):
    step = min(step, decay_steps)
    return lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)


def natural_exp(lr, step, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr * math.exp(-rate * (math.floor(p) if staircase else p))


def inverse_time(lr, step, decay_steps, rate, staircase):
    p = step / decay_steps
    return lr / (1 + rate * (math.floor(p) if staircase else p))


CASES = [
    ("polynomial", lambda s: fg.train.polynomial_decay(0.1, s, 10, 0.001, 1.0),
     lambda k: polynomial(0.1, k, 10, 0.001, 1.0, False)),
    ("polynomial_power", lambda s: fg.train.polynomial_decay(0.1, s, 10, 0.01, 0.5),
     lambda k: polynomial(0.1, k, 10, 0.01, 0.5, False)),
    ("polynomial_cycle", lambda s: fg.train.polynomial_decay(0.1, s, 10, 0.01, 2.0, True),
     lambda k: polynomial(0.1, k, 10, 0.01, 2.0, True)),
    ("cosine", lambda s: fg.train.cosine_decay(0.2, s, 10), lambda k: cosine(0.2, k, 10, 0.0)),
    ("cosine_alpha", lambda s: fg.train.cosine_decay(0.2, s, 10, alpha=0.3),
     lambda k: cosine(0.2, k, 10, 0.3)),
    ("natural_exp", lambda s: fg.train.natural_exp_decay(0.1, s, 4, 0.5),
     lambda k: natural_exp(0.1, k, 4, 0.5, False)),
    ("natural_exp_staircase", lambda s: fg.train.natural_exp_decay(0.1, s, 4, 0.5, True),
     lambda k: natural_exp(0.1, k, 4, 0.5, True)),
    ("inverse_time", lambda s: fg.train.inverse_time_decay(0.1, s, 4, 0.5),
     lambda k: inverse_time(0.1, k, 4, 0.5, False)),
    ("inverse_time_staircase", lambda s: fg.train.inverse_time_decay(0.1, s, 4, 0.5, True),
     lambda k: inverse_time(0.1, k, 4, 0.5, True)),
]


@pytest.mark.parametrize("name,build,formula", CASES, ids=[c[0] for c in CASES])
def test_schedules_follow_tf1s_formulas(name, build, formula):
    step = fg.placeholder(fg.int64, ())
    lr = build(step)
    assert lr.dtype == fg.float32
    with fg.Session() as sess:
        got = [float(sess.run(lr, {step: k})) for k in STEPS]
    np.testing.assert_allclose(got, [formula(k) for k in STEPS], rtol=2e-6, atol=1e-8)


def test_float64_learning_rate_and_tensor_arguments_keep_float64():
    step = fg.placeholder(fg.int32, ())
    rates = [fg.train.polynomial_decay(fg.constant(0.1, fg.float64), step,
                                       fg.constant(10), power=fg.constant(2.0)),
             fg.train.cosine_decay(np.float64(0.1), step, 10),
             fg.train.natural_exp_decay(np.float64(0.1), step, 10, fg.constant(0.5)),
             fg.train.inverse_time_decay(np.float64(0.1), step, 10, 0.5)]
    assert all(r.dtype == fg.float64 for r in rates)
    got = fg.Session().run(rates, {step: 4})
    np.testing.assert_allclose(got, [polynomial(0.1, 4, 10, 1e-4, 2.0, False),
                                     cosine(0.1, 4, 10, 0.0), natural_exp(0.1, 4, 10, 0.5, False),
                                     inverse_time(0.1, 4, 10, 0.5, False)], rtol=1e-14)


def test_a_decay_drives_gradient_descent_through_the_global_step():
    step = fg.train.get_or_create_global_step()
    lr = fg.train.cosine_decay(1.0, step, 4)
    w = fg.Variable(0.0)
    train = fg.train.GradientDescentOptimizer(lr).minimize(-w, global_step=step)
    with fg.Session() as sess:
        sess.run(fg.global_variables_initializer())
        for _ in range(6):
            sess.run(train)
        # w grows by the rate of each step taken: steps 0..5, clipped at 4
        want = sum(cosine(1.0, k, 4, 0.0) for k in range(6))
        assert abs(float(sess.run(w)) - want) < 1e-6 and int(sess.run(step)) == 6


def test_missing_global_step_is_a_value_error():
    for fn in (fg.train.polynomial_decay, fg.train.cosine_decay):
        with pytest.raises(ValueError, match="expected a global_step"):
            fn(0.1, None, 10)
