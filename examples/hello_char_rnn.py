"""The "hello" char-RNN: learn to continue h -> e -> l -> l -> o.

    python examples/hello_char_rnn.py

Vocabulary h, e, l, o (one-hot inputs), a vanilla RNN with 8 hidden units unrolled over
4 steps (many-to-many: one prediction per step). Note that "l" is followed by "l" once
and by "o" once: only the hidden state can tell the two apart.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401
import flowgraph as fg  # noqa: E402

VOCAB = "helo"


def main(steps=150, seed=0, verbose=True):
    ids = [VOCAB.index(c) for c in "hello"]
    inputs, targets = ids[:-1], ids[1:]              # h e l l -> e l l o
    graph = fg.Graph()
    with graph.as_default():
        xs = [fg.one_hot(fg.constant([i]), len(VOCAB)) for i in inputs]   # [1, 4] each
        cell = fg.nn.BasicRNNCell(8, seed=seed)
        readout = fg.nn.Dense(len(VOCAB), seed=seed + 1)
        outputs, _ = fg.nn.static_rnn(cell, xs, dtype=fg.float32)
        logits = readout(fg.concat(outputs, axis=0))                      # [4, 4]
        loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=fg.constant(targets), logits=logits))
        train = fg.train.AdamOptimizer(0.05).minimize(loss)
        predicted = fg.nn.softmax(logits)
    sess = fg.Session(graph)
    step = sess.make_callable([loss, train])
    losses = []
    for i in range(steps):
        value, _ = step()
        losses.append(float(value))
        if verbose and (i % 30 == 0 or i == steps - 1):
            print(f"step {i:3d}  loss {value:.4f}")
    probs = sess.run(predicted)
    text = "h" + "".join(VOCAB[k] for k in probs.argmax(axis=1))
    if verbose:
        print(f"input 'hell' -> predicted next characters {text[1:]!r}: {text!r}")
    return losses, text


if __name__ == "__main__":
    main()
