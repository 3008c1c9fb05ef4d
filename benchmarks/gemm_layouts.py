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

``--step`` times every GEMM of a whole training step of ``rnn_step.py`` instead, in the
plan's layout and in the transposed one a layout pass would give (the state kept as
hidden x batch): the forward product, the state gradient through the recurrent weight
(``dz @ K_h.T``: the plan's untransposed copy, BLAS's transpose flag, or ``K_h @ dz.T``)
and the stacked weight gradient (``HX.T @ DZ``, or ``HX_t @ DZ_t.T`` from transposed
stacks), each per call in this thread's CPU time (``time.thread_time``: time other
jobs hold the core is not counted, so a loaded machine still ranks the layouts), times
its count per step. It also times the forward split as torch does it (``h @ K_h`` per
step plus one ``X @ K_x`` over all steps).

    python benchmarks/gemm_layouts.py --out benchmarks/results/gemm_layouts
    python benchmarks/gemm_layouts.py --step --out benchmarks/results/gemm_layouts_step
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


def step_variants(cell, B, I, H, T, dtype):
    """``{name: (callable, calls per training step)}``: each GEMM of one training step of
    ``rnn_step.py`` at (B, I, H, T), in the plan's layout and the transposed one."""
    import numpy as np
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    k = H if cell == "gru" else H + I       # the GRU's per-step product is h @ U
    n = gates * H
    rng = np.random.default_rng(0)
    r = lambda *shape: (rng.random(shape, dtype) - 0.5)  # noqa: E731
    hx, w, dz = r(B, k), r(k, n), r(B, n)
    w_t, hx_t, dz_t = (np.ascontiguousarray(a.T) for a in (w, hx, dz))
    w_h = np.ascontiguousarray(w[:H])
    w_h_t = np.ascontiguousarray(w_h.T)
    stack_hx, stack_dz = r(T * B, k), r(T * B, n)
    stack_hx_t, stack_dz_t = np.ascontiguousarray(stack_hx.T), np.ascontiguousarray(stack_dz.T)
    z, z_t, dh, dh_t = (np.empty(s, dtype) for s in ((B, n), (n, B), (B, H), (H, B)))
    dk, dk2 = np.empty((k, n), dtype), np.empty((k, n), dtype)
    mm = np.matmul
    out = {"forward plain": (lambda: mm(hx, w, out=z), T),
           "forward transposed": (lambda: mm(w_t, hx_t, out=z_t), T),
           "state grad plain": (lambda: mm(dz, w_h_t, out=dh), T - 1),
           "state grad flag": (lambda: mm(dz, w_h.T, out=dh), T - 1),
           "state grad transposed": (lambda: mm(w_h, dz_t, out=dh_t), T - 1),
           "weight grad plain": (lambda: mm(stack_hx.T, stack_dz, out=dk), 1),
           "weight grad transposed": (lambda: mm(stack_hx_t, stack_dz_t.T, out=dk2), 1)}
    if cell != "gru":
        h, x_all = r(B, H), r(T * B, I)
        w_x, xk = np.ascontiguousarray(w[H:]), np.empty((T * B, n), dtype)
        out["forward split: h @ K_h"] = (lambda: mm(h, w_h, out=z), T)
        out["forward split: X @ K_x"] = (lambda: mm(x_all, w_x, out=xk), 1)
    return out


def time_step(cell, size, dtype, repeats):
    """A row: per variant, the minimum and median CPU ms per step (calls x count), in
    turn within each repeat."""
    import statistics
    import time
    from rnn_step import SIZES
    d = SIZES[size]
    fns = step_variants(cell, d["B"], d["I"], d["H"], d["T"], dtype)
    spent = {name: [] for name in fns}
    for fn, _ in fns.values():
        fn()
    clock = time.thread_time
    for _ in range(repeats):
        for name, (fn, count) in fns.items():
            t = clock()
            fn()
            spent[name].append((clock() - t) * 1e3 * count)
    row = {"cell": cell, "size": size}
    for name, values in spent.items():
        row[name + " min"] = min(values)
        row[name + " median"] = statistics.median(values)
    for stat in ("min", "median"):
        plain = sum(row[f"{v} plain {stat}"] for v in ("forward", "state grad", "weight grad"))
        moved = sum(row[f"{v} transposed {stat}"]
                    for v in ("forward", "state grad", "weight grad"))
        row[f"transposed / plain ({stat})"] = moved / plain
    return row


def main_step(args):
    rows = [time_step(cell, size, args.dtype, args.repeats)
            for cell, size in (("lstm", "medium"), ("lstm", "large"), ("gru", "large"),
                               ("rnn", "large"))]
    for row in rows:
        print(row, flush=True)
    names = [k[:-4] for k in rows[0] if k.endswith(" min")]
    columns = ["variant"] + [f"{r['cell']} {r['size']}" for r in rows]
    table = [{"variant": name, **{f"{r['cell']} {r['size']}":
                                  f"{r.get(name + ' min', float('nan')):.1f} / "
                                  f"{r.get(name + ' median', float('nan')):.1f}"
                                  for r in rows}}
             for name in sorted({k[:-4] for r in rows for k in r if k.endswith(" min")},
                                key=lambda k: names.index(k) if k in names else len(names))]
    table.append({"variant": "all three transposed / plain (min, median)",
                  **{f"{r['cell']} {r['size']}":
                     f"{r['transposed / plain (min)']:.3f}, "
                     f"{r['transposed / plain (median)']:.3f}" for r in rows}})
    notes = [f"{args.dtype}, one pinned core, one BLAS thread; ms per training step "
             f"(per-call CPU time of this thread times the calls per step), minimum / "
             f"median of {args.repeats} repeats, variants in turn within each repeat."]
    print(write_results(table, columns, args.out, "GEMMs of one RNN training step by "
                        "layout (np.matmul, CPU ms)", notes))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--step", action="store_true",
                        help="every GEMM of a training step, plan vs transposed layout")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results", "gemm_layouts"))
    args = parser.parse_args()
    pin_threads(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    if args.step:
        return main_step(args)
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
