"""Classic TF1 programs ported as a new user would (replace ``tf.`` by ``fg.``):
a two-layer MLP softmax classifier with Adam, accuracy by argmax, Saver save/restore by
the TF1 prefix; a dynamic_rnn classifier over padded sequences with
sequence_length, dropout, clipped gradients and a learning-rate schedule; and the CNN
tutorial of examples/mnist_cnn.py (conv, pooling, batch normalization, dropout, L2). They use
the TF1 spellings the API audit added (tf.to_float, tf.train.global_step, restore
by prefix, local_variables_initializer, MultiRNNCell(state_is_tuple=True)...)."""
import os

import numpy as np

import flowgraph as fg


def test_tf1_mlp_softmax_classifier_with_saver(tmp_path):
    rng = np.random.RandomState(0)
    n, d, c = 256, 10, 3
    data = rng.randn(n, d).astype(np.float32)
    labels = np.argmax(data @ rng.randn(d, c), 1)

    x = fg.placeholder(fg.float32, [None, d], name="x")
    y_ = fg.placeholder(fg.int64, [None], name="y")
    w1 = fg.Variable(fg.truncated_normal([d, 32], stddev=0.1, seed=1), name="W1")
    b1 = fg.Variable(fg.constant(0.1, shape=[32]), name="b1")
    h = fg.nn.relu(fg.matmul(x, w1) + b1)
    w2 = fg.get_variable("W2", [32, c], initializer=fg.glorot_normal_initializer(seed=2))
    b2 = fg.get_variable("b2", [c], initializer=fg.zeros_initializer())
    logits = fg.nn.xw_plus_b(h, w2, b2)
    loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(labels=y_,
                                                                         logits=logits))
    step = fg.train.get_or_create_global_step()
    train = fg.train.AdamOptimizer(1e-2).minimize(loss, global_step=step)
    correct = fg.equal(fg.argmax(logits, 1), y_)
    accuracy = fg.reduce_mean(fg.to_float(correct))
    saver = fg.train.Saver(max_to_keep=3)
    with fg.Session() as sess:
        sess.run([fg.global_variables_initializer(), fg.local_variables_initializer()])
        for i in range(150):
            idx = rng.randint(0, n, 32)
            sess.run(train, feed_dict={x: data[idx], y_: labels[idx]})
        acc = accuracy.eval(feed_dict={x: data, y_: labels})
        assert acc > 0.9
        assert fg.train.global_step(sess, step) == 150
        saver.save(sess, os.path.join(tmp_path, "model.ckpt"), global_step=step,
                   write_meta_graph=False)
    with fg.Session() as sess:
        saver.restore(sess, os.path.join(tmp_path, "model.ckpt-150"))   # TF1's prefix
        assert sess.run(accuracy, {x: data, y_: labels}) == acc


def test_tf1_dynamic_rnn_classifier_with_sequence_length():
    rng = np.random.RandomState(1)
    n, t, f, hidden = 128, 8, 3, 16
    data = rng.randn(n, t, f).astype(np.float32)
    lengths = rng.randint(1, t + 1, n).astype(np.int32)
    labels = np.array([int(data[i, :lengths[i], 0].sum() > 0) for i in range(n)])

    fg.set_random_seed(0)
    x = fg.placeholder(fg.float32, [None, t, f])
    seqlen = fg.placeholder(fg.int32, [None])
    y = fg.placeholder(fg.int32, [None])
    keep_prob = fg.placeholder_with_default(1.0, shape=[])
    cells = [fg.nn.rnn_cell.DropoutWrapper(fg.nn.rnn_cell.LSTMCell(hidden),
                                           output_keep_prob=keep_prob)
             for _ in range(2)]
    cell = fg.nn.rnn_cell.MultiRNNCell(cells, state_is_tuple=True)
    outputs, state = fg.nn.dynamic_rnn(cell, x, sequence_length=seqlen, dtype=fg.float32)
    logits = fg.layers.dense(state[-1].h, 2)
    loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    step = fg.train.get_or_create_global_step()
    lr = fg.train.exponential_decay(0.02, step, 50, 0.5, staircase=True)
    opt = fg.train.AdamOptimizer(lr)
    grads, tvars = zip(*opt.compute_gradients(loss))
    clipped, _ = fg.clip_by_global_norm(grads, 5.0)
    train = opt.apply_gradients(zip(clipped, tvars), global_step=step)
    pred = fg.argmax(logits, axis=1, output_type=fg.int32)
    accuracy = fg.reduce_mean(fg.cast(fg.equal(pred, y), fg.float32))
    with fg.Session() as sess:
        sess.run(fg.global_variables_initializer())
        for _ in range(120):
            i = rng.randint(0, n, 32)
            sess.run(train, {x: data[i], seqlen: lengths[i], y: labels[i], keep_prob: 0.9})
        assert sess.run(accuracy, {x: data, seqlen: lengths, y: labels}) > 0.8
        out, last = sess.run([outputs, state[-1].h], {x: data[:4], seqlen: lengths[:4]})
    for b in range(4):           # zeros past each length; the state is the last output
        assert not out[b, lengths[b]:].any()
        np.testing.assert_allclose(out[b, lengths[b] - 1], last[b], rtol=1e-6)


def _mnist_cnn_steps(config, steps=4, batch=16, learning_rate=1e-4):
    """The losses of ``steps`` training steps of examples/mnist_cnn.py's model (dropout
    and batch normalization in training mode), and its variables after them."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    import mnist_cnn
    images, labels = mnist_cnn.synthetic_mnist(steps * batch, seed=3)
    with fg.Graph().as_default():
        m = mnist_cnn.build_model(learning_rate=learning_rate, seed=5)
        with fg.Session(config=config) as sess:
            sess.run(fg.global_variables_initializer())
            losses = []
            for i in range(steps):
                feed = {m.x: images[i * batch:(i + 1) * batch],
                        m.y_: labels[i * batch:(i + 1) * batch], m.is_training: True}
                losses.append(sess.run([m.train_op, m.loss], feed)[1])
            variables = sess.run(fg.global_variables())
    return np.array(losses), variables


def test_tf1_mnist_cnn_compiled_matches_the_reference_and_learns():
    """TF1's CNN tutorial (examples/mnist_cnn.py): conv, max_pool, batch_normalization
    with a training placeholder and UPDATE_OPS, dropout, kernel_regularizer's L2 and
    Adam. The compiled step computes what the NumPy reference computes (losses and
    every variable, the moving averages included, after several steps), and the loss
    falls."""
    from reference_runs import OPT, REF
    ref_losses, ref_vars = _mnist_cnn_steps(REF)
    opt_losses, opt_vars = _mnist_cnn_steps(OPT)
    np.testing.assert_allclose(opt_losses, ref_losses, rtol=2e-4)
    # At the tutorial's learning rate 1e-4 the paths agree to about 2e-6 in norm after
    # 4 steps (at 1e-3 the loss jumps about and they drift apart to 1e-3 by step 4,
    # from 1e-6 after the first): every variable, moving averages and Adam's slots
    # included, held to 1e-4 in norm.
    for r, o in zip(ref_vars, opt_vars):
        assert np.linalg.norm(o - r) <= 1e-4 * np.linalg.norm(r) + 1e-7, (r, o)
    losses, _ = _mnist_cnn_steps(OPT, steps=25, learning_rate=1e-3)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])


def test_tf1_layers_initialize_the_same_weights_under_a_graph_seed():
    """TF1: with ``tf.set_random_seed`` a ``tf.layers`` program initializes the same
    kernels every run (get_variable's glorot_uniform_initializer takes its seed from
    the graph's); without one they differ."""
    def kernels(seed):
        with fg.Graph().as_default():
            if seed is not None:
                fg.set_random_seed(seed)
            x = fg.placeholder(fg.float32, [None, 8, 8, 1])
            h = fg.layers.conv2d(x, 4, 3, name="conv")
            fg.layers.dense(fg.layers.flatten(h), 3, name="fc")
            with fg.Session() as sess:
                sess.run(fg.global_variables_initializer())
                return sess.run([v for v in fg.trainable_variables() if "kernel" in v.name])
    for a, b in zip(kernels(7), kernels(7)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(kernels(7)[1], kernels(8)[1])
    assert not np.array_equal(kernels(None)[1], kernels(None)[1])
    limit = np.sqrt(6.0 / (3 * 3 * 1 + 3 * 3 * 4))           # Glorot-uniform's, TF1's fans
    assert np.abs(kernels(7)[0]).max() <= limit
