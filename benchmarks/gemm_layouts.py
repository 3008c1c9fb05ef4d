"""The forward GEMM of an RNN step in other layouts: what NumPy's BLAS makes of each.

The per-step ``[h, x] @ K`` (B x (H+I) times (H+I) x gH) dominates a training step
(`step_profile.py`). This times, with ``np.matmul`` on one pinned core, the same
product computed as

- ``a @ b``: what the plan runs;
- ``b.T @ a.T``: the transposed product, into a transposed output (the state kept in
  hidden x batch layout);
- per-gate pieces: one GEMM per gate over a contiguous slice of the weight, each into
  its window of the output.

Medians of many calls after warm-up; the table says which would pay at which shape.

    python benchmarks/gemm_layouts.py --out benchmarks/results/gemm_layouts
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_ms, pin_threads, write_results  # noqa: E402

# (cell, size) -> (B, H + I, gates * H, gates): the forward GEMMs of rnn_step.py.
SHAPES = {("lstm", "small"): (16, 96, 256, 4), ("lstm", "medium"): (64, 384, 1024, 4),
          ("lstm", "large"): (128, 768, 2048, 4), ("gru", "medium"): (64, 256, 768, 3),
          ("gru", "large"): (128, 512, 1536, 3)}


def variants(m, k, n, gates, dtype):
    """``{name: zero-argument callable}``, each computing ``a @ b`` its own way and
    returning it (as an m x n array or view)."""
    import numpy as np
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype), rng.random((k, n), dtype)
    out, out_t, out_pieces = (np.empty((m, n), dtype), np.empty((n, m), dtype),
                              np.empty((m, n), dtype))
    a_t, b_t = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    width = n // gates
    pieces = [(np.ascontiguousarray(b[:, g * width:(g + 1) * width]),
               out_pieces[:, g * width:(g + 1) * width]) for g in range(gates)]

    def per_gate():
        for weight, window in pieces:
            np.matmul(a, weight, out=window)
        return out_pieces
    return {"a @ b ms": lambda: np.matmul(a, b, out=out),
            "b.T @ a.T ms": lambda: np.matmul(b_t, a_t, out=out_t).T,
            "per-gate pieces ms": per_gate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results", "gemm_layouts"))
    args = parser.parse_args()
    pin_threads(1)
    rows = []
    for (cell, size), (m, k, n, gates) in SHAPES.items():
        row = {"cell": cell, "size": size, "shape": f"{m}x{k} @ {k}x{n}"}
        for name, fn in variants(m, k, n, gates, args.dtype).items():
            row[name] = median_ms(fn, args.repeats, warmup=5)
        base = row["a @ b ms"]
        row["transposed / plain"] = row["b.T @ a.T ms"] / base
        row["pieces / plain"] = row["per-gate pieces ms"] / base
        rows.append(row)
        print(row, flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    columns = ["cell", "size", "shape", "a @ b ms", "b.T @ a.T ms", "per-gate pieces ms",
               "transposed / plain", "pieces / plain"]
    notes = [f"{args.dtype}, one pinned core, one BLAS thread; medians of {args.repeats} "
             "calls after 5 warm-up calls; the machine is shared (noisy)."]
    print(write_results(rows, columns, args.out, "Forward GEMM layouts (np.matmul)", notes))


if __name__ == "__main__":
    main()
