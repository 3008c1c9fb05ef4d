"""Two classic TF1 programs ported as a new user would (replace ``tf.`` by ``fg.``):
a two-layer MLP softmax classifier with Adam, accuracy by argmax, Saver save/restore by
the TF1 prefix; and a dynamic_rnn classifier over padded sequences with
sequence_length, dropout, clipped gradients and a learning-rate schedule. They use
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
