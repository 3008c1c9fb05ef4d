"""TF1's composite ops (issue 14) against their nearest primitive peer, compiled, one
pinned core: what composing costs instead of adding a primitive.

Each pair is timed in turn within every repeat (medians after warm-up), so the ratio
holds on a shared machine even when the absolute times move:

- ``reduce_min`` (``-reduce_max(-x)``: one extra elementwise pass) vs ``reduce_max``;
- ``reverse`` (a strided slice with step -1) vs a plain copy (``x[::1]``);
- ``tile`` (a broadcast add and a reshape) vs ``concat`` of the copies;
- ``reverse_sequence`` (a gather of rows) vs ``gather`` of the same number of rows.

``python benchmarks/composite_ops.py [--size 256x1024] [--repeats 50]``
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import pin_threads  # noqa: E402


def pairs(fg, np, rows, cols):
    x = fg.placeholder(fg.float32, (rows, cols))
    lengths = np.random.default_rng(0).integers(1, cols, rows)
    flat_rows = fg.constant(np.arange(rows * cols, dtype=np.int32)[::-1].copy())
    x3 = fg.reshape(x, (rows, cols, 1))
    return x, {
        "reduce_min vs reduce_max": (fg.reduce_min(x, 1), fg.reduce_max(x, 1)),
        "reverse vs copy": (fg.reverse(x, [1]), x[:, ::1] * 1.0 + 0.0),
        "tile vs concat": (fg.tile(x, [1, 2]), fg.concat([x, x], 1)),
        "reverse_sequence vs gather": (
            fg.reverse_sequence(x3, lengths, seq_axis=1, batch_axis=0),
            fg.gather(fg.reshape(x, (-1, 1)), flat_rows)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="256x1024")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    pin_threads(1)
    import numpy as np
    import flowgraph as fg
    rows, cols = (int(d) for d in args.size.split("x"))
    value = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)
    print(f"{rows}x{cols} float32, compiled, one pinned core; ms, medians of "
          f"{args.repeats} (pairs timed in turn)")
    with fg.Graph().as_default():
        x, table = pairs(fg, np, rows, cols)
        sess = fg.Session(config=fg.SessionConfig(compile="eager"))
        for name, (composite, peer) in table.items():
            a = sess.make_callable(composite, [x])
            b = sess.make_callable(peer, [x])
            for _ in range(3):
                a(value), b(value)
            ta, tb = [], []
            for _ in range(args.repeats):
                t = time.perf_counter(); a(value); ta.append(time.perf_counter() - t)
                t = time.perf_counter(); b(value); tb.append(time.perf_counter() - t)
            ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
            print(f"  {name:28s} {ma:8.3f} {mb:8.3f}   ratio {ma / mb:5.2f}")


if __name__ == "__main__":
    main()
