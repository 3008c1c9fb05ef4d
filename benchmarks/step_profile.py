"""Where a compiled training step spends its time: per kind of plan step and per GEMM.

Builds the same training step as ``rnn_step.py``, then times each unit of its compiled
plan (the steps one op of the original graph turned into: a fused kernel, a GEMM, a
copy) inside real runs, summed per kind, and the GEMMs per shape with their GFLOP/s.
Reading this is how the figures in the README's benchmark notes were found (the share of the
step spent in BLAS, the rate of each GEMM shape).

    python benchmarks/step_profile.py --cell lstm --size medium
    python benchmarks/step_profile.py --program ptb     # a model of programs.py
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


def gemm_shape(node):
    """``(m, k, n, transpose_a, transpose_b)`` of a plan's MatMul node: an (m x k) @
    (k x n) product, with the layouts its operands are stored in."""
    (a, b), attrs = [v[0].shapes[v[1]] for v in node.inputs], node.attrs
    ta, tb = bool(attrs.get("transpose_a")), bool(attrs.get("transpose_b"))
    m, k = (a[1], a[0]) if ta else a
    n = b[0] if tb else b[1]
    return m, k, n, ta, tb


def gemm_key(node):
    m, k, n, ta, tb = gemm_shape(node)
    return f"{m}x{k} @ {k}x{n}" + (" (A transposed)" if ta else "") + (
        " (B transposed)" if tb else ""), 2.0 * m * k * n


def timed_runs(run, plan, repeats, clock=time.perf_counter):
    """Run ``run()`` (one real step through ``plan``) ``repeats`` times with a timer on
    every step of the plan. Returns ``(results, rows)``: what each run returned, and per
    run ``(wall seconds, [seconds per unit of plan._checked_steps])``.

    The units are timed inside real runs, so each reads the values that run fed and
    loaded. (Calling the units again after a run, as this script once did, fed them
    whatever the pooled buffers held by then: feeds and variable reads were not
    reloaded, and a buffer reused for another value could hold denormals, which made
    GEMMs on Intel cores up to 20x slower than in the step: a GRU large step of about
    1 s showed 21 s of GEMMs.)

    ``clock``: ``time.perf_counter`` (wall time), or ``time.thread_time`` (this
    thread's CPU time: on a shared machine, time other jobs hold the core is not
    counted; ``--cpu-time``).
    """
    units = plan._checked_steps
    unit_of = {id(s): u for u, (unit_steps, _, _) in enumerate(units) for s in unit_steps}
    spent = [0.0] * len(units)

    def timed(s, u):
        def call():
            t = clock()
            s()
            spent[u] += clock() - t
        return call

    original = plan._steps
    plan._steps = [timed(s, unit_of[id(s)]) if id(s) in unit_of else s for s in original]
    results, rows = [], []
    try:
        for _ in range(repeats):
            spent[:] = [0.0] * len(units)
            t = clock()
            results.append(run())
            rows.append((clock() - t, list(spent)))
    finally:
        plan._steps = original
    return results, rows


def summarize(plan, rows):
    """``(per_kind, gemms)``: median seconds per unit label over the runs, and per GEMM
    shape ``[median seconds per step, count per step, flops per step]``."""
    units = plan._checked_steps
    per_kind = collections.defaultdict(lambda: [0.0] * len(rows))
    gemm_runs = collections.defaultdict(lambda: [0.0] * len(rows))
    gemms = {}
    for u, (_, _, origin) in enumerate(units):
        label = kernel_label(origin)
        for r, (_, spent) in enumerate(rows):
            per_kind[label][r] += spent[u]
        if origin.type == "MatMul":
            key, flops = gemm_key(origin)
            entry = gemms.setdefault(key, [0.0, 0, 0.0])
            entry[1] += 1
            entry[2] += flops
            for r, (_, spent) in enumerate(rows):
                gemm_runs[key][r] += spent[u]
    for key, entry in gemms.items():
        entry[0] = statistics.median(gemm_runs[key])
    return {k: statistics.median(v) for k, v in per_kind.items()}, gemms


def profile(cell, size, dtype, repeats, clock=time.perf_counter):
    """Print where a compiled step's time goes; returns ``(results, rows, plan)`` of
    :func:`timed_runs` (for the tests)."""
    import numpy as np
    from rnn_step import SIZES, fg_training_step
    d = SIZES[size]
    step, sess, _ = fg_training_step(cell, d["B"], d["I"], d["H"], d["T"], dtype)
    xs = list(np.random.default_rng(1).standard_normal((d["T"], d["B"], d["I"])).astype(dtype))
    return _profile_step(lambda: step(*xs), sess, f"{cell} {size} {dtype}", repeats, clock)


def profile_program(name, repeats, clock=time.perf_counter):
    """:func:`profile` for a whole training step of ``programs.py`` (``char``, ``ptb``
    ``rows`` or ``cnn``)."""
    import programs
    cfg = programs.PROGRAMS[name]
    step, _, _ = programs.fg_program(name, cfg)
    x, y = programs.make_batch(name, cfg)
    for _ in range(2):
        step(x, y)
    return _profile_step(lambda: step(x, y), step.session, f"program {name}", repeats,
                         clock)


def _profile_step(run, sess, title, repeats, clock=time.perf_counter):
    run()
    whole = []
    for _ in range(repeats):
        t = clock()
        run()
        whole.append(clock() - t)
    plan = next(iter(sess._plans.values())) if len(sess._plans) == 1 else \
        max(sess._plans.values(), key=lambda p: len(p._steps))
    results, rows = timed_runs(run, plan, repeats, clock)
    sess.close()
    per_kind, gemms = summarize(plan, rows)
    step_ms = 1e3 * statistics.median(whole)
    what = "CPU time" if clock is time.thread_time else "wall time"
    print(f"{title}: step {step_ms:.2f} ms {what} (median of {repeats}; with a "
          f"timer on each of its {len(plan._steps)} steps "
          f"{1e3 * statistics.median(r[0] for r in rows):.2f} ms)")
    for label, sec in sorted(per_kind.items(), key=lambda kv: -kv[1])[:TOP_KINDS]:
        print(f"  {1e3 * sec:9.3f} ms {100 * 1e3 * sec / step_ms:5.1f}%  {label}")
    print("  GEMMs by shape (per step, medians):")
    for key, (t, count, flops) in sorted(gemms.items(), key=lambda kv: -kv[1][0]):
        print(f"  {1e3 * t:9.3f} ms  {count:3d} x {key}: {flops / max(t, 1e-12) / 1e9:.1f} GFLOP/s")
    return results, rows, plan


TOP_KINDS = 12     # kinds of plan step listed, most time first (--top)


def main():
    global TOP_KINDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    parser.add_argument("--size", default="medium", choices=["small", "medium", "large"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--program", choices=["char", "ptb", "rows", "cnn"], default=None,
                        help="profile a model of programs.py instead of an RNN cell")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time in this thread's CPU time (time.thread_time), not wall "
                        "time: on a shared machine, time other jobs hold the core is "
                        "not counted (one thread only)")
    parser.add_argument("--top", type=int, default=TOP_KINDS,
                        help="how many kinds of plan step to list (most time first)")
    args = parser.parse_args()
    TOP_KINDS = args.top
    pin_threads(args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    if args.program:
        profile_program(args.program, args.repeats, clock)
    else:
        profile(args.cell, args.size, args.dtype, args.repeats, clock)


if __name__ == "__main__":
    main()
