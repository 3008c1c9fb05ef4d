"""Data-parallel training of a small character-level LSTM over MPI.

One process:        python examples/data_parallel.py
Two processes:      mpiexec -n 2 python -m mpi4py examples/data_parallel.py
On a Slurm cluster: srun -n 8 python -m mpi4py examples/data_parallel.py

Every rank builds the same graph, draws the same global batch and trains on its own
shard of it; ``DistributedOptimizer`` averages the gradients of all ranks in one fused
allreduce per step and makes every session start from rank 0's weights, so all ranks
hold the same model after every step. The LSTM is written with fg ops (the equations of
the README's LSTMCell) so the example does not depend on fg.nn's cells.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import flowgraph as fg
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import flowgraph as fg
import flowgraph.distributed as fgd

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
        "incredulity, it was the season of Light, it was the season of Darkness, it was "
        "the spring of hope, it was the winter of despair. ")


def build_char_lstm(vocab, steps, hidden, dtype, seed):
    """Placeholders ``ids [batch, steps+1]`` and the mean next-character loss."""
    rng = np.random.default_rng(seed)
    ids = fg.placeholder(fg.int64, (None, steps + 1), name="ids")
    kernel = fg.Variable(rng.normal(0, 0.1, (hidden + vocab, 4 * hidden)).astype(dtype),
                         name="lstm/kernel")
    bias = fg.Variable(np.concatenate([np.zeros(hidden), np.ones(hidden),
                                       np.zeros(2 * hidden)]).astype(dtype), name="lstm/bias")
    w_out = fg.Variable(rng.normal(0, 0.1, (hidden, vocab)).astype(dtype), name="out/w")
    b_out = fg.Variable(np.zeros(vocab, dtype), name="out/b")
    x = fg.one_hot(ids, vocab, dtype=dtype)
    # zero state of shape [batch, hidden] for a batch size known only at run time
    h = c = fg.zeros_like(x[:, 0, :1]) * fg.zeros((1, hidden), dtype)
    losses = []
    for t in range(steps):
        z = fg.matmul(fg.concat([h, x[:, t, :]], 1), kernel) + bias
        i, f, o, g = fg.split(z, 4, axis=1)
        c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
        h = fg.sigmoid(o) * fg.tanh(c)
        logits = h @ w_out + b_out
        losses.append(fg.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ids[:, t + 1], logits=logits))
    return ids, fg.reduce_mean(fg.stack(losses))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps")
    parser.add_argument("--batch", type=int, default=32, help="global batch (all ranks)")
    parser.add_argument("--seq", type=int, default=16, help="characters per sequence")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=3, help="steps not timed")
    parser.add_argument("--json", help="write timings to this file (rank 0)")
    args = parser.parse_args(argv)

    chars = sorted(set(TEXT))
    encoded = np.array([chars.index(ch) for ch in TEXT], np.int64)
    ids, loss = build_char_lstm(len(chars), args.seq, args.hidden, np.float32,
                                seed=1234 + fgd.rank())  # rank 0's weights win
    train = fgd.DistributedOptimizer(fg.train.GradientDescentOptimizer(args.lr)).minimize(loss)
    mean_loss, = fgd.allreduce_mean([loss]) if fgd.size() > 1 else [loss]

    data_rng = np.random.default_rng(0)  # the same global batches on every rank
    step_times, history = [], []
    waited0 = 0.0                           # allreduce seconds before the timed steps
    with fg.Session() as sess:
        step = sess.make_callable(train, [ids])
        step_with_loss = sess.make_callable([train, mean_loss], [ids])
        for n in range(args.steps):
            starts = data_rng.integers(0, len(encoded) - args.seq - 1, size=args.batch)
            batch = np.stack([encoded[s:s + args.seq + 1] for s in starts])
            mine = fgd.shard(batch)
            t0 = time.perf_counter()
            if n % 10 == 0 or n == args.steps - 1:
                _, value = step_with_loss(mine)
                history.append((n, float(value)))
                if fgd.rank() == 0:
                    print(f"step {n:4d}  loss {float(value):.4f}", flush=True)
            else:
                step(mine)
            if n == args.warmup - 1:
                waited0 = fgd.world().allreduce_seconds
            if n >= args.warmup:
                step_times.append(time.perf_counter() - t0)
    waited = fgd.world().allreduce_seconds - waited0
    median = float(np.median(step_times)) if step_times else float("nan")
    if fgd.rank() == 0:
        if not step_times:
            print(f"{fgd.size()} rank(s): no step timed (--steps {args.steps} <= --warmup "
                  f"{args.warmup})", flush=True)
        else:
            print(f"{fgd.size()} rank(s): {1.0 / median:.1f} steps/s (median of "
                  f"{len(step_times)} steps, global batch {args.batch}); rank 0 spent "
                  f"{waited / len(step_times) * 1e3:.1f} ms/step in allreduce (waiting "
                  "for the slowest rank included)", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"ranks": fgd.size(), "median_step_s": median,
                           "steps_per_s": 1.0 / median, "losses": history,
                           "allreduce_ms_per_step": waited / max(len(step_times), 1) * 1e3,
                           "batch": args.batch, "seq": args.seq, "hidden": args.hidden},
                          f)
    return history


if __name__ == "__main__":
    main()
