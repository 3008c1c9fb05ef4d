"""Models shared by the MPI test programs and the tests that check them (tiny, float64).

The programs run under ``mpiexec``; the tests build the same models in one process and
compare. Nothing here depends on fg.train: a tiny SGD stands in for any TF1 optimizer.
"""
import numpy as np

import flowgraph as fg
import flowgraph.distributed as fgd


class SGD:
    """A TF1-style optimizer (compute_gradients / apply_gradients) written with fg ops."""

    def __init__(self, learning_rate):
        self.learning_rate = learning_rate

    def compute_gradients(self, loss, var_list=None):
        var_list = list(var_list or fg.trainable_variables())
        return list(zip(fg.gradients(loss, var_list), var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        updates = []
        for g, v in grads_and_vars:
            with fg.device(v.device):  # update where the variable lives
                updates.append(v.assign_sub(self.learning_rate * g))
        return fg.group(*updates)


# --- data parallel ------------------------------------------------------------------------

def regression_data(n=8):
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, 3)), rng.normal(size=(n, 2))


def train_data_parallel(steps=4):
    """Train a two-layer tanh regression with DistributedOptimizer on this rank's shard
    of a fixed batch. Each rank starts from different random weights, so equal results
    prove the broadcast. Returns (weights after each step, the graph's ops)."""
    x_full, y_full = regression_data()
    rng = np.random.default_rng(100 + fgd.rank())
    x = fg.placeholder(fg.float64, (None, 3), name="x")
    y = fg.placeholder(fg.float64, (None, 2), name="y")
    w1 = fg.Variable(rng.normal(size=(3, 4)), name="w1")
    b1 = fg.Variable(rng.normal(size=(4,)), name="b1")
    w2 = fg.Variable(rng.normal(size=(4, 2)), name="w2")
    loss = fg.reduce_mean(fg.square(fg.tanh(x @ w1 + b1) @ w2 - y))
    train = fgd.DistributedOptimizer(SGD(0.3)).minimize(loss)
    xs, ys = fgd.shard((x_full, y_full))
    history = []
    with fg.Session() as sess:
        for _ in range(steps):
            sess.run(train, {x: xs, y: ys})
            history.append(np.concatenate([sess.variable_value(v).ravel()
                                           for v in (w1, b1, w2)]))
        explained = sess.explain(train, {x: xs, y: ys})
    train_data_parallel.explained = explained   # the plan of the training step
    return np.array(history), fg.get_default_graph().operations


# --- partitioned LSTM ---------------------------------------------------------------------

B, T, I, H, V = 2, 3, 3, 4, 5


def lstm_layer(xs, units, name, rng):
    """An LSTM layer from fg ops (the README's LSTMCell: kernel [H+I, 4H], blocks i, f, o, g;
    bias whose f block starts at forget_bias=1)."""
    inputs = xs[0].shape[1]
    kernel = fg.Variable(rng.normal(0, 0.4, (units + inputs, 4 * units)), name=f"{name}/kernel")
    bias = fg.Variable(np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)]),
                       name=f"{name}/bias")
    # zero state [batch, units] for a batch known only at run time (a dynamic shape, so
    # the tensors crossing tasks take the variable-shape path)
    c = h = fg.zeros_like(xs[0][:, :1]) * fg.zeros((1, units), fg.float64)
    outputs = []
    for x in xs:
        z = fg.matmul(fg.concat([h, x], 1), kernel) + bias
        i, f, o, g = fg.split(z, 4, axis=1)
        c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
        h = fg.sigmoid(o) * fg.tanh(c)
        outputs.append(h)
    return outputs, [kernel, bias]


def lstm_data():
    rng = np.random.default_rng(11)
    return rng.normal(size=(T, B, I)), rng.integers(0, V, size=(T, B))


def partitioned_lstm(devices=(None, None), optimize=False):
    """Two LSTM layers, layer 1 on devices[0], layer 2 and the loss on devices[1] (the
    output weights on devices[0]); the reference path unless ``optimize``.
    Returns a dict of results: loss, gradients, variables after one SGD step."""
    rng = np.random.default_rng(3)
    x_val, label_val = lstm_data()
    xs = [fg.placeholder(fg.float64, (None, I), name=f"x{t}") for t in range(T)]
    labels = fg.placeholder(fg.int64, (T, B), name="labels")
    with fg.device(devices[0]):
        h1, vars1 = lstm_layer(xs, H, "layer1", rng)
        # lives on task 0, used on task 1: its value (static shape) goes to task 1, its
        # gradient comes back for the update
        w_out = fg.Variable(rng.normal(0, 0.4, (H, V)), name="w_out")
    with fg.device(devices[1]):
        h2, vars2 = lstm_layer(h1, H, "layer2", rng)
        logits = [h @ w_out for h in h2]
        loss = fg.reduce_mean(fg.stack([
            fg.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[t], logits=logits[t])
            for t in range(T)]))
    variables = vars1 + vars2 + [w_out]
    grads = fg.gradients(loss, variables)
    train = SGD(0.5).apply_gradients(list(zip(grads, variables)))
    feed = {labels: label_val, **{xs[t]: x_val[t] for t in range(T)}}
    out = {}
    with fg.Session(config=fg.SessionConfig(optimize=optimize)) as sess:
        out["loss"], out["grads"] = sess.run((loss, grads), feed)
        sess.run(train, feed)
        out["loss_after"], out["variables"] = sess.run((loss, variables), feed)
        out["plans"] = list(sess._plans.values())
        out["explain"] = sess.explain((loss, grads), feed)
    return out
