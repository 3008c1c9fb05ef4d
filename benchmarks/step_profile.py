"""Where a compiled training step spends its time: per kind of plan step and per GEMM.

Builds the same training step as ``rnn_step.py``, then times each unit of its compiled
plan alone (the steps one op of the original graph turned into: a fused kernel, a
GEMM, a copy), summed per kind, and the GEMMs per shape with their GFLOP/s. Reading
this is how the figures in the README's benchmark notes were found (the share of the
step spent in BLAS, the rate of each GEMM shape).

    python benchmarks/step_profile.py --cell lstm --size medium
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import pin_threads  # noqa: E402


def kernel_label(origin):
    """A unit's kind: the op, and for a fused region its op types in brief."""
    group = getattr(origin, "group", None)
    if group is None:
        return origin.type
    kinds = collections.Counter(n.type for n in group.nodes)
    return "fused " + ",".join(f"{t}x{c}" if c > 1 else t for t, c in sorted(kinds.items()))


def gemm_key(node):
    (a, b), attrs = [v[0].shapes[v[1]] for v in node.inputs], node.attrs
    m, k = (a[1], a[0]) if attrs.get("transpose_a") else a
    n = b[0] if attrs.get("transpose_b") else b[1]
    return f"{m}x{k} @ {k}x{n}" + (" (A transposed)" if attrs.get("transpose_a") else "") + (
        " (B transposed)" if attrs.get("transpose_b") else ""), 2.0 * m * k * n


def profile(cell, size, dtype, repeats):
    import numpy as np
    from rnn_step import SIZES, fg_training_step
    d = SIZES[size]
    step, sess, _ = fg_training_step(cell, d["B"], d["I"], d["H"], d["T"], dtype)
    xs = list(np.random.default_rng(1).standard_normal((d["T"], d["B"], d["I"])).astype(dtype))
    step(*xs)
    whole = []
    for _ in range(repeats):
        t = time.perf_counter()
        step(*xs)
        whole.append(time.perf_counter() - t)
    plan = next(iter(sess._plans.values()))
    per_kind = collections.defaultdict(list)      # label -> [seconds per repeat]
    gemms = collections.defaultdict(lambda: [0.0, 0, 0.0])
    # The plan's units, in order (the grouping its check_numerics mode uses). State
    # ops (variable reads and writes) need a run's state and are left out.
    units = [u for u in plan._checked_steps if u[2].kind != "state"]
    for r in range(repeats):
        spent = collections.Counter()
        for unit_steps, _, origin in units:
            t = time.perf_counter()
            for s in unit_steps:
                s()
            dt = time.perf_counter() - t
            spent[kernel_label(origin)] += dt
            if origin.type == "MatMul" and r == repeats - 1:
                key, flops = gemm_key(origin)
                gemms[key][0] += dt
                gemms[key][1] += 1
                gemms[key][2] += flops
        for label, dt in spent.items():
            per_kind[label].append(dt)
    sess.close()
    step_ms = 1e3 * statistics.median(whole)
    print(f"{cell} {size} {dtype}: step {step_ms:.2f} ms (median of {repeats})")
    rows = sorted(((1e3 * statistics.median(v), k) for k, v in per_kind.items()), reverse=True)
    for ms, label in rows[:12]:
        print(f"  {ms:9.3f} ms {100 * ms / step_ms:5.1f}%  {label}")
    print("  GEMMs by shape (last repeat):")
    for key, (t, count, flops) in sorted(gemms.items(), key=lambda kv: -kv[1][0]):
        print(f"  {1e3 * t:9.3f} ms  {count:3d} x {key}: {flops / t / 1e9:.1f} GFLOP/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pin_threads(args.threads)
    profile(args.cell, args.size, args.dtype, args.repeats)


if __name__ == "__main__":
    main()
