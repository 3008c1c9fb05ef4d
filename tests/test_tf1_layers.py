"""fg.layers, TF1's tf.layers: dense over the last axis with TF1's names, initializers
and reuse; dropout with a rate and a training flag (a bool or a boolean tensor)."""
import numpy as np
import pytest

import flowgraph as fg
from flowgraph.errors import ShapeError
from flowgraph.testing import check_gradients


def test_dense_over_the_last_axis_equals_numpy_and_its_gradients_check():
    x = fg.placeholder(fg.float64, (None, None, 3))
    y = fg.layers.dense(x, 4, activation=fg.tanh, name="proj")
    kernel, bias = fg.trainable_variables()
    assert (kernel.op.name, bias.op.name) == ("proj/kernel", "proj/bias")
    assert y.shape == (None, None, 4)
    rng = np.random.default_rng(0)
    xv = rng.normal(size=(2, 5, 3))
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    w, b = sess.run([kernel, bias])
    assert np.all(b == 0) and np.any(w != 0)       # TF1: zeros bias, Glorot kernel
    np.testing.assert_allclose(sess.run(y, {x: xv}), np.tanh(xv @ w + b), rtol=1e-12)
    assert check_gradients(y, [x, kernel, bias], {x: xv}) < 1e-6


def test_dense_name_and_reuse_share_a_layer_as_in_tf1():
    a = fg.placeholder(fg.float32, (None, 3))
    b = fg.placeholder(fg.float32, (None, 3))
    ya = fg.layers.dense(a, 2, name="out")
    yb = fg.layers.dense(b, 2, name="out", reuse=True)
    assert [v.op.name for v in fg.global_variables()] == ["out/kernel", "out/bias"]
    with pytest.raises(ValueError, match="out/kernel already exists"):
        fg.layers.dense(a, 2, name="out")
    unnamed = [fg.layers.dense(a, 2), fg.layers.dense(a, 2)]
    assert [v.op.name for v in fg.global_variables()][-4:] == [
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    v = np.ones((1, 3), np.float32)
    first, second = sess.run([ya, yb], {a: v, b: v})
    np.testing.assert_array_equal(first, second)
    assert unnamed[0].shape == (None, 2)


def test_dense_takes_tf1_initializers():
    x = fg.placeholder(fg.float32, (None, 3))
    layer = fg.layers.Dense(2, kernel_initializer=fg.constant_initializer(0.5),
                            bias_initializer=fg.constant_initializer(-1.0))
    y = layer(x)
    sess = fg.Session()
    sess.run(fg.global_variables_initializer())
    np.testing.assert_array_equal(sess.run(y, {x: np.ones((1, 3), np.float32)}),
                                  [[0.5, 0.5]])
    with pytest.raises(ShapeError, match="rank 2 or more"):
        fg.layers.dense(fg.placeholder(fg.float32, (3,)), 2)


def test_dropout_follows_its_training_flag():
    x = fg.placeholder(fg.float32, (200, 50))
    assert fg.layers.dropout(x, 0.3) is x                       # training=False
    flag = fg.placeholder(fg.bool_, ())
    y = fg.layers.dropout(x, 0.3, training=flag, seed=1)
    static = fg.layers.dropout(x, 0.3, training=True, seed=1)
    xv = np.random.default_rng(0).uniform(1, 2, size=(200, 50)).astype(np.float32)
    sess = fg.Session()
    np.testing.assert_array_equal(sess.run(y, {x: xv, flag: False}), xv)
    for out in (sess.run(y, {x: xv, flag: True}), sess.run(static, {x: xv})):
        kept = out != 0
        assert 0.65 < kept.mean() < 0.75
        np.testing.assert_allclose(out[kept], xv[kept] / 0.7, rtol=1e-6)


def test_dropout_rejects_a_training_flag_that_is_not_boolean():
    with pytest.raises(ValueError, match="boolean scalar tensor"):
        fg.layers.dropout(fg.ones((2, 2)), 0.5, training=fg.placeholder(fg.float32, ()))
    with pytest.raises(ValueError, match=r"rate in \[0, 1\)"):
        fg.layers.dropout(fg.ones((2, 2)), 1.0, training=fg.placeholder(fg.bool_, ()))
