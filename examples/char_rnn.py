"""Character-level language model (char-RNN) trained with truncated BPTT.

By default it trains on the Python standard library's own source code (every machine
has it), prints the unigram-entropy baseline (nats/char), a progress line with the loss
and characters per second, samples of generated text, and writes a checkpoint that
``--resume`` continues from::

    python examples/char_rnn.py          # 1-layer LSTM, 400 steps: about 11 s on 2 cores
    python examples/char_rnn.py --resume --steps 200      # 200 more steps from the checkpoint
    python examples/char_rnn.py --cell gru --layers 2 --checkpoint gru2.npz
    mpiexec -n 2 python -m mpi4py examples/char_rnn.py --data-parallel

The graph is unrolled over ``--seq-len`` steps (``fg.nn.static_rnn``; ``--loop``: one
symbolic loop, ``fg.nn.dynamic_rnn``, with the same numbers); the final state
of each batch is fetched and fed as the initial state of the next (the streams of
:class:`corpus.StreamBatcher` continue one another), so gradients are truncated at
``--seq-len`` but the state carries over the whole text.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace

# The matrices here are small: a multithreaded BLAS only adds synchronization, and on a
# busy machine its spinning threads made each step 10-20x slower (measured on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401  (finds flowgraph in a source checkout)
import flowgraph as fg  # noqa: E402
from corpus import StreamBatcher, Vocabulary, load_text, unigram_entropy  # noqa: E402

CELLS = {
    "lstm": lambda units, seed: fg.nn.LSTMCell(units, seed=seed),
    "gru": lambda units, seed: fg.nn.GRUCell(units, seed=seed),
    "rnn": lambda units, seed: fg.nn.BasicRNNCell(units, seed=seed),
}


def make_cell(kind, layers, hidden, seed):
    cells = [CELLS[kind](hidden, seed + k) for k in range(layers)]
    return cells[0] if layers == 1 else fg.nn.MultiRNNCell(cells)


def build_model(vocab_size, cell="lstm", layers=1, hidden=128, embed=None, seq_len=32,
                batch=48, lr=0.005, clip=5.0, seed=0, device="/cpu:0", data_parallel=False,
                loop=False):
    """The training graph, an evaluation loss and a one-character sampling step, all
    sharing the same variables. Returns a namespace of tensors and ops.
    """
    m = SimpleNamespace(vocab_size=vocab_size, seq_len=seq_len, batch=batch)
    embed = embed or min(hidden, 64)
    rng = np.random.default_rng(seed)
    with fg.device(device):
        m.embedding = fg.Variable(rng.normal(0, 0.1, (vocab_size, embed)).astype(np.float32),
                                  name="embedding")
        m.cell = make_cell(cell, layers, hidden, seed)
        m.readout = fg.nn.Dense(vocab_size, name="softmax", seed=seed + 100)
        m.global_step = fg.Variable(np.int64(0), name="global_step", trainable=False)

        # Training graph: [batch, seq_len] ids in, time-major targets [seq_len*batch].
        m.inputs = fg.placeholder(fg.int32, (None, seq_len), name="inputs")
        m.targets = fg.placeholder(fg.int32, (None,), name="targets")
        m.state_in = fg.nn.state_placeholders(m.cell, None, fg.float32, name="state_in")
        embedded = fg.nn.embedding_lookup(m.embedding, m.inputs)    # [batch, seq, embed]
        if loop:   # one symbolic loop over time (--loop): the same numbers
            outputs, m.state_out = fg.nn.dynamic_rnn(m.cell, fg.transpose(embedded, (1, 0, 2)),
                                                     initial_state=m.state_in,
                                                     time_major=True)
            outputs = fg.reshape(outputs, (-1, m.cell.output_size))  # time-major rows
        else:
            steps = fg.unstack(embedded, axis=1)
            outputs, m.state_out = fg.nn.static_rnn(m.cell, steps, initial_state=m.state_in)
            outputs = fg.concat(outputs, axis=0)
        logits = m.readout(outputs)                               # [seq_len*batch, vocab]
        m.loss = fg.reduce_mean(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=m.targets, logits=logits), name="loss")
        m.optimizer = fg.train.AdamOptimizer(lr)
        if data_parallel:
            # Gradients are averaged over ranks before clipping: the same update as one
            # process on the full batch.
            m.optimizer = fg.train.DistributedOptimizer(m.optimizer)
        grads, variables = zip(*m.optimizer.compute_gradients(m.loss))
        grads, m.grad_norm = fg.clip_by_global_norm(grads, clip)
        m.train_op = m.optimizer.apply_gradients(zip(grads, variables),
                                                 global_step=m.global_step)

        # Sampling graph: one character at a time, batch 1.
        m.sample_in = fg.placeholder(fg.int32, (1,), name="sample_in")
        m.sample_state = fg.nn.state_placeholders(m.cell, 1, fg.float32, name="sample_state")
        out, m.sample_state_out = m.cell(fg.nn.embedding_lookup(m.embedding, m.sample_in),
                                         m.sample_state)
        m.sample_logits = m.readout(out)
    m.flat_state_in = fg.nn.flatten_state(m.state_in)
    m.flat_sample_state = fg.nn.flatten_state(m.sample_state)
    return m


def zero_state(placeholders, batch):
    return [np.zeros((batch, p.shape[1]), np.float32) for p in placeholders]


def to_feeds(inputs, targets):
    """Targets in the time-major order of the concatenated outputs."""
    return inputs, np.ascontiguousarray(targets.T).reshape(-1)


class Trainer:
    """A compiled training step (``make_callable``) that carries the state over batches."""

    def __init__(self, sess, model):
        self.sess, self.m = sess, model
        flat_out = fg.nn.flatten_state(model.state_out)
        self._step = sess.make_callable([model.loss, flat_out, model.train_op],
                                        [model.inputs, model.targets] + model.flat_state_in)
        self._eval = sess.make_callable([model.loss, flat_out],
                                        [model.inputs, model.targets] + model.flat_state_in)
        self.state = None

    def train_step(self, inputs, targets, fresh):
        if fresh or self.state is None:
            self.state = zero_state(self.m.flat_state_in, inputs.shape[0])
        loss, self.state, _ = self._step(*to_feeds(inputs, targets), *self.state)
        return float(loss)

    def evaluate(self, batcher, max_batches=None):
        """Mean loss over consecutive windows of ``batcher`` (state carried, no update)."""
        n = batcher.windows if max_batches is None else min(batcher.windows, max_batches)
        state = zero_state(self.m.flat_state_in, batcher.inputs.shape[0])
        total = 0.0
        for k in range(n):
            x, y, _ = batcher(k)
            loss, state = self._eval(*to_feeds(x, y), *state)
            total += float(loss)
        return total / n


def sample(sess, model, vocab, length=200, prime="def ", temperature=0.8, seed=0):
    """Generate ``length`` characters after ``prime``."""
    rng = np.random.default_rng(seed)
    step = sess.make_callable([model.sample_logits, fg.nn.flatten_state(
        model.sample_state_out)], [model.sample_in] + model.flat_sample_state)
    state = zero_state(model.flat_sample_state, 1)
    ids = list(vocab.encode(prime))
    for i in ids[:-1]:
        _, state = step(np.array([i], np.int32), *state)
    out = []
    current = ids[-1]
    for _ in range(length):
        logits, state = step(np.array([current], np.int32), *state)
        z = logits[0].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        current = int(rng.choice(len(p), p=p / p.sum()))
        out.append(current)
    return prime + vocab.decode(out)


def progress(step, total, loss, cps, elapsed, width=20):
    done = int(width * step / max(total, 1))
    return (f"[{'#' * done}{'.' * (width - done)}] step {step}/{total}  loss {loss:.3f}  "
            f"{cps:,.0f} chars/s  {elapsed:.0f}s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--steps", type=int, default=400, help="training steps in this run")
    p.add_argument("--lr", type=float, default=0.005, help="Adam learning rate")
    p.add_argument("--clip", type=float, default=5.0, help="clip_by_global_norm threshold")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="/cpu:0", help="e.g. /gpu:0")
    p.add_argument("--soft-placement", action="store_true",
                   help="fall back to the CPU when --device does not exist")
    p.add_argument("--text", default=None, help="train on this UTF-8 file instead of the "
                   "standard library's source")
    p.add_argument("--max-chars", type=int, default=400_000,
                   help="characters of the default corpus to use")
    p.add_argument("--checkpoint", default="char_rnn_checkpoint.npz")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--sample-every", type=int, default=100, help="0: only at the end")
    p.add_argument("--sample-length", type=int, default=300)
    p.add_argument("--eval-batches", type=int, default=20,
                   help="validation windows evaluated at the end")
    p.add_argument("--loop", action="store_true",
                   help="run the time steps in one loop (fg.nn.dynamic_rnn) instead of "
                        "unrolling them (fg.nn.static_rnn)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--data-parallel", action="store_true",
                   help="under mpiexec: each rank trains on its shard of every batch "
                        "(--batch must divide by the number of ranks)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.data_parallel:
        import flowgraph.distributed as fgd
        lead = fgd.rank() == 0
        if args.batch % fgd.size():
            sys.exit(f"char_rnn: --batch {args.batch} must divide by the {fgd.size()} ranks")
    else:
        lead = True
    if not lead:  # one rank logs, samples and saves
        args.quiet = True
        args.sample_every = 0
    say = print if lead else (lambda *a, **k: None)
    if args.data_parallel:
        say(f"data parallel: {fgd.size()} ranks x {args.batch // fgd.size()} rows of each "
            f"batch of {args.batch}")
    t_start = time.perf_counter()
    text = load_text(args.text, args.max_chars)
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    split = int(len(ids) * 0.9)
    train, valid = ids[:split], ids[split:]
    baseline = unigram_entropy(train)
    source = args.text or "the Python standard library's source"
    say(f"corpus: {len(ids):,} characters of {source}, vocabulary {len(vocab)}; "
          f"unigram-entropy baseline {baseline:.3f} nats/char")

    graph = fg.Graph()
    with graph.as_default():
        model = build_model(len(vocab), args.cell, args.layers, args.hidden,
                            seq_len=args.seq_len, batch=args.batch, lr=args.lr,
                            clip=args.clip, seed=args.seed, device=args.device,
                            data_parallel=args.data_parallel, loop=args.loop)
        saver = fg.train.Saver()
    sess = fg.Session(graph, fg.SessionConfig(allow_soft_placement=args.soft_placement))
    if args.resume:
        saver.restore(sess, args.checkpoint)
        say(f"resumed from {args.checkpoint} at step "
              f"{int(sess.variable_value(model.global_step))}")
    first = int(sess.variable_value(model.global_step))
    batcher = StreamBatcher(train, args.batch, args.seq_len)
    valid_batcher = StreamBatcher(valid, min(args.batch, max(1, (len(valid) - 1)
                                                             // (args.seq_len + 1))),
                                  args.seq_len)
    trainer = Trainer(sess, model)
    say(f"model: {args.layers}-layer {args.cell.upper()}, hidden {args.hidden}, "
          f"{sum(int(np.prod(v.shape)) for v in graph.get_collection('trainable_variables')):,}"
          f" parameters; batch {args.batch} x seq {args.seq_len}; {args.steps} steps")

    tty = sys.stdout.isatty() and not args.quiet
    losses, smooth = [], None
    t_train = time.perf_counter()
    chars = 0
    for i in range(args.steps):
        step = first + i
        x, y, fresh = batcher(step)
        chars += x.size                 # the whole batch: all ranks' characters per second
        if args.data_parallel:
            x, y = fgd.shard((x, y))
        loss = trainer.train_step(x, y, fresh or i == 0)
        losses.append(loss)
        smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
        elapsed = time.perf_counter() - t_train
        line = progress(i + 1, args.steps, smooth, chars / elapsed, elapsed)
        if tty:
            print("\r" + line, end="", flush=True)
        elif not args.quiet and ((i + 1) % 25 == 0 or i + 1 == args.steps):
            print(line, flush=True)
        if args.sample_every and (i + 1) % args.sample_every == 0 and i + 1 < args.steps:
            if tty:
                print()
            print(f"--- sample at step {step + 1} ---\n"
                  f"{sample(sess, model, vocab, args.sample_length, seed=step)}\n---")
            saver.save(sess, args.checkpoint)
    if tty:
        print()
    if not lead:
        sess.close()
        return SimpleNamespace(losses=losses, final_train=float(np.mean(losses[-20:])),
                               valid_loss=None, baseline=baseline, checkpoint=None)
    path = saver.save(sess, args.checkpoint)
    final_train = float(np.mean(losses[-20:])) if losses else float("nan")
    valid_loss = trainer.evaluate(valid_batcher, args.eval_batches)
    print(f"--- sample at the end (step {first + args.steps}) ---\n"
          f"{sample(sess, model, vocab, args.sample_length, seed=args.seed)}\n---")
    print(f"checkpoint: {path}")
    rows = "rank 0's rows, " if args.data_parallel else ""
    print(f"final loss: train {final_train:.3f} ({rows}mean of last {min(20, len(losses))} "
          f"steps), validation "
          f"{valid_loss:.3f} nats/char; unigram baseline {baseline:.3f} nats/char")
    print(f"wall time: {time.perf_counter() - t_start:.1f}s")
    sess.close()
    return SimpleNamespace(losses=losses, final_train=final_train, valid_loss=valid_loss,
                           baseline=baseline, checkpoint=path)


if __name__ == "__main__":
    try:
        main()
    except (fg.errors.CheckpointError, fg.errors.PlacementError) as exc:
        sys.exit(f"char_rnn: {exc}")
