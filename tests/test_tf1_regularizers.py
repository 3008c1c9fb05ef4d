"""TF1's weight regularizers: fg.contrib.layers.l1/l2/l1_l2/sum_regularizer and
apply_regularization, the regularizer= of get_variable and variable_scope, the
kernel_/bias_/activity_regularizer of fg.layers, and fg.losses'
get_regularization_loss(es) / get_total_loss. Values from TF1's formulas
(l2_regularizer: scale * sum(w**2) / 2, i.e. scale * tf.nn.l2_loss)."""
import numpy as np
import pytest

import flowgraph as fg

W = np.array([[1.0, -2.0], [0.5, 3.0]])


def value(t):
    return fg.Session().run(t)


def test_regularizer_values_follow_tf1s_formulas():
    w = fg.constant(W)
    cl = fg.contrib.layers
    assert value(cl.l1_regularizer(0.1)(w)) == pytest.approx(0.1 * np.abs(W).sum())
    assert value(cl.l2_regularizer(0.1)(w)) == pytest.approx(0.1 * (W ** 2).sum() / 2)
    both = cl.l1_l2_regularizer(0.1, 0.2)(w)
    assert value(both) == pytest.approx(0.1 * np.abs(W).sum() + 0.2 * (W ** 2).sum() / 2)
    summed = cl.sum_regularizer([cl.l1_regularizer(0.3), None, cl.l2_regularizer(0.0),
                                 cl.l2_regularizer(1.0)])(w)
    assert value(summed) == pytest.approx(0.3 * np.abs(W).sum() + (W ** 2).sum() / 2)
    # TF1's documented example: tf.nn.l2_loss([3, 4]) = 12.5, scaled
    assert value(cl.l2_regularizer(0.5)(fg.constant([3.0, 4.0]))) == pytest.approx(6.25)
    assert cl.l2_regularizer(0.0)(w) is None and cl.l1_regularizer(0.0)(w) is None
    assert cl.sum_regularizer([None]) is None
    assert value(cl.l1_l2_regularizer(0.0, 0.5)(w)) == pytest.approx(0.5 * (W ** 2).sum() / 2)
    assert cl.l2_regularizer(0.5)(w).name.startswith("l2_regularizer")     # TF1's name
    assert cl.l2_regularizer(0.5)(fg.constant([1.0], fg.float32)).dtype == fg.float32


def test_bad_scales_raise_as_in_tf1():
    with pytest.raises(ValueError, match="scale cannot be an integer"):
        fg.contrib.layers.l2_regularizer(1)
    with pytest.raises(ValueError, match="less than 0"):
        fg.contrib.layers.l1_regularizer(-0.1)


def test_get_variable_regularizer_adds_one_loss_per_creation_not_on_reuse():
    reg = fg.contrib.layers.l2_regularizer(0.1)
    with fg.variable_scope("a"):
        w = fg.get_variable("w", initializer=W, regularizer=reg)
        fg.get_variable("u", initializer=W)                  # no regularizer
    with fg.variable_scope("a", reuse=True):
        assert fg.get_variable("w") is w
    with fg.variable_scope("a", reuse=fg.AUTO_REUSE):
        fg.get_variable("w", regularizer=reg)
    losses = fg.losses.get_regularization_losses()
    assert [t.name for t in losses] == ["a/w/Regularizer/l2_regularizer:0"]
    assert fg.get_collection(fg.GraphKeys.REGULARIZATION_LOSSES) == losses
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    assert sess.run(fg.losses.get_regularization_loss()) == pytest.approx(
        0.1 * (W ** 2).sum() / 2)


def test_a_scopes_regularizer_is_the_default_inside_and_inherited():
    with fg.variable_scope("net", regularizer=fg.contrib.layers.l1_regularizer(1.0)):
        fg.get_variable("a", initializer=np.array([1.0, -1.0]))
        with fg.variable_scope("inner"):
            fg.get_variable("b", initializer=np.array([2.0]))
            fg.get_variable("c", initializer=np.array([5.0]),
                            regularizer=fg.contrib.layers.l2_regularizer(1.0))
        fg.layers.dense(fg.placeholder(fg.float64, (None, 2)), 1,
                        kernel_initializer=fg.ones_initializer())
    with fg.variable_scope("free"):
        fg.get_variable("d", initializer=np.array([7.0]))
    names = [t.name for t in fg.losses.get_regularization_losses()]
    assert names == ["net/a/Regularizer/l1_regularizer:0",
                     "net/inner/b/Regularizer/l1_regularizer:0",
                     "net/inner/c/Regularizer/l2_regularizer:0",
                     "net/dense/kernel/Regularizer/l1_regularizer:0",
                     "net/dense/bias/Regularizer/l1_regularizer:0"]
    assert [t.name for t in fg.losses.get_regularization_losses("net/inner")] == names[1:3]
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    assert sess.run(fg.losses.get_regularization_loss()) == pytest.approx(
        2.0 + 2.0 + 12.5 + 2.0 + 0.0)
    assert sess.run(fg.losses.get_regularization_loss("net/inner")) == pytest.approx(14.5)


def test_get_variable_keeps_a_positional_trainable_flag():
    v = fg.get_variable("v", (2,), fg.float32, fg.zeros_initializer(), False)
    assert v not in fg.trainable_variables() and not fg.losses.get_regularization_losses()


def test_dense_and_conv2d_regularizers_as_tf1():
    x = fg.placeholder(fg.float64, (None, 2))
    reg = fg.contrib.layers.l2_regularizer(0.5)
    y = fg.layers.dense(x, 3, kernel_initializer=fg.ones_initializer(),
                        bias_initializer=fg.constant_initializer(2.0),
                        kernel_regularizer=reg, bias_regularizer=reg,
                        activity_regularizer=fg.contrib.layers.l1_regularizer(0.1),
                        name="fc")
    fg.layers.dense(x, 3, name="fc", reuse=True, kernel_regularizer=reg)   # no new loss
    img = fg.placeholder(fg.float64, (None, 4, 4, 1))
    fg.layers.conv2d(img, 2, 3, kernel_initializer=fg.ones_initializer(),
                     kernel_regularizer=fg.contrib.layers.l1_regularizer(1.0))
    losses = fg.losses.get_regularization_losses()
    names = [t.name for t in losses]
    assert names[:2] + names[3:] == [
        "fc/kernel/Regularizer/l2_regularizer:0", "fc/bias/Regularizer/l2_regularizer:0",
        "conv2d/kernel/Regularizer/l1_regularizer:0"]
    assert names[2].startswith("fc/ActivityRegularizer/")
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    xv = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 1.0]])
    out = xv @ np.ones((2, 3)) + 2.0
    got = sess.run(losses, {x: xv})
    np.testing.assert_allclose(got, [0.5 * 6 / 2, 0.5 * 12 / 2,
                                     0.1 * np.abs(out).sum() / 3,   # TF1: / batch size
                                     1.0 * 18], rtol=1e-12)
    assert sess.run(y, {x: xv}).shape == (3, 3)


def test_conv1d_and_conv2d_transpose_take_the_same_regularizers():
    """The layers built on Conv2D keep its regularizer arguments (TF1's order)."""
    seq = fg.placeholder(fg.float64, (None, 5, 2))
    fg.layers.conv1d(seq, 3, 2, kernel_initializer=fg.ones_initializer(),
                     bias_initializer=fg.constant_initializer(1.0),
                     kernel_regularizer=fg.contrib.layers.l2_regularizer(0.5),
                     bias_regularizer=fg.contrib.layers.l1_regularizer(2.0))
    img = fg.placeholder(fg.float64, (None, 2, 2, 3))
    up = fg.layers.conv2d_transpose(
        img, 2, 3, strides=2, padding="same", kernel_initializer=fg.ones_initializer(),
        kernel_regularizer=fg.contrib.layers.l1_regularizer(1.0),
        activity_regularizer=fg.contrib.layers.l2_regularizer(1.0))
    losses = fg.losses.get_regularization_losses()
    names = [t.name for t in losses]
    assert names[:3] == ["conv1d/kernel/Regularizer/l2_regularizer:0",
                         "conv1d/bias/Regularizer/l1_regularizer:0",
                         "conv2d_transpose/kernel/Regularizer/l1_regularizer:0"]
    assert names[3].startswith("conv2d_transpose/ActivityRegularizer/")
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    iv = np.random.default_rng(0).normal(size=(4, 2, 2, 3))
    out = sess.run(up, {img: iv})
    got = sess.run(losses, {img: iv})
    np.testing.assert_allclose(got, [0.5 * (2 * 2 * 3) / 2, 2.0 * 3, 1.0 * (3 * 3 * 2 * 3),
                                     np.sum(out ** 2) / 2 / 4], rtol=1e-12)
    with pytest.raises(NotImplementedError, match="kernel_constraint"):
        fg.layers.conv1d(seq, 1, 1, kernel_constraint=lambda w: w)


def test_constraints_raise_not_implemented():
    x = fg.placeholder(fg.float32, (None, 2))
    with pytest.raises(NotImplementedError, match="kernel_constraint"):
        fg.layers.dense(x, 2, kernel_constraint=lambda w: w)
    with pytest.raises(NotImplementedError, match="bias_constraint"):
        fg.layers.conv2d(fg.placeholder(fg.float32, (None, 3, 3, 1)), 1, 1,
                         bias_constraint=lambda w: w)


def test_total_loss_includes_the_regularization_losses_as_tf1():
    x = fg.placeholder(fg.float64, (None, 2))
    y = fg.layers.dense(x, 1, kernel_initializer=fg.ones_initializer(),
                        kernel_regularizer=fg.contrib.layers.l2_regularizer(0.1))
    mse = fg.losses.mean_squared_error(fg.zeros_like(y), y)
    total = fg.losses.get_total_loss()
    data_only = fg.losses.get_total_loss(add_regularization_losses=False)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    xv = np.array([[1.0, 2.0]])
    m, t, d = sess.run([mse, total, data_only], {x: xv})
    assert m == pytest.approx(9.0) and d == pytest.approx(9.0)
    assert t == pytest.approx(9.0 + 0.1 * 2 / 2)
    with fg.Graph().as_default():
        assert float(fg.Session().run(fg.losses.get_regularization_loss())) == 0.0


def test_minimizing_the_regularization_loss_decays_the_weights():
    """Gradient descent on scale * l2_loss(w) alone: w <- w - lr * scale * w, exactly."""
    w = fg.get_variable("w", initializer=W,
                        regularizer=fg.contrib.layers.l2_regularizer(0.1))
    b = fg.get_variable("b", initializer=np.array([1.0, 1.0]),
                        regularizer=fg.contrib.layers.l1_regularizer(0.2))
    train = fg.train.GradientDescentOptimizer(0.5).minimize(
        fg.losses.get_regularization_loss())
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    for _ in range(3):
        sess.run(train)
    np.testing.assert_allclose(sess.run(w), W * (1 - 0.5 * 0.1) ** 3, rtol=1e-12)
    np.testing.assert_allclose(sess.run(b), 1.0 - 3 * 0.5 * 0.2, rtol=1e-12)


def test_the_tf1_program_of_the_readme_trains_with_update_ops_and_regularization():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(64, 4)).astype(np.float32)
    target = (data[:, :1] * 2 - data[:, 1:2]).astype(np.float32)
    x = fg.placeholder(fg.float32, (None, 4))
    t = fg.placeholder(fg.float32, (None, 1))
    is_training = fg.placeholder_with_default(False, ())
    h = fg.layers.dense(x, 16, kernel_regularizer=fg.contrib.layers.l2_regularizer(1e-4))
    h = fg.nn.relu(fg.layers.batch_normalization(h, training=is_training))
    y = fg.layers.dense(h, 1)
    loss = fg.losses.mean_squared_error(t, y)
    update_ops = fg.get_collection(fg.GraphKeys.UPDATE_OPS)
    with fg.control_dependencies(update_ops):
        train = fg.train.AdamOptimizer(1e-2).minimize(
            loss + fg.losses.get_regularization_loss())
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    kernel = fg.trainable_variables()[0]
    k0 = sess.run(kernel)
    first = sess.run(loss, {x: data, t: target, is_training: True})
    for _ in range(200):
        sess.run(train, {x: data, t: target, is_training: True})
    assert not np.allclose(sess.run(kernel), k0)
    assert sess.run(loss, {x: data, t: target, is_training: True}) < 0.1 * first
    # the moving statistics followed training: inference is close to training mode
    assert sess.run(loss, {x: data, t: target}) < 0.2 * first


def test_apply_regularization_sums_the_penalties_into_the_collection():
    ws = [fg.constant(W), fg.constant([[2.0]])]
    total = fg.contrib.layers.apply_regularization(fg.contrib.layers.l2_regularizer(1.0),
                                                   ws)
    assert fg.losses.get_regularization_losses() == [total]
    assert value(total) == pytest.approx((W ** 2).sum() / 2 + 2.0)
    with pytest.raises(ValueError, match="no weights"):
        fg.contrib.layers.apply_regularization(fg.contrib.layers.l2_regularizer(1.0))
    fg.add_to_collection(fg.GraphKeys.WEIGHTS, fg.constant([3.0]))
    assert value(fg.contrib.layers.apply_regularization(
        fg.contrib.layers.l1_regularizer(1.0))) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="scalar"):
        fg.contrib.layers.apply_regularization(lambda w: w * 2.0, ws)
