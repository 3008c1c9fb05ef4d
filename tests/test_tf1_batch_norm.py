"""fg.layers.batch_normalization / BatchNormalization and fg.contrib.layers.batch_norm:
TF1's forward pass, variables and collections, moving-average updates in UPDATE_OPS,
a training flag that is a bool or a boolean tensor; checked against NumPy written
from the definitions (Ioffe & Szegedy's normalization, TF1's assign_moving_average)."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.testing import check_gradients


def np_batch_norm(x, mean, var, gamma, beta, eps, axis):
    """The definition: gamma * (x - mean) / sqrt(var + eps) + beta, parameters along
    ``axis``."""
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    r = [np.reshape(v, shape) for v in (mean, var, gamma, beta)]
    return r[2] * (x - r[0]) / np.sqrt(r[1] + eps) + r[3]


def np_moments(x, axis):
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    return x.mean(axis=axes), x.var(axis=axes)          # the biased variance


def initialized(values):
    return fg.constant_initializer(np.asarray(values))


@pytest.mark.parametrize("shape,axis", [((6, 3), -1), ((4, 3, 5, 2), -1),
                                        ((4, 3, 5, 2), 1), ((5, 4, 3), 1)])
def test_forward_training_and_inference_equal_the_definition(shape, axis):
    rng = np.random.default_rng(0)
    xv = rng.normal(2.0, 3.0, size=shape)
    c = shape[axis]
    gamma, beta = rng.uniform(0.5, 2, c), rng.normal(size=c)
    mm, mv = rng.normal(size=c), rng.uniform(0.5, 2, c)
    x = fg.placeholder(fg.float64, (None,) + shape[1:])
    kw = dict(axis=axis, gamma_initializer=initialized(gamma),
              beta_initializer=initialized(beta), moving_mean_initializer=initialized(mm),
              moving_variance_initializer=initialized(mv), epsilon=1e-3)
    y_train = fg.layers.batch_normalization(x, training=True, **kw)
    y_infer = fg.layers.batch_normalization(x, training=False, **kw)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    mean, var = np_moments(xv, axis)
    np.testing.assert_allclose(sess.run(y_train, {x: xv}),
                               np_batch_norm(xv, mean, var, gamma, beta, 1e-3, axis),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sess.run(y_infer, {x: xv}),
                               np_batch_norm(xv, mm, mv, gamma, beta, 1e-3, axis),
                               rtol=1e-12, atol=1e-12)
    # training=False (a Python bool) makes no update op; training=True makes two
    assert len(fg.get_collection(fg.GraphKeys.UPDATE_OPS)) == 2


def test_training_output_has_zero_mean_and_unit_variance_per_feature():
    """TF1's documented behaviour (normalization_test.py's testComputation checks the
    same): with gamma 1, beta 0, each feature of the output has mean 0 and variance
    var / (var + epsilon)."""
    rng = np.random.default_rng(1)
    xv = rng.normal(5.0, 10.0, size=(64, 4)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 4))
    y = fg.layers.batch_normalization(x, training=True)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    out = sess.run(y, {x: xv})
    var = xv.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=0), var / (var + 1e-3), rtol=1e-5)


def run_steps(sess, update_ops, x, batches, feed=None):
    for b in batches:
        sess.run(update_ops, {x: b, **(feed or {})})


@pytest.mark.parametrize("shape,dtype,unbiased", [
    ((8, 3), np.float64, False),          # TF1's non-fused layer: tf.nn.moments
    ((8, 3), np.float32, False),
    ((2, 3, 4, 3), np.float64, False),    # TF1's fused kernel takes no float64
    ((2, 3, 4, 3), np.float32, True)])    # 4-D float32: the fused kernel's variance
def test_moving_statistics_follow_tf1s_recurrence(shape, dtype, unbiased):
    rng = np.random.default_rng(2)
    batches = [rng.normal(1.0, 2.0, size=shape).astype(dtype) for _ in range(5)]
    x = fg.placeholder(dtype, (None,) + shape[1:])
    layer = fg.layers.BatchNormalization(momentum=0.9)
    layer(x, training=True)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    run_steps(sess, fg.get_collection(fg.GraphKeys.UPDATE_OPS), x, batches)
    mm, mv = np.zeros(3), np.ones(3)
    for b in batches:
        mean, var = np_moments(b.astype(np.float64), -1)
        if unbiased:
            n = b.size / 3
            var = var * n / (n - 1)
        mm = mm - (1 - 0.9) * (mm - mean)
        mv = mv - (1 - 0.9) * (mv - var)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(sess.run(layer.moving_mean), mm, rtol=tol, atol=tol)
    np.testing.assert_allclose(sess.run(layer.moving_variance), mv, rtol=tol, atol=tol)


def test_fused_false_and_a_dynamic_batch_follow_tf1():
    """fused=False takes the biased variance for 4-D float32 too; with the batch known
    only at run time the unbiased factor n / (n - 1) is computed at run time."""
    rng = np.random.default_rng(3)
    xv = rng.normal(size=(2, 2, 2, 3)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, None, 2, 3))
    biased = fg.layers.BatchNormalization(momentum=0.0, fused=False)
    fused = fg.layers.BatchNormalization(momentum=0.0)
    biased(x, training=True)
    fused(x, training=True)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    sess.run(fg.get_collection(fg.GraphKeys.UPDATE_OPS), {x: xv})
    var = xv.astype(np.float64).reshape(-1, 3).var(axis=0)
    np.testing.assert_allclose(sess.run(biased.moving_variance), var, rtol=1e-5)
    np.testing.assert_allclose(sess.run(fused.moving_variance), var * 8 / 7, rtol=1e-5)


def test_a_training_placeholder_switches_modes_in_one_session():
    rng = np.random.default_rng(4)
    x = fg.placeholder(fg.float64, (None, 2))
    training = fg.placeholder(fg.bool_, ())
    y = fg.layers.batch_normalization(x, training=training, momentum=0.5)
    updates = fg.get_collection(fg.GraphKeys.UPDATE_OPS)
    with fg.control_dependencies(updates):
        step = fg.identity(y)
    mm_var, mv_var = fg.global_variables()[2:]
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    a, b = rng.normal(3, 2, (10, 2)), rng.normal(-1, 1, (10, 2))
    out = sess.run(step, {x: a, training: True})
    mean, var = np_moments(a, -1)
    np.testing.assert_allclose(out, np_batch_norm(a, mean, var, np.ones(2), np.zeros(2),
                                                  1e-3, -1), rtol=1e-12)
    mm, mv = 0.5 * mean, 0.5 * np.ones(2) + 0.5 * var
    np.testing.assert_allclose(sess.run([mm_var, mv_var]), [mm, mv], rtol=1e-12)
    # inference: the moving statistics normalize, and the update ops change nothing
    out = sess.run(step, {x: b, training: False})
    np.testing.assert_allclose(out, np_batch_norm(b, mm, mv, np.ones(2), np.zeros(2),
                                                  1e-3, -1), rtol=1e-12)
    np.testing.assert_array_equal(sess.run([mm_var, mv_var]), [mm, mv])
    sess.run(step, {x: b, training: True})              # and training again
    mean, var = np_moments(b, -1)
    np.testing.assert_allclose(sess.run([mm_var, mv_var]),
                               [0.5 * mm + 0.5 * mean, 0.5 * mv + 0.5 * var], rtol=1e-12)


@pytest.mark.parametrize("training", [True, False, "tensor"])
def test_gradients_match_finite_differences_first_and_second_order(training):
    rng = np.random.default_rng(5)
    x = fg.placeholder(fg.float64, (None, 3, 2))
    flag = fg.placeholder_with_default(True, ()) if training == "tensor" else training
    layer = fg.layers.BatchNormalization(
        axis=1, gamma_initializer=initialized(rng.uniform(0.5, 2, 3)),
        beta_initializer=initialized(rng.normal(size=3)),
        moving_variance_initializer=initialized(rng.uniform(0.5, 2, 3)))
    y = layer(x, training=flag)
    w = fg.constant(rng.normal(size=(4, 3, 2)))
    loss = fg.reduce_sum(fg.square(y) * w)         # not invariant to the normalization
    xv = rng.normal(size=(4, 3, 2))
    params = [layer.gamma, layer.beta]
    check_gradients(loss, [x] + params, {x: xv})
    g = fg.gradients(loss, [x])[0]
    hvp = fg.reduce_sum(g * fg.constant(rng.normal(size=(4, 3, 2))))
    check_gradients(hvp, [x] + params, {x: xv})


def build_training_model():
    x = fg.placeholder(fg.float32, (None, 4, 4, 2))
    labels = fg.placeholder(fg.float32, (None, 3))
    h = fg.layers.conv2d(x, 4, 3, padding="same",
                         kernel_initializer=fg.random_normal_initializer(seed=1))
    h = fg.nn.relu(fg.layers.batch_normalization(h, training=True))
    h = fg.layers.dense(fg.layers.flatten(h), 3,
                        kernel_initializer=fg.random_normal_initializer(stddev=0.1, seed=2))
    loss = fg.losses.mean_squared_error(labels, h)
    with fg.control_dependencies(fg.get_collection(fg.GraphKeys.UPDATE_OPS)):
        train = fg.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, labels, loss, train


def test_compiled_and_reference_paths_agree_over_training_steps():
    rng = np.random.default_rng(6)
    data = rng.normal(size=(8, 4, 4, 2)).astype(np.float32)
    target = rng.normal(size=(8, 3)).astype(np.float32)
    results = []
    for optimize in (True, False):
        with fg.Graph().as_default():
            x, labels, loss, train = build_training_model()
            sess = fg.Session(config=fg.SessionConfig(optimize=optimize))
            sess.run(fg.global_variables_initializer())
            for _ in range(3):
                sess.run(train, {x: data, labels: target})
            results.append(sess.run([loss] + fg.global_variables(),
                                    {x: data, labels: target}))
    for compiled, reference in zip(*results):
        np.testing.assert_allclose(compiled, reference, rtol=1e-4, atol=1e-5)
    names = None
    with fg.Graph().as_default():
        build_training_model()
        names = [v.op.name for v in fg.global_variables()]
    assert "batch_normalization/moving_mean" in names
    moving = results[0][names.index("batch_normalization/moving_mean") + 1]
    assert np.any(moving != 0)                           # the updates ran with the step


def test_variables_collections_and_names_as_tf1():
    x = fg.placeholder(fg.float32, (None, 3))
    fg.layers.batch_normalization(x)
    fg.layers.batch_normalization(x, center=False)
    fg.layers.batch_normalization(x, name="bn", trainable=False)
    assert [v.op.name for v in fg.global_variables()] == [
        "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance",
        "batch_normalization_1/gamma", "batch_normalization_1/moving_mean",
        "batch_normalization_1/moving_variance",
        "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]
    assert [v.op.name for v in fg.trainable_variables()] == [
        "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization_1/gamma"]
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    gamma, beta, mean, var = sess.run(fg.global_variables()[:4])
    assert gamma.tolist() == [1, 1, 1] and beta.tolist() == [0, 0, 0]
    assert mean.tolist() == [0, 0, 0] and var.tolist() == [1, 1, 1]
    with fg.variable_scope("outer"):
        fg.layers.batch_normalization(x)
    assert fg.global_variables()[-1].op.name == "outer/batch_normalization/moving_variance"


def test_reuse_shares_the_variables_of_a_named_layer():
    x = fg.placeholder(fg.float64, (None, 2))
    rng = np.random.default_rng(7)
    y_train = fg.layers.batch_normalization(x, training=True, name="bn", momentum=0.0)
    n_vars = len(fg.global_variables())
    y_eval = fg.layers.batch_normalization(x, training=False, name="bn", reuse=True)
    assert len(fg.global_variables()) == n_vars == 4
    with pytest.raises(ValueError, match="bn/gamma already exists"):
        fg.layers.batch_normalization(x, name="bn")
    layer = fg.layers.BatchNormalization()                    # a layer object called twice
    layer(x, training=True)
    layer(x, training=False)
    assert len(fg.global_variables()) == 8
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    xv = rng.normal(size=(5, 2))
    sess.run(fg.get_collection(fg.GraphKeys.UPDATE_OPS)[:2], {x: xv})
    np.testing.assert_allclose(sess.run(y_eval, {x: xv}), sess.run(y_train, {x: xv}),
                               rtol=1e-9)                 # momentum 0: moving = batch


def test_contrib_batch_norm_defaults_and_in_place_updates():
    rng = np.random.default_rng(8)
    xv = rng.normal(size=(6, 3)).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 3))
    y = fg.contrib.layers.batch_norm(x, updates_collections=None, activation_fn=fg.nn.relu)
    assert [v.op.name for v in fg.global_variables()] == [
        "BatchNorm/beta", "BatchNorm/moving_mean", "BatchNorm/moving_variance"]
    assert fg.get_collection(fg.GraphKeys.UPDATE_OPS) == []
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    out = sess.run(y, {x: xv})                      # updates run with the output
    mean, var = np_moments(xv.astype(np.float64), -1)
    np.testing.assert_allclose(out, np.maximum(0, (xv - mean) / np.sqrt(var + 1e-3)),
                               rtol=1e-4, atol=1e-5)
    mm, mv = sess.run(fg.global_variables()[1:])
    np.testing.assert_allclose(mm, 0.001 * mean, rtol=1e-4)   # decay 0.999
    np.testing.assert_allclose(mv, 0.999 + 0.001 * var * 6 / 5, rtol=1e-5)   # fused
    assert len(fg.get_collection(fg.GraphKeys.MODEL_VARIABLES)) == 3


def test_bad_arguments_raise_clear_errors():
    x = fg.placeholder(fg.float32, (None, 3))
    with pytest.raises(ValueError, match="invalid axis 2"):
        fg.layers.batch_normalization(x, axis=2)
    with pytest.raises(ValueError, match="duplicate axis"):
        fg.layers.batch_normalization(x, axis=[1, -1])
    with pytest.raises(ShapeError, match="axis 1 .*must be known"):
        fg.layers.batch_normalization(fg.placeholder(fg.float32, (None, None)))
    with pytest.raises(ShapeError, match="rank must be known"):
        fg.layers.batch_normalization(fg.placeholder(fg.float32))
    for kw in ({"renorm": True}, {"virtual_batch_size": 2},
               {"adjustment": lambda s: (1.0, 0.0)}):
        with pytest.raises(NotImplementedError, match=next(iter(kw))):
            fg.layers.batch_normalization(x, **kw)
    with pytest.raises(ValueError, match="boolean scalar tensor"):
        fg.layers.batch_normalization(x, training=fg.placeholder(fg.float32, ()))
    with pytest.raises(ValueError, match="float inputs"):
        fg.layers.batch_normalization(fg.placeholder(fg.int32, (None, 3)))
    layer = fg.layers.BatchNormalization()
    layer(x)
    with pytest.raises(ShapeError, match="built for"):
        layer(fg.placeholder(fg.float32, (None, 4)))


@pytest.mark.usefixtures("needs_gpu")
def test_batch_norm_training_step_on_gpu_equals_cpu():
    """The layer is a composition of existing ops: on /gpu:0 its output, gradients and
    update ops give the CPU's numbers (the simulator where there is no GPU)."""
    from flowgraph.testing import compare_devices
    rng = np.random.default_rng(9)
    xv = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)

    def build():
        x = fg.placeholder(fg.float32, (None, 3, 3, 2))
        training = fg.placeholder_with_default(True, ())
        y = fg.layers.batch_normalization(x, training=training,
                                          gamma_initializer=initialized([0.5, 2.0]))
        loss = fg.reduce_sum(fg.square(y) * fg.constant(xv))
        grads = fg.gradients(loss, [x] + fg.trainable_variables())
        return [y, *grads, *fg.get_collection(fg.GraphKeys.UPDATE_OPS)], {x: xv}
    results = compare_devices(build, devices=("/cpu:0", "/gpu:0"), rtol=1e-4, atol=1e-5)
    mean, var = np_moments(xv.astype(np.float64), -1)
    np.testing.assert_allclose(results["/gpu:0"][-2], 0.01 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results["/gpu:0"][-1], 0.99 + 0.01 * var * 18 / 17,
                               rtol=1e-5)
