"""LSTM vs GRU vs vanilla RNN, 1-3 layers, two sizes: validation loss of char-RNNs on
the standard library's source, all trained the same way (a small-scale version of the
classic comparison table, e.g. Karpathy, Johnson & Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks").

    python examples/compare_cells.py                    # about 2-3 minutes on 2 cores
    python examples/compare_cells.py --steps 500 --sizes 64 128

Prints a Markdown table of validation loss (nats/char) per cell, layers and size.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: see char_rnn.py
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _path  # noqa: E402,F401
import flowgraph as fg  # noqa: E402
from char_rnn import Trainer, build_model  # noqa: E402
from corpus import StreamBatcher, Vocabulary, load_text, unigram_entropy  # noqa: E402


def train_one(kind, layers, hidden, train, valid, vocab_size, args):
    graph = fg.Graph()
    with graph.as_default():
        model = build_model(vocab_size, kind, layers, hidden, seq_len=args.seq_len,
                            batch=args.batch, lr=args.lr, clip=5.0, seed=args.seed)
        params = sum(int(np.prod(v.shape)) for v in fg.trainable_variables())
    sess = fg.Session(graph)
    trainer = Trainer(sess, model)
    batcher = StreamBatcher(train, args.batch, args.seq_len)
    start = time.perf_counter()
    losses = [trainer.train_step(*batcher(i)) for i in range(args.steps)]
    seconds = time.perf_counter() - start
    valid_loss = trainer.evaluate(valid, args.eval_batches)
    sess.close()
    return params, float(np.mean(losses[-10:])), valid_loss, seconds


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    p.add_argument("--layers", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=15)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--batch", type=int, default=48)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--max-chars", type=int, default=150_000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    text = load_text(None, args.max_chars)
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    split = int(len(ids) * 0.9)
    train, valid_ids = ids[:split], ids[split:]
    valid = StreamBatcher(valid_ids, 16, args.seq_len)
    print(f"{len(ids):,} characters, vocabulary {len(vocab)}; {args.steps} steps of "
          f"{args.batch} x {args.seq_len} characters each; unigram baseline "
          f"{unigram_entropy(train):.3f} nats/char\n")
    rows = []
    header = "| cell | layers | hidden | parameters | train loss | validation loss | time (s) |"
    print(header)
    print("|" + "|".join("---" for _ in range(7)) + "|", flush=True)
    for hidden in args.sizes:
        for layers in args.layers:
            for kind in args.cells:
                params, tr, va, sec = train_one(kind, layers, hidden, train, valid,
                                                len(vocab), args)
                rows.append((kind, layers, hidden, params, tr, va, sec))
                print(f"| {kind.upper()} | {layers} | {hidden} | {params:,} | {tr:.3f} | "
                      f"{va:.3f} | {sec:.1f} |", flush=True)
    best = min(rows, key=lambda r: r[5])
    print(f"\nbest validation loss: {best[0].upper()}, {best[1]} layer(s), hidden {best[2]}: "
          f"{best[5]:.3f} nats/char")
    return rows


if __name__ == "__main__":
    main()
