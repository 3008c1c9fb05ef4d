"""TF1 spellings found missing or different when porting TF1 programs (the API audit):
restoring a checkpoint by its TF1 prefix, tf.train.global_step, piecewise_constant's
value and boundary dtypes, Variable.load, Graph.get_operations and the module-level
collection functions."""
import os

import numpy as np
import pytest

import flowgraph as fg


def test_restore_accepts_the_prefix_without_npz(tmp_path):
    v = fg.Variable(np.arange(3, dtype=np.float32), name="v")
    step = fg.train.get_or_create_global_step()
    saver = fg.train.Saver()
    with fg.Session() as sess:
        sess.run(step.assign(7))
        path = saver.save(sess, os.path.join(tmp_path, "model.ckpt"), global_step=step)
        assert path.endswith("model.ckpt-7.npz")
        assert fg.train.global_step(sess, step) == 7
    with fg.Session() as sess:
        saver.restore(sess, os.path.join(tmp_path, "model.ckpt-7"))     # TF1's prefix
        assert int(sess.run(step)) == 7
        np.testing.assert_array_equal(sess.run(v), [0, 1, 2])
        with pytest.raises(fg.errors.CheckpointError, match="does not exist"):
            saver.restore(sess, os.path.join(tmp_path, "model.ckpt-8"))


def test_piecewise_constant_value_dtypes():
    step = fg.placeholder(fg.int64, ())
    # Python ints and floats mixed: float32, like fg.constant([1, 0.5]) (not float64).
    lr = fg.train.piecewise_constant(step, [10], [1, 0.5])
    assert lr.dtype == np.float32
    with fg.Session() as sess:
        assert [float(sess.run(lr, {step: s})) for s in (10, 11)] == [1.0, 0.5]
    # Strong dtypes that differ: TF1's ValueError.
    with pytest.raises(ValueError, match="values of one dtype.*float32.*float64"):
        fg.train.piecewise_constant(step, [10], [np.float32(1.0), np.float64(0.5)])


def test_piecewise_constant_fractional_boundary_for_an_integer_step():
    step = fg.placeholder(fg.int64, ())
    # A cast would truncate -0.5 to 0, so step 0 would get values[0]; TF1 refuses.
    with pytest.raises(ValueError, match=r"boundaries of .*int64, found -0.5"):
        fg.train.piecewise_constant(step, [-0.5], [1.0, 2.0])
    lr = fg.train.piecewise_constant(step, [10.0], [1.0, 2.0])      # exact: fine
    with fg.Session() as sess:
        assert [float(sess.run(lr, {step: s})) for s in (10, 11)] == [1.0, 2.0]


def test_variable_load_uses_the_default_session():
    v = fg.Variable([1.0, 2.0], name="v")
    with fg.Session() as sess:
        v.load([3, 4])
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])
        other = fg.Session()
        v.load([5.0, 6.0], other)
        np.testing.assert_array_equal(other.run(v), [5.0, 6.0])
        np.testing.assert_array_equal(sess.run(v), [3.0, 4.0])
    with pytest.raises(ValueError, match="no default session"):
        v.load([1.0, 2.0])


def test_graph_get_operations_and_collections():
    g = fg.get_default_graph()
    with fg.variable_scope("enc"):
        w = fg.get_variable("w", [2])
    b = fg.Variable(0.0, name="b", trainable=False)
    assert g.get_operations() == g.operations
    assert fg.get_collection(fg.GraphKeys.GLOBAL_VARIABLES) == [w, b]
    assert fg.get_collection(fg.GraphKeys.TRAINABLE_VARIABLES) == [w]
    assert fg.get_collection(fg.GraphKeys.GLOBAL_VARIABLES, scope="enc") == [w]
    assert fg.get_collection(fg.GraphKeys.UPDATE_OPS) == []
    op = fg.no_op(name="update")
    fg.add_to_collection(fg.GraphKeys.UPDATE_OPS, op)
    fg.add_to_collections(["a", "b"], op)
    assert fg.get_collection(fg.GraphKeys.UPDATE_OPS) == [op] == fg.get_collection("b")
    assert fg.get_collection(fg.GraphKeys.GLOBAL_STEP) == []
    step = fg.train.get_or_create_global_step()
    assert fg.get_collection(fg.GraphKeys.GLOBAL_STEP) == [step]


def test_minimize_takes_tf1s_keyword_arguments_and_grad_loss():
    w = fg.Variable([1.0, 2.0], name="w")
    loss = w * 3.0                                    # non-scalar: grad_loss weights it
    opt = fg.train.GradientDescentOptimizer(0.5)
    train = opt.minimize(loss, gate_gradients=1, aggregation_method=None,
                         colocate_gradients_with_ops=True,
                         grad_loss=fg.constant([1.0, 0.0]))
    with fg.Session() as sess:
        sess.run(train)
        np.testing.assert_allclose(sess.run(w), [1.0 - 1.5, 2.0])


def test_minimize_of_a_loss_that_reads_no_variable_raises_as_tf1():
    w = fg.Variable(1.0, name="w")
    u = fg.Variable(1.0, name="u")
    loss = fg.square(w)
    with pytest.raises(ValueError, match=r"No gradients provided for any variable.*"
                                         r"test_tf1_api_audit.py.*\[u:0\]"):
        fg.train.AdamOptimizer().minimize(loss, var_list=[u])
    # A variable read inside a loop body counts.
    i, acc = fg.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * u),
                           [fg.constant(0), fg.constant(1.0)])
    fg.train.GradientDescentOptimizer(0.1).minimize(acc, var_list=[u])
    with pytest.raises(fg.errors.DTypeError, match="expected a float loss.*int32"):
        fg.train.GradientDescentOptimizer(0.1).minimize(fg.constant(1), var_list=[w])


def _run(fetches):
    with fg.Session() as sess:
        return sess.run(fetches)


def test_split_with_one_inferred_size():
    x = fg.constant(np.arange(6.0))
    a, b = _run(fg.split(x, [2, -1]))
    np.testing.assert_array_equal(a, [0, 1])
    np.testing.assert_array_equal(b, [2, 3, 4, 5])
    with pytest.raises(fg.errors.ShapeError, match="at most one -1"):
        fg.split(x, [-1, -1])
    with pytest.raises(fg.errors.ShapeError, match="at least 7"):
        fg.split(x, [7, -1])


def test_tf1s_older_argument_names_squeeze_dims_and_dim():
    x = fg.ones([1, 2, 1])
    assert fg.squeeze(x, squeeze_dims=[0]).shape == (2, 1)
    logits = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    e = np.exp(logits - logits.max(0))
    got = _run([fg.nn.softmax(logits, dim=0), fg.nn.log_softmax(logits, dim=0),
                fg.nn.softmax(logits)])
    np.testing.assert_allclose(got[0], e / e.sum(0), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.log(e / e.sum(0)), rtol=1e-6)
    np.testing.assert_allclose(got[2].sum(1), [1.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="axis= or dim="):
        fg.nn.softmax(logits, axis=0, dim=0)
    with pytest.raises(ValueError, match="axis= or squeeze_dims="):
        fg.squeeze(x, axis=[0], squeeze_dims=[0])


def test_one_hot_axis():
    ids = np.array([[0, 2], [1, -1]])
    want = np.where(ids[..., None] == np.arange(3), 2.0, 0.5).astype(np.float32)
    for axis in (-1, 0, 1, 2):
        got = _run(fg.one_hot(ids, 3, on_value=2.0, off_value=0.5, axis=axis))
        np.testing.assert_array_equal(got, np.moveaxis(want, -1, axis))
    assert fg.one_hot(ids, 3, axis=0, name="oh").name == "oh:0"
    with pytest.raises(fg.errors.ShapeError, match="expected axis"):
        fg.one_hot(ids, 3, axis=4)


def test_run_options_full_trace_records_the_steps():
    x = fg.placeholder(fg.float32, [None, 2])
    y = fg.reduce_sum(x * 2.0)
    md = fg.RunMetadata()
    with fg.Session() as sess:
        sess.run(y, {x: np.ones((1, 2))},
                 options=fg.RunOptions(trace_level=fg.RunOptions.FULL_TRACE), run_metadata=md)
    assert md.step_stats and md.chrome_trace()
    assert not fg.RunOptions(trace_level=fg.RunOptions.NO_TRACE).trace
    with pytest.raises(ValueError, match="trace_level"):
        fg.RunOptions(trace_level=7)


def test_session_arguments_are_checked():
    g = fg.Graph()
    with pytest.raises(TypeError, match="expected graph to be an fg.Graph.*target"):
        fg.Session("", g)                      # TF1's Session(target, graph)
    with pytest.raises(TypeError, match="expected config to be an fg.SessionConfig"):
        fg.Session(g, {"optimize": False})
    fg.Session(graph=g, config=fg.ConfigProto(allow_soft_placement=True)).close()


def test_lstm_cell_takes_tf1s_constructor_arguments():
    sig = lambda z: 1 / (1 + np.exp(-z))                      # noqa: E731
    rng = np.random.RandomState(0)
    xs = rng.randn(2, 3, 4).astype(np.float32)
    cell = fg.nn.LSTMCell(5, activation=fg.nn.relu, use_peepholes=False, cell_clip=None,
                          num_proj=None, dtype=fg.float32)
    out, state = fg.nn.dynamic_rnn(cell, fg.constant(xs), dtype=fg.float32)
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            (h_got, c_got), kernel, bias = sess.run([(state.h, state.c), cell.kernel, cell.bias])
        h = c = np.zeros((2, 5))
        for t in range(3):
            i, f, o, g = np.split(np.concatenate([h, xs[:, t]], 1) @ kernel + bias, 4, 1)
            c = sig(f) * c + sig(i) * np.maximum(g, 0)
            h = sig(o) * np.maximum(c, 0)
        np.testing.assert_allclose(h_got, h, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c_got, c, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="use_peepholes=True, num_proj=2 is not supported"):
        fg.nn.LSTMCell(5, use_peepholes=True, num_proj=2)


def test_multi_rnn_cell_state_is_tuple():
    cell = fg.nn.rnn_cell.MultiRNNCell([fg.nn.GRUCell(3), fg.nn.GRUCell(3)],
                                       state_is_tuple=True)
    _, state = fg.nn.dynamic_rnn(cell, fg.ones([2, 4, 3]), dtype=fg.float32)
    assert isinstance(state, tuple) and len(state) == 2
    with pytest.raises(ValueError, match="state_is_tuple=False"):
        fg.nn.MultiRNNCell([fg.nn.GRUCell(3)], state_is_tuple=False)


def _both(fetches, feed=None):
    out = []
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            out.append(sess.run(fetches, feed))
    np.testing.assert_equal(out[0], out[1])      # the compiled path agrees exactly
    return out[1]


def test_while_loop_shape_invariants_as_tensor_shape_and_tf1_keywords():
    i, x = fg.while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, fg.concat([x, x], 0)),
                         (0, fg.constant([1.0])),
                         shape_invariants=(fg.TensorShape([]), fg.TensorShape([None])),
                         parallel_iterations=32, swap_memory=True)
    assert x.shape == (None,)
    got = _both([i, x])
    assert got[0] == 3 and got[1].shape == (8,)
    with pytest.raises(fg.errors.ShapeError, match="known rank"):
        fg.while_loop(lambda v: v < 3.0, lambda v: v + 1.0, [fg.constant(0.0)],
                      shape_invariants=[fg.TensorShape(None)])
    # back_prop=False: the results are constants for the gradient.
    w = fg.constant(2.0)
    _, y = fg.while_loop(lambda k, y: k < 3, lambda k, y: (k + 1, y * w),
                         (0, fg.constant(1.0)), back_prop=False)
    _, z = fg.while_loop(lambda k, y: k < 3, lambda k, y: (k + 1, y * w),
                         (0, fg.constant(1.0)))
    assert _both(fg.gradients(y + z, w)) == [12.0]


def test_scan_takes_tf1s_keywords():
    xs = fg.constant([1.0, 2.0, 3.0])
    ys = fg.scan(lambda a, x: a * x, xs, back_prop=False, parallel_iterations=1,
                 swap_memory=False, infer_shape=True)
    np.testing.assert_array_equal(_both(ys), [1.0, 2.0, 6.0])
    np.testing.assert_array_equal(_both(fg.gradients(fg.reduce_sum(ys), xs)), [[0, 0, 0]])


def test_map_fn():
    xs = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    x = fg.constant(xs)
    sums = fg.map_fn(lambda row: fg.reduce_sum(row * row), x)
    pairs = fg.map_fn(lambda t: {"s": t[0] + t[1], "i": fg.cast(t[1], fg.int32)},
                      (x, x[:, 0]), dtype={"s": fg.float32, "i": fg.int32})
    p = fg.placeholder(fg.float32, [None, 2])
    w = fg.Variable(np.ones((2, 3), np.float32))
    rows = fg.map_fn(lambda r: fg.matmul(fg.expand_dims(r, 0), w)[0], p)
    feed = np.arange(8.0, dtype=np.float32).reshape(4, 2)
    got = _both([sums, pairs, fg.gradients(fg.reduce_sum(sums), x)[0], rows,
                 fg.gradients(fg.reduce_sum(rows), w)[0]], {p: feed})
    np.testing.assert_array_equal(got[0], (xs * xs).sum(1))
    np.testing.assert_array_equal(got[1]["s"], xs + xs[:, :1])
    np.testing.assert_array_equal(got[1]["i"], xs[:, 0].astype(np.int32))
    np.testing.assert_array_equal(got[2], 2 * xs)
    np.testing.assert_array_equal(got[3], feed @ np.ones((2, 3)))
    np.testing.assert_array_equal(got[4], np.repeat(feed.sum(0)[:, None], 3, 1))
    with pytest.raises(fg.errors.DTypeError, match=r"expected fn to return map_fn's dtype"):
        fg.map_fn(lambda r: r, x, dtype=fg.int32)


def test_sequence_loss_sum_over_as_tf_1_15():
    rng = np.random.RandomState(0)
    logits = rng.randn(2, 3, 4).astype(np.float32)
    targets = rng.randint(0, 4, (2, 3))
    w = np.array([[1, 2, 0], [1, 0, 0]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ce = -np.log(p[np.arange(2)[:, None], np.arange(3)[None], targets]) * w
    nz = (w != 0).sum

    def loss(**kw):
        return fg.nn.sequence_loss(logits, targets, w, average_across_timesteps=False,
                                   average_across_batch=False, **kw)
    got = _both([loss(sum_over_timesteps=True, sum_over_batch=True),
                 loss(sum_over_timesteps=True), loss(sum_over_batch=True)])
    np.testing.assert_allclose(got[0], ce.sum() / nz(), rtol=1e-5)
    np.testing.assert_allclose(got[1], ce.sum(1) / nz(1), rtol=1e-5)
    np.testing.assert_allclose(got[2], ce.sum(0) / np.maximum(nz(0), 1), rtol=1e-5)
    assert got[2][2] == 0.0                                   # no non-zero weight there
    # An average over the other axis takes precedence (TF1).
    np.testing.assert_allclose(
        _both(fg.nn.sequence_loss(logits, targets, w, average_across_batch=False,
                                  sum_over_batch=True)), ce.sum(1) / w.sum(1), rtol=1e-5)
    with pytest.raises(ValueError, match="average_across_batch and sum_over_batch"):
        fg.nn.sequence_loss(logits, targets, w, sum_over_batch=True)


def test_dense_trainable_false():
    x = fg.ones([2, 3])
    fg.layers.dense(x, 4, name="frozen", trainable=False)
    fg.layers.Dense(2, name="frozen2", trainable=False)(x)
    fg.layers.dense(x, 4, name="free")
    assert [v.op.name for v in fg.trainable_variables()] == ["free/kernel", "free/bias"]
    assert {v.op.name for v in fg.global_variables()} >= {"frozen/kernel", "frozen/bias",
                                                           "frozen2/kernel"}


def test_graphkeys_losses_is_the_collection_fg_losses_fill():
    loss = fg.losses.mean_squared_error(labels=[1.0], predictions=[2.0])
    assert fg.GraphKeys.LOSSES == fg.losses.LOSSES
    assert fg.get_collection(fg.GraphKeys.LOSSES) == [loss]


def test_two_independent_overwrites_of_one_variable_in_one_run_raise():
    # TF1 multi-task training: two optimizers share w. Each update is computed from the
    # start-of-run value, so run together one would silently be lost.
    w = fg.Variable(1.0, name="w")
    u = fg.Variable(1.0, name="u")
    train_a = fg.train.GradientDescentOptimizer(0.1).minimize(fg.square(w), var_list=[w])
    train_b = fg.train.AdamOptimizer(0.1).minimize(fg.square(w) + u, var_list=[w, u])
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            with pytest.raises(fg.errors.FlowgraphError,
                               match=r"writes variable 'w' twice.*GradientDescent/w/Assign.*"
                                     r"test_tf1_api_audit.py.*Adam"):
                sess.run([train_a, train_b])
            with pytest.raises(fg.errors.FlowgraphError, match="writes variable 'w' twice"):
                sess.make_callable(fg.group(train_a, train_b))()
            sess.run(train_a)                                 # one at a time: fine
            sess.run(train_b)
            # assign_add/assign_sub compose; dependent writes have a defined order.
            sess.run(w.assign(1.0))
            sess.run([w.assign_add(1.0), w.assign_sub(0.5)])
            assert float(sess.run(w)) == 1.5
            first = w.assign(5.0)
            with fg.control_dependencies([first]):
                second = w.assign(7.0)
            sess.run([first, second])
            assert float(sess.run(w)) == 7.0


def test_gradients_stop_gradients_and_tf1_keywords():
    a = fg.constant(2.0)
    b = 3.0 * a
    c = b * b + a
    got = _both([fg.gradients(c, [a, b], stop_gradients=[b]),
                 fg.gradients(c, [a, b]),
                 fg.gradients(c, a, stop_gradients=b, colocate_gradients_with_ops=True,
                              gate_gradients=True, aggregation_method=None)])
    assert [float(g) for g in got[0]] == [1.0, 12.0]     # only c's direct a term
    assert [float(g) for g in got[1]] == [37.0, 12.0]
    assert [float(g) for g in got[2]] == [1.0]


def test_variance_scaling_and_glorot_normal_initializers():
    n_in, n_out = 400, 300
    for dist in ("truncated_normal", "normal", "untruncated_normal", "uniform"):
        w = fg.variance_scaling_initializer(2.0, "fan_in", dist, seed=1)((n_in, n_out))
        assert w.dtype == np.float32
        np.testing.assert_allclose(w.std(), np.sqrt(2.0 / n_in), rtol=0.02)
        if dist == "uniform":
            assert abs(w).max() <= np.sqrt(3 * 2.0 / n_in)
        elif dist != "untruncated_normal":
            assert abs(w).max() <= 2 * np.sqrt(2.0 / n_in) / 0.87962566103423978
    w = fg.glorot_normal_initializer(seed=3)((n_in, n_out), fg.float64)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w.std(), np.sqrt(2.0 / (n_in + n_out)), rtol=0.02)
    v = fg.get_variable("v", [3, 4], initializer=fg.variance_scaling_initializer(
        mode="fan_avg", seed=2))
    assert _both(v).shape == (3, 4)
    with pytest.raises(ValueError, match="expected mode"):
        fg.variance_scaling_initializer(mode="fan")


def test_saver_takes_tf1s_keyword_arguments(tmp_path):
    v = fg.Variable(3.0, name="v")
    saver = fg.train.Saver(max_to_keep=2, name="save", sharded=False, write_version=2,
                           save_relative_paths=True)
    with fg.Session() as sess:
        path = saver.save(sess, os.path.join(tmp_path, "m"), global_step=1,
                          write_meta_graph=False, write_state=True, latest_filename=None)
        assert path == fg.train.latest_checkpoint(tmp_path)
    assert fg.train.Saver([], allow_empty=True) is not None
    with pytest.raises(ValueError, match="no variables to save"):
        fg.train.Saver([])
    assert v is not None


def test_rnn_sequence_length_must_have_one_length_per_row():
    xs = np.random.RandomState(0).randn(2, 4, 3).astype(np.float32)
    x = fg.placeholder(fg.float32, [None, 4, 3])
    n = fg.placeholder(fg.int32, [None])
    _, state = fg.nn.dynamic_rnn(fg.nn.GRUCell(5), x, sequence_length=n, dtype=fg.float32,
                                 parallel_iterations=32, swap_memory=False)
    for optimize in (True, False):
        with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
            # A single length broadcast to both rows before.
            with pytest.raises(fg.errors.ShapeError, match="sequence_length_matches_batch"):
                sess.run(state, {x: xs, n: [4]})
            full = sess.run(state, {x: xs, n: [4, 4]})
            np.testing.assert_allclose(sess.run(state, {x: xs, n: [9, 4]}), full)
    with pytest.raises(fg.errors.ShapeError, match=r"dynamic_rnn: expected sequence_length "
                                                   r"of shape \(2,\)"):
        fg.nn.dynamic_rnn(fg.nn.GRUCell(5), fg.constant(xs), sequence_length=[1, 2, 3],
                          dtype=fg.float32)
    steps = [fg.constant(xs[:, t]) for t in range(4)]
    with pytest.raises(fg.errors.ShapeError, match=r"static_rnn: expected sequence_length"):
        fg.nn.static_rnn(fg.nn.GRUCell(5), steps, sequence_length=[1], dtype=fg.float32)
    with pytest.raises(fg.errors.ShapeError, match=r"expected sequence_length to be an "
                                                   r"integer vector"):
        fg.nn.static_bidirectional_rnn(fg.nn.GRUCell(5), fg.nn.GRUCell(5), steps,
                                       sequence_length=[1.0, 2.0], dtype=fg.float32)


def test_local_variables_initializer_and_old_spellings():
    v = fg.Variable(1.0, name="v")
    assert fg.local_variables() == []
    with fg.Session() as sess:
        sess.run(v.assign(3.0))
        assert sess.run([fg.global_variables_initializer(),
                         fg.local_variables_initializer()]) == [None, None]
        assert float(sess.run(v)) == 1.0
        sess.run(v.assign(3.0))
        sess.run(fg.initialize_all_variables())
        assert float(sess.run(v)) == 1.0
    counter = fg.Variable(0, name="counter", trainable=False)
    fg.add_to_collection(fg.GraphKeys.LOCAL_VARIABLES, counter)
    assert fg.local_variables() == [counter]
    with fg.Session() as sess:
        sess.run(counter.assign(5))
        sess.run(fg.local_variables_initializer())
        assert int(sess.run(counter)) == 0


def test_layers_flatten_and_weighted_cross_entropy():
    x = fg.placeholder(fg.float32, [None, 2, 3])
    flat = fg.layers.flatten(x)
    assert flat.shape == (None, 6)
    z = np.array([1.0, 0.0, 1.0], np.float32)
    logits = np.array([2.0, -1.0, -50.0], np.float32)
    loss = fg.nn.weighted_cross_entropy_with_logits(labels=z, logits=logits, pos_weight=2.5)
    got = _both([flat, loss], {x: np.arange(24.0, dtype=np.float32).reshape(4, 2, 3)})
    np.testing.assert_array_equal(got[0], np.arange(24.0).reshape(4, 6))
    sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(got[1], -(2.5 * z * np.log(sig) + (1 - z) * np.log(1 - sig)),
                               rtol=1e-5)
    with pytest.raises(fg.errors.ShapeError, match="flatten"):
        fg.layers.flatten(fg.placeholder(fg.float32, [None, None]))


def test_variable_initialized_value():
    w = fg.Variable(fg.random_normal([3], seed=1), name="w")
    w2 = fg.Variable(w.initialized_value() * 2.0, name="w2")
    a, b = _both([w, w2])
    np.testing.assert_array_equal(b, 2 * a)
    with pytest.raises(fg.errors.FlowgraphError, match=r"must not depend on variables.*"
                                                       r"initialized_value\(\)"):
        fg.Variable(w * 2.0, name="w3")


def test_random_ops_take_a_tensor_shape():
    v = fg.Variable(np.ones((2, 3), np.float32))
    draws = [fg.random_normal(v.get_shape(), seed=1),
             fg.random_uniform(fg.TensorShape([4]), seed=3),
             fg.truncated_normal(v.get_shape()[1:]), fg.random_uniform([v.get_shape()[0], 2])]
    assert [d.shape for d in draws] == [(2, 3), (4,), (3,), (2, 2)]
    assert [a.shape for a in _both(draws[1:2])] == [(4,)]
    with pytest.raises(ValueError, match=r"fully known shape.*fg.shape\(x\)"):
        fg.random_normal(fg.placeholder(fg.float32, [None, 3]).get_shape())


def test_contrib_paths():
    assert fg.contrib.rnn.LSTMCell is fg.nn.LSTMCell
    assert fg.contrib.rnn.static_rnn is fg.nn.static_rnn
    assert fg.contrib.seq2seq.sequence_loss is fg.nn.sequence_loss
    n_in, n_out = 400, 300
    u = fg.contrib.layers.xavier_initializer(seed=1)((n_in, n_out))
    assert abs(u).max() <= np.sqrt(6.0 / (n_in + n_out))
    t = fg.contrib.layers.xavier_initializer(uniform=False, seed=1)((n_in, n_out))
    stddev = np.sqrt(1.3 / ((n_in + n_out) / 2))
    assert abs(t).max() <= 2 * stddev
    np.testing.assert_allclose(t.std(), stddev * 0.8796, rtol=0.02)   # truncation
    with pytest.raises(AttributeError):
        fg.contrib.learn


def test_tensor_shape_is_the_tuple_with_tf1s_methods():
    x = fg.placeholder(fg.float32, [None, 3])
    assert x.shape == (None, 3) and isinstance(x.shape, tuple)
    assert hash(x.shape) == hash((None, 3)) and repr(x.shape) == "(None, 3)"
    assert x.shape.as_list() == [None, 3] and x.shape.ndims == 2 and x.shape[1] == 3
    assert not x.shape.is_fully_defined() and x.shape.num_elements() is None
    y = fg.matmul(x, fg.ones([3, 2]))
    assert y.shape.as_list() == [None, 2]
    assert fg.Variable(np.ones((2, 3))).shape.as_list() == [2, 3]
    x.set_shape([4, 3])
    assert x.shape.as_list() == [4, 3] and x.shape.num_elements() == 12
    assert fg.placeholder(fg.float32).shape is None       # unknown rank, as before


def test_foldl_and_foldr():
    e = fg.constant([1.0, 2.0, 3.0])
    got = _both([fg.foldl(lambda a, x: a * 10.0 + x, e),
                 fg.foldr(lambda a, x: a * 10.0 + x, e),
                 fg.foldl(lambda a, x: a + x, e, initializer=fg.constant(100.0)),
                 fg.foldl(lambda a, x: (a[0] + x, a[1] * x), e,
                          initializer=(fg.constant(0.0), fg.constant(1.0))),
                 fg.gradients(fg.foldl(lambda a, x: a * x, e), e)[0]])
    assert [float(g) for g in got[:3]] == [123.0, 321.0, 106.0]
    assert tuple(float(g) for g in got[3]) == (6.0, 6.0)
    np.testing.assert_array_equal(got[4], [6.0, 3.0, 2.0])
