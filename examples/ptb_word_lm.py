"""Word-level language model: TensorFlow 1.x's PTB tutorial ("small" config), in flowgraph.

The model of Zaremba et al., "Recurrent Neural Network Regularization" (2014), written
the way TF1's ``tutorials/rnn/ptb/ptb_word_lm.py`` is: a 2-layer LSTM of 200 units over
20 unrolled steps, an embedding and a softmax over a 10,000-word vocabulary, dropout
through ``DropoutWrapper``, plain SGD whose learning rate halves every epoch after the
fourth, gradients clipped to a global norm of 5, and the LSTM state carried from one
batch to the next. The training model and the evaluation model share their weights
through ``fg.variable_scope("Model", reuse=True)``.

Penn Treebank is not on every machine, so by default the corpus is the Python standard
library's source cut into words (:func:`corpus.stdlib_words`), 10k vocabulary, ``<unk>``
for the rest and ``<eos>`` at every line end, split 80/10/10 into train, valid and test::

    python examples/ptb_word_lm.py                   # 2 epochs of 600k words, about 10 minutes
    python examples/ptb_word_lm.py --max-max-epoch 13 --max-words 1000000   # the tutorial's run
    python examples/ptb_word_lm.py --data-path ptb/  # ptb.{train,valid,test}.txt, if you have them

It prints the perplexity of each epoch on the training and the validation text, and the
test perplexity at the end, as the tutorial does.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401  (finds flowgraph in a source checkout)
import flowgraph as fg  # noqa: E402
from corpus import WordVocabulary, ptb_iterator, stdlib_words  # noqa: E402


class SmallConfig:
    """The tutorial's "small" configuration (its keep_prob is 1.0; dropout is on here
    by default, as in its "medium" and "large" configurations)."""
    init_scale = 0.1
    learning_rate = 1.0
    max_grad_norm = 5
    num_layers = 2
    num_steps = 20
    hidden_size = 200
    max_epoch = 4
    max_max_epoch = 13
    keep_prob = 0.9
    lr_decay = 0.5
    batch_size = 20
    vocab_size = 10000


class PTBModel:
    """The PTB model: placeholders for a ``[batch_size, num_steps]`` window of word ids
    and its targets, the LSTM state in and out, the summed per-step loss (``cost``) and,
    when training, the SGD step and the learning-rate assignment."""

    def __init__(self, is_training, config):
        self.batch_size = batch_size = config.batch_size
        self.num_steps = num_steps = config.num_steps
        size, vocab_size = config.hidden_size, config.vocab_size
        self.input_data = fg.placeholder(fg.int32, [batch_size, num_steps], name="input")
        self.targets = fg.placeholder(fg.int32, [batch_size, num_steps], name="targets")

        embedding = fg.get_variable("embedding", [vocab_size, size], dtype=fg.float32)
        inputs = fg.nn.embedding_lookup(embedding, self.input_data)
        if is_training and config.keep_prob < 1:
            inputs = fg.nn.dropout(inputs, config.keep_prob)

        def make_cell():
            cell = fg.nn.LSTMCell(size, forget_bias=0.0)
            if is_training and config.keep_prob < 1:
                cell = fg.nn.DropoutWrapper(cell, output_keep_prob=config.keep_prob)
            return cell

        cell = fg.nn.MultiRNNCell([make_cell() for _ in range(config.num_layers)])
        self.initial_state = cell.zero_state(batch_size, fg.float32)
        outputs, state = fg.nn.static_rnn(cell, fg.unstack(inputs, num=num_steps, axis=1),
                                          initial_state=self.initial_state)
        output = fg.reshape(fg.concat(outputs, 1), [-1, size])

        softmax_w = fg.get_variable("softmax_w", [size, vocab_size], dtype=fg.float32)
        softmax_b = fg.get_variable("softmax_b", [vocab_size], dtype=fg.float32)
        logits = fg.nn.xw_plus_b(output, softmax_w, softmax_b)
        logits = fg.reshape(logits, [batch_size, num_steps, vocab_size])
        loss = fg.nn.sequence_loss(logits, self.targets,
                                   fg.ones([batch_size, num_steps], dtype=fg.float32),
                                   average_across_timesteps=False,
                                   average_across_batch=True)
        self.cost = fg.reduce_sum(loss)
        self.final_state = state
        if not is_training:
            return

        self.lr = fg.Variable(0.0, trainable=False, name="learning_rate")
        tvars = fg.trainable_variables()
        grads, _ = fg.clip_by_global_norm(fg.gradients(self.cost, tvars),
                                          config.max_grad_norm)
        optimizer = fg.train.GradientDescentOptimizer(self.lr)
        self.train_op = optimizer.apply_gradients(
            zip(grads, tvars), global_step=fg.train.get_or_create_global_step())
        self.new_lr = fg.placeholder(fg.float32, shape=[], name="new_learning_rate")
        self.lr_update = fg.assign(self.lr, self.new_lr)

    def assign_lr(self, session, lr_value):
        session.run(self.lr_update, feed_dict={self.new_lr: lr_value})


def run_epoch(session, model, data, train_op=None, verbose=False):
    """The perplexity of ``model`` over ``data`` (one pass), training when ``train_op``."""
    start_time = time.time()
    costs, iters = 0.0, 0
    state = session.run(model.initial_state)
    fetches = {"cost": model.cost, "final_state": model.final_state}
    if train_op is not None:
        fetches["train_op"] = train_op
    epoch_size = ((len(data) // model.batch_size) - 1) // model.num_steps
    for step, (x, y) in enumerate(ptb_iterator(data, model.batch_size, model.num_steps)):
        feed_dict = {model.input_data: x, model.targets: y}
        for i, (c, h) in enumerate(model.initial_state):
            feed_dict[c] = state[i].c
            feed_dict[h] = state[i].h
        vals = session.run(fetches, feed_dict)
        state = vals["final_state"]
        costs += vals["cost"]
        iters += model.num_steps
        if verbose and epoch_size >= 10 and step % (epoch_size // 10) == 10:
            print(f"{step / epoch_size:.3f} perplexity: {np.exp(costs / iters):.3f} speed: "
                  f"{iters * model.batch_size / (time.time() - start_time):.0f} wps",
                  flush=True)
    return float(np.exp(costs / iters))


def load_data(args):
    """(train, valid, test) id arrays and the vocabulary."""
    if args.data_path:
        def words(name):
            with open(os.path.join(args.data_path, f"ptb.{name}.txt"), encoding="utf-8") as f:
                return f.read().replace("\n", " <eos> ").split()
        train, valid, test = words("train"), words("valid"), words("test")
    else:
        all_words = stdlib_words(args.max_words)
        n = len(all_words)
        train, valid, test = (all_words[:int(0.8 * n)], all_words[int(0.8 * n):int(0.9 * n)],
                              all_words[int(0.9 * n):])
    vocab = WordVocabulary(train, args.vocab_size)
    return vocab.encode(train), vocab.encode(valid), vocab.encode(test), vocab


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c = SmallConfig
    p.add_argument("--data-path", default=None,
                   help="a folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt")
    p.add_argument("--max-words", type=int, default=600_000,
                   help="words of the standard-library corpus (80%% train)")
    p.add_argument("--vocab-size", type=int, default=c.vocab_size)
    p.add_argument("--hidden-size", type=int, default=c.hidden_size)
    p.add_argument("--num-layers", type=int, default=c.num_layers)
    p.add_argument("--num-steps", type=int, default=c.num_steps)
    p.add_argument("--batch-size", type=int, default=c.batch_size)
    p.add_argument("--keep-prob", type=float, default=c.keep_prob)
    p.add_argument("--learning-rate", type=float, default=c.learning_rate)
    p.add_argument("--max-epoch", type=int, default=c.max_epoch,
                   help="epochs at the full learning rate")
    p.add_argument("--max-max-epoch", type=int, default=2, help="epochs in all "
                   "(the tutorial: 13)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train_data, valid_data, test_data, vocab = load_data(args)
    config = SmallConfig()
    for name in ("hidden_size", "num_layers", "num_steps", "batch_size", "keep_prob",
                 "learning_rate", "max_epoch", "max_max_epoch"):
        setattr(config, name, getattr(args, name))
    config.vocab_size = len(vocab)
    eval_config = SmallConfig()
    for name in ("hidden_size", "num_layers", "keep_prob"):
        setattr(eval_config, name, getattr(args, name))
    eval_config.vocab_size = len(vocab)
    eval_config.batch_size = eval_config.num_steps = 1
    verbose = not args.quiet
    print(f"corpus: {len(train_data):,} training words, {len(valid_data):,} valid, "
          f"{len(test_data):,} test; vocabulary {len(vocab):,}", flush=True)

    graph = fg.Graph()
    with graph.as_default():
        fg.set_random_seed(args.seed)
        initializer = fg.random_uniform_initializer(-config.init_scale, config.init_scale)
        with fg.name_scope("Train"):
            with fg.variable_scope("Model", reuse=None, initializer=initializer):
                m = PTBModel(is_training=True, config=config)
        with fg.name_scope("Valid"):
            with fg.variable_scope("Model", reuse=True, initializer=initializer):
                mvalid = PTBModel(is_training=False, config=config)
        with fg.name_scope("Test"):
            with fg.variable_scope("Model", reuse=True, initializer=initializer):
                mtest = PTBModel(is_training=False, config=eval_config)

    result = argparse.Namespace(train=[], valid=[], test=None)
    with fg.Session(graph) as session:
        for i in range(config.max_max_epoch):
            lr_decay = config.lr_decay ** max(i + 1 - config.max_epoch, 0.0)
            m.assign_lr(session, config.learning_rate * lr_decay)
            print(f"Epoch: {i + 1} Learning rate: {session.run(m.lr):.3f}", flush=True)
            train_perplexity = run_epoch(session, m, train_data, m.train_op, verbose)
            print(f"Epoch: {i + 1} Train Perplexity: {train_perplexity:.3f}", flush=True)
            valid_perplexity = run_epoch(session, mvalid, valid_data)
            print(f"Epoch: {i + 1} Valid Perplexity: {valid_perplexity:.3f}", flush=True)
            result.train.append(train_perplexity)
            result.valid.append(valid_perplexity)
        result.test = run_epoch(session, mtest, test_data)
        print(f"Test Perplexity: {result.test:.3f}", flush=True)
    return result


if __name__ == "__main__":
    main()
