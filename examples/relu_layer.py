"""The smallest flowgraph program: one layer, h = ReLU(W x + b), run in a session.

    python examples/relu_layer.py

Build the graph first (nothing is computed), then run it with values fed for ``x``.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401
import flowgraph as fg  # noqa: E402


def main():
    graph = fg.Graph()
    with graph.as_default():
        x = fg.placeholder(fg.float32, (None, 3), name="x")        # a batch of 3-vectors
        W = fg.Variable(np.array([[1.0, -1.0], [0.5, 2.0], [0.5, 0.5]], np.float32),
                        name="W")
        b = fg.Variable(np.array([0.1, -0.1], np.float32), name="b")
        h = fg.relu(fg.matmul(x, W) + b, name="h")                 # [batch, 2]
        dh_dW = fg.gradients(fg.reduce_sum(h), [W])[0]

    print(fg.summary(h))
    x_value = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]], np.float32)
    with fg.Session(graph) as sess:
        h_value, grad = sess.run([h, dh_dW], feed_dict={x: x_value})
    print("x =\n", x_value)
    print("h = ReLU(x @ W + b) =\n", h_value)
    print("d sum(h) / dW =\n", grad)
    return h_value, grad


if __name__ == "__main__":
    main()
