"""variable_scope / get_variable with TF1 semantics, and cells sharing weights under
``reuse=True``."""
import numpy as np
import pytest

import flowgraph as fg


def test_names_nesting_and_name_scope_for_ops():
    with fg.variable_scope("outer"):
        with fg.variable_scope("inner") as scope:
            w = fg.get_variable("w", (2, 3))
            y = fg.identity(w)
        assert scope.name == "outer/inner"
        assert fg.get_variable_scope().name == "outer"
    assert w.op.name == "outer/inner/w" and w.shape == (2, 3) and w.dtype == np.float32
    assert y.op.name == "outer/inner/identity"
    with fg.name_scope("ignored"):                    # name scopes do not name variables
        v = fg.get_variable("v", (1,))
    assert v.op.name == "v"
    assert fg.get_variable_scope().name == ""


def test_creating_an_existing_name_without_reuse_raises():
    with fg.variable_scope("s"):
        fg.get_variable("w", (2,))
    with pytest.raises(ValueError, match=r"Variable s/w already exists, disallowed\. Did "
                                         r"you mean to set reuse=True"):
        with fg.variable_scope("s"):
            fg.get_variable("w", (2,))


def test_reusing_a_missing_name_raises_and_reuse_finds_the_same_variable():
    with fg.variable_scope("s"):
        w = fg.get_variable("w", (2,))
    with fg.variable_scope("s", reuse=True):
        assert fg.get_variable("w") is w
        assert fg.get_variable("w", (2,)) is w
        with pytest.raises(ValueError, match=r"Variable s/u does not exist"):
            fg.get_variable("u", (2,))
        with pytest.raises(ValueError, match=r"Trying to share variable s/w, but specified "
                                             r"shape \(3,\) and found shape \(2,\)"):
            fg.get_variable("w", (3,))
        with fg.variable_scope("child"):               # reuse is inherited
            assert fg.get_variable_scope().reuse is True
    assert len(fg.global_variables()) == 1


def test_reuse_variables_and_auto_reuse():
    with fg.variable_scope("a") as scope:
        w = fg.get_variable("w", (2,))
        scope.reuse_variables()
        assert fg.get_variable("w") is w
    with fg.variable_scope("b", reuse=fg.AUTO_REUSE):
        first = fg.get_variable("w", (3,))
        assert fg.get_variable("w", (3,)) is first
    with fg.variable_scope(scope, reuse=True):       # re-entering a scope object
        assert fg.get_variable("w") is w
    assert repr(fg.AUTO_REUSE) == "fg.AUTO_REUSE"


def test_initializers_from_the_scope_and_defaults():
    with fg.variable_scope("init", initializer=fg.constant_initializer(0.5)):
        a = fg.get_variable("a", (2, 2))
        b = fg.get_variable("b", (2,), initializer=fg.zeros_initializer())
        with fg.variable_scope("deeper"):
            c = fg.get_variable("c", (3,))
    d = fg.get_variable("d", (4, 6))
    i = fg.get_variable("i", (2,), dtype=fg.int32)
    e = fg.get_variable("e", initializer=np.arange(3.0))
    with fg.Session() as sess:
        va, vb, vc, vd, vi, ve = sess.run([a, b, c, d, i, e])
    np.testing.assert_array_equal(va, np.full((2, 2), 0.5, np.float32))
    np.testing.assert_array_equal(vb, [0.0, 0.0])
    np.testing.assert_array_equal(vc, [0.5, 0.5, 0.5])
    assert np.abs(vd).max() <= np.sqrt(6 / 10) and vd.std() > 0     # Glorot-uniform
    assert vi.dtype == np.int32 and vi.tolist() == [0, 0]
    assert ve.dtype == np.float64 and ve.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="must be fully defined"):
        fg.get_variable("no_shape")


def test_default_names_tf1_positional_default_name_and_errors():
    with fg.variable_scope(None, default_name="block") as s1:
        fg.get_variable("w", (1,))
    with fg.variable_scope(None, "block") as s2:          # TF1: default_name positional
        pass
    assert (s1.name, s2.name) == ("block", "block_1")
    with pytest.raises(ValueError, match="reuse=True cannot be used without a name"):
        with fg.variable_scope(None, reuse=True, default_name="x"):
            pass
    with pytest.raises(TypeError):
        with fg.variable_scope(None):
            pass


def test_variables_are_stored_per_graph():
    fg.get_variable("w", (1,))
    with fg.Graph().as_default():
        w2 = fg.get_variable("w", (1,))          # another graph: no clash
        assert fg.global_variables() == [w2]


def _model(cell_fn, inputs):
    cell = cell_fn()
    outputs, state = fg.nn.static_rnn(cell, inputs, dtype=fg.float32)
    with fg.variable_scope("softmax"):
        w = fg.get_variable("w", (cell.output_size, 2))
    return cell, outputs[-1] @ w


def test_cells_share_their_weights_under_reuse():
    xs = [fg.constant(np.random.default_rng(t).uniform(-1, 1, (2, 3)).astype(np.float32))
          for t in range(3)]

    def make():
        return fg.nn.MultiRNNCell([fg.nn.LSTMCell(4), fg.nn.GRUCell(4)])
    with fg.variable_scope("Model", initializer=fg.random_uniform_initializer(-0.1, 0.1, 1)):
        train_cell, train_out = _model(make, xs)
    n_vars = len(fg.global_variables())
    with fg.variable_scope("Model", reuse=True):
        eval_cell, eval_out = _model(make, xs)
    assert len(fg.global_variables()) == n_vars
    assert [v for v in eval_cell.variables] == [v for v in train_cell.variables]
    names = [v.op.name for v in train_cell.variables]
    assert names[0] == "Model/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel"
    with fg.Session() as sess:
        a, b = sess.run([train_out, eval_out])
        kernel = sess.run(train_cell.cells[0].kernel)
    np.testing.assert_array_equal(a, b)
    assert np.abs(kernel).max() <= 0.1                  # the scope's initializer
    with pytest.raises(ValueError, match="already exists"):
        with fg.variable_scope("Model"):                # forgot reuse=True
            _model(make, xs)


def test_unnamed_cells_without_reuse_get_their_own_weights_and_bias_values_stay():
    x = fg.placeholder(fg.float32, (2, 3))
    c1, c2 = fg.nn.LSTMCell(4, seed=0), fg.nn.LSTMCell(4, seed=0)
    with fg.variable_scope("s", initializer=fg.ones_initializer()):
        c1(x, c1.zero_state(2))
        c2(x, c2.zero_state(2))
    assert c1.kernel.op.name == "s/lstm_cell/kernel"
    assert c2.kernel.op.name == "s/lstm_cell_1/kernel"
    np.testing.assert_array_equal(c1.kernel.initial_value, np.ones((7, 16), np.float32))
    np.testing.assert_array_equal(c1.bias.initial_value[4:8], np.ones(4))   # forget_bias
    np.testing.assert_array_equal(c1.bias.initial_value[:4], np.zeros(4))
    seeded = fg.nn.LSTMCell(4, seed=0)                  # no scope initializer: the seed
    seeded(x, seeded.zero_state(2))
    again = fg.nn.LSTMCell(4, seed=0)
    again(x, again.zero_state(2))
    np.testing.assert_array_equal(seeded.kernel.initial_value, again.kernel.initial_value)


def test_tf1_cell_arguments_reuse_initializer_and_state_is_tuple():
    x = fg.placeholder(fg.float32, (2, 3))
    with fg.variable_scope("m"):
        first = fg.nn.LSTMCell(4, initializer=fg.constant_initializer(0.25))
        first(x, first.zero_state(2))
    with fg.variable_scope("m"):
        shared = fg.nn.LSTMCell(4, reuse=True)          # TF1: reuse=scope.reuse
        shared(x, shared.zero_state(2))
        with pytest.raises(ValueError, match="does not exist"):
            missing = fg.nn.GRUCell(4, reuse=True)
            missing(x, missing.zero_state(2))
    assert shared.kernel is first.kernel and shared.bias is first.bias
    np.testing.assert_array_equal(first.kernel.initial_value, np.full((7, 16), 0.25))
    with pytest.raises(ValueError, match="state_is_tuple=False"):
        fg.nn.LSTMCell(4, state_is_tuple=False)


def test_a_ptb_style_model_trains_with_dropout_and_its_eval_model_shares_the_weights():
    vocab, hidden, steps, batch = 6, 8, 3, 3

    def build(is_training):
        keep = 0.5 if is_training else 1.0
        ids = fg.placeholder(fg.int32, (batch, steps + 1))
        embedding = fg.get_variable("embedding", (vocab, hidden))
        inputs = fg.nn.embedding_lookup(embedding, ids)
        cells = [fg.nn.DropoutWrapper(fg.nn.LSTMCell(hidden, forget_bias=0.0),
                                      output_keep_prob=keep) for _ in range(2)]
        cell = fg.nn.MultiRNNCell(cells)
        xs = [fg.nn.dropout(inputs[:, t], keep) for t in range(steps)]
        outputs, _ = fg.nn.static_rnn(cell, xs, dtype=fg.float32)
        w = fg.get_variable("softmax_w", (hidden, vocab))
        b = fg.get_variable("softmax_b", (vocab,), initializer=fg.zeros_initializer())
        losses = [fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ids[:, t + 1], logits=o @ w + b) for t, o in enumerate(outputs)]
        loss = fg.reduce_mean(fg.add_n(losses)) / steps
        return ids, loss

    init = fg.random_uniform_initializer(-0.1, 0.1, seed=1)
    with fg.variable_scope("Model", initializer=init):
        ids, loss = build(True)
        train_op = fg.train.GradientDescentOptimizer(1.0).minimize(loss)
    n_vars = len(fg.trainable_variables())
    with fg.variable_scope("Model", reuse=True, initializer=init):
        eval_ids, eval_loss = build(False)
    assert len(fg.trainable_variables()) == n_vars == 2 * 2 + 3
    data = np.tile(np.arange(steps + 1) % vocab, (batch, 1)).astype(np.int32)
    with fg.Session() as sess:
        before = sess.run(eval_loss, {eval_ids: data})
        assert sess.run(eval_loss, {eval_ids: data}) == before      # no dropout: no noise
        for _ in range(40):
            sess.run(train_op, {ids: data})
        after = sess.run(eval_loss, {eval_ids: data})
    assert after < 0.85 * before                      # from ln(6) = 1.79
