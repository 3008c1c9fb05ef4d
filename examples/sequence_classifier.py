"""A many-to-one sequence classifier: is the sum of the sequence positive?

    python examples/sequence_classifier.py

An LSTM reads a sequence of T noisy scalars; only its last output goes through a dense
layer to two classes. The task needs memory over the whole sequence: the label is the
sign of the sum of all T inputs.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401
import flowgraph as fg  # noqa: E402


def make_data(n, steps, rng):
    x = rng.normal(size=(n, steps, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int32)
    return x, y


def main(steps=10, train_steps=300, batch=64, hidden=16, seed=0, verbose=True):
    rng = np.random.default_rng(seed)
    graph = fg.Graph()
    with graph.as_default():
        x = fg.placeholder(fg.float32, (None, steps, 1), name="x")
        y = fg.placeholder(fg.int32, (None,), name="y")
        cell = fg.nn.LSTMCell(hidden, seed=seed)
        outputs, _ = fg.nn.static_rnn(cell, fg.unstack(x, axis=1), dtype=fg.float32)
        logits = fg.nn.Dense(2, seed=seed + 1)(outputs[-1])          # many-to-one
        loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
        accuracy = fg.reduce_mean(fg.cast(fg.equal(
            fg.cast(logits[:, 1] > logits[:, 0], fg.int32), y), fg.float32))
        optimizer = fg.train.AdamOptimizer(0.01)
        grads, variables = zip(*optimizer.compute_gradients(loss))
        clipped, _ = fg.clip_by_global_norm(grads, 5.0)
        train = optimizer.apply_gradients(zip(clipped, variables))
    sess = fg.Session(graph)
    step = sess.make_callable([loss, train], [x, y])
    x_test, y_test = make_data(1000, steps, np.random.default_rng(seed + 1000))
    for i in range(train_steps):
        xb, yb = make_data(batch, steps, rng)
        value, _ = step(xb, yb)
        if verbose and (i % 50 == 0 or i == train_steps - 1):
            print(f"step {i:3d}  loss {value:.4f}")
    acc = float(sess.run(accuracy, {x: x_test, y: y_test}))
    if verbose:
        print(f"test accuracy {acc:.3f} (chance 0.5)")
    return acc


if __name__ == "__main__":
    main()
