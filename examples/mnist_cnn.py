"""A convolutional MNIST classifier: TensorFlow 1.x's "Deep MNIST for experts" /
``tf.layers`` CNN tutorial, in flowgraph.

The tutorial's network, written the way a TF1 program writes it (``tf.`` -> ``fg.``):

- conv 5x5, 32 filters, ReLU, max-pool 2x2 (stride 2);
- conv 5x5, 64 filters, ``batch_normalization(training=is_training)``, ReLU, max-pool;
- dense 1024, ReLU, dropout (rate 0.4 while training);
- dense 10 (the logits);
- sparse softmax cross-entropy plus an L2 penalty on the kernels (``kernel_regularizer``
  collected by ``fg.losses.get_regularization_loss()``);
- Adam, run under ``fg.control_dependencies(UPDATE_OPS)`` so batch normalization's
  moving averages update with every training step.

MNIST is not on every machine, so the data are synthetic and MNIST-shaped: 28x28
grey images of ten classes, each class a fixed random stroke pattern drawn with noise,
a random shift of up to 3 pixels and a random contrast (no download)::

    python examples/mnist_cnn.py                     # 300 steps of batch 50
    python examples/mnist_cnn.py --steps 2000 --eval-every 100

It prints the training accuracy every ``--eval-every`` steps and the test accuracy at the
end, as the tutorial does ("step 100, training accuracy 0.94"), with the loss and the
time per step.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, NamedTuple

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401  (finds flowgraph in a source checkout)
import flowgraph as fg  # noqa: E402


# --- the data: synthetic, MNIST-shaped ---------------------------------------------------

def synthetic_mnist(n, seed=0, classes=10):
    """``(images [n, 784] float32 in [0, 1], labels [n] int64)``: ten fixed "digits"
    (each a few random strokes on a 28x28 canvas, the same for every seed), drawn
    shifted by up to 3 pixels, with a random contrast and strong noise."""
    protos = np.zeros((classes, 28, 28), np.float32)
    shapes = np.random.RandomState(1234)             # the digits: fixed across seeds
    for c in range(classes):
        for _ in range(3):                            # three strokes per digit
            r0, c0 = shapes.randint(6, 22, 2)
            dr, dc = shapes.randint(-1, 2, 2)
            for t in range(8):
                r, q = np.clip(r0 + dr * t, 4, 23), np.clip(c0 + dc * t, 4, 23)
                protos[c, r - 1:r + 2, q - 1:q + 2] = 1.0
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, classes, n)
    shifts = rng.randint(-3, 4, (n, 2))
    images = np.empty((n, 28, 28), np.float32)
    for i in range(n):
        images[i] = np.roll(protos[labels[i]], tuple(shifts[i]), axis=(0, 1))
    images *= rng.uniform(0.3, 1.0, (n, 1, 1)).astype(np.float32)
    images += rng.normal(0.0, 0.5, images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0).reshape(n, 784), labels.astype(np.int64)


# --- the model: the tutorial's ---------------------------------------------------------------

class Model(NamedTuple):
    x: fg.Tensor
    y_: fg.Tensor
    is_training: fg.Tensor
    logits: fg.Tensor
    cross_entropy: fg.Tensor
    loss: fg.Tensor
    accuracy: fg.Tensor
    train_op: fg.Operation


def build_model(learning_rate=1e-4, l2_scale=1e-4, dropout_rate=0.4, seed=0):
    """The tutorial's graph in the default graph (see the module docstring)."""
    fg.set_random_seed(seed)
    x = fg.placeholder(fg.float32, [None, 784], name="x")
    y_ = fg.placeholder(fg.int64, [None], name="y_")
    is_training = fg.placeholder_with_default(False, shape=[], name="is_training")
    l2 = fg.contrib.layers.l2_regularizer(l2_scale)

    x_image = fg.reshape(x, [-1, 28, 28, 1])
    conv1 = fg.layers.conv2d(x_image, filters=32, kernel_size=[5, 5], padding="same",
                             activation=fg.nn.relu, kernel_regularizer=l2, name="conv1")
    pool1 = fg.layers.max_pooling2d(conv1, pool_size=[2, 2], strides=2)
    conv2 = fg.layers.conv2d(pool1, filters=64, kernel_size=[5, 5], padding="same",
                             use_bias=False, kernel_regularizer=l2, name="conv2")
    bn2 = fg.layers.batch_normalization(conv2, training=is_training, name="bn2")
    pool2 = fg.layers.max_pooling2d(fg.nn.relu(bn2), pool_size=[2, 2], strides=2)
    pool2_flat = fg.reshape(pool2, [-1, 7 * 7 * 64])
    dense = fg.layers.dense(pool2_flat, units=1024, activation=fg.nn.relu,
                            kernel_regularizer=l2, name="fc1")
    dropout = fg.layers.dropout(dense, rate=dropout_rate, training=is_training)
    logits = fg.layers.dense(dropout, units=10, kernel_regularizer=l2, name="logits")

    cross_entropy = fg.reduce_mean(
        fg.nn.sparse_softmax_cross_entropy_with_logits(labels=y_, logits=logits))
    loss = cross_entropy + fg.losses.get_regularization_loss()
    update_ops = fg.get_collection(fg.GraphKeys.UPDATE_OPS)
    with fg.control_dependencies(update_ops):     # batch norm's moving averages
        train_op = fg.train.AdamOptimizer(learning_rate).minimize(loss)
    correct_prediction = fg.equal(fg.argmax(logits, 1), y_)
    accuracy = fg.reduce_mean(fg.cast(correct_prediction, fg.float32))
    return Model(x, y_, is_training, logits, cross_entropy, loss, accuracy, train_op)


# --- training ------------------------------------------------------------------------------

class Result(NamedTuple):
    losses: List[float]            # the training loss of every step
    train_accuracy: List[float]    # at every evaluation
    test_accuracy: float
    first_step_s: float            # the first step: building the plan included
    step_ms: float                 # the median of the later steps


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3,
                   help="Adam's learning rate (the tutorial's 1e-4 needs ~20k steps)")
    p.add_argument("--l2", type=float, default=1e-4, help="the kernels' L2 scale")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="print the test accuracy only")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train_x, train_y = synthetic_mnist(args.train_size, seed=args.seed)
    test_x, test_y = synthetic_mnist(args.test_size, seed=args.seed + 1)
    say = (lambda *a: None) if args.quiet else print
    with fg.Graph().as_default():
        m = build_model(args.lr, args.l2, seed=args.seed)
        rng = np.random.RandomState(args.seed)
        losses, train_acc, times = [], [], []
        with fg.Session() as sess:
            sess.run(fg.global_variables_initializer())
            for i in range(args.steps):
                idx = rng.randint(0, args.train_size, args.batch)
                batch = {m.x: train_x[idx], m.y_: train_y[idx]}
                if args.eval_every and i % args.eval_every == 0:
                    acc = sess.run(m.accuracy, batch)     # is_training: False (default)
                    train_acc.append(float(acc))
                    say(f"step {i}, training accuracy {acc:g}")
                start = time.perf_counter()
                _, loss = sess.run([m.train_op, m.loss], {**batch, m.is_training: True})
                times.append(time.perf_counter() - start)
                losses.append(float(loss))
                if i == 0:
                    # the first run builds the compiled plan and starts at once on
                    # NumPy; its Numba kernels compile on a background thread (from
                    # the disk cache after the first time) and take over when ready
                    say(f"first step {times[0]:.2f} s (builds the plan; kernels compile "
                        f"in the background), loss {loss:.4f}")
                elif args.eval_every and i % args.eval_every == 0:
                    # the median of the steps since the last line: it falls as the
                    # compiled kernels replace the NumPy ones
                    say(f"step {i}, loss {loss:.4f}, "
                        f"{1000 * np.median(times[-args.eval_every:]):.1f} ms/step")
            correct = 0
            for k in range(0, len(test_x), 500):
                correct += float(sess.run(m.accuracy, {m.x: test_x[k:k + 500],
                                                       m.y_: test_y[k:k + 500]})) * \
                    len(test_x[k:k + 500])
            test = correct / len(test_x)
    step_ms = 1000 * float(np.median(times[1:])) if len(times) > 1 else float("nan")
    print(f"test accuracy {test:g}")
    say(f"median step {step_ms:.1f} ms (batch {args.batch}); first step "
        f"{times[0]:.2f} s")
    return Result(losses, train_acc, test, times[0], step_ms)


if __name__ == "__main__":
    main()
