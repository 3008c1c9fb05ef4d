"""Run overhead, per-kernel overhead, and compile time of the T=50 LSTM training graph.

    python benchmarks/overhead.py --out benchmarks/results/overhead

1. ``run`` overhead of a one-op graph (``x + 1`` on one element): through
   ``Session.run``, through ``make_callable``, and the compiled plan's own ``run``.
2. Per-kernel overhead: a chain of N tiny unfusable steps (1x1 matmul, then a kernel);
   the slope of time against the number of steps.
3. Compile time of the T=50 LSTM training graph (medium sizes) in a new process:
   cold (empty ``FLOWGRAPH_CACHE_DIR``) and again from the disk cache. "plan" is the
   first call minus a steady-state call; "process" adds ``import flowgraph`` and Numba's
   own start-up. ``--compile-repeats N`` runs the from-cache process N times and
   reports the run with the median plan time; ``--only-compile`` skips parts 1 and 2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median_ms, pin_threads, write_results  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

COMPILE_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {here!r})
from common import pin_threads
pin_threads(1)
import numpy as np
import rnn_step as R
t_import = time.perf_counter() - t0
step, sess, graph = R.fg_training_step("lstm", 64, 128, 256, 50, "float32")
xs = list(np.random.default_rng(1).standard_normal((50, 64, 128)).astype("float32"))
t = time.perf_counter(); step(*xs); first = time.perf_counter() - t
t = time.perf_counter(); step(*xs); steady = time.perf_counter() - t
plan = next(iter(sess._plans.values()))
print(json.dumps({{"import_s": t_import, "first_call_s": first, "steady_s": steady,
                  "plan_s": first - steady, "process_s": time.perf_counter() - t0,
                  "ops": len(graph.operations), "steps": len(plan._steps),
                  "kernels": len(plan.kernel_sources), "memory": plan.memory_stats}}))
"""


def run_overhead(repeats=2000):
    import numpy as np
    import flowgraph as fg
    from flowgraph.executor import RunState
    rows = []
    with fg.Graph().as_default():
        x = fg.placeholder(fg.float32, (1,))
        y = x + 1.0
        value = np.ones(1, np.float32)
        for optimize in (True, False):
            sess = fg.Session(config=fg.SessionConfig(optimize=optimize, compile="eager"))
            call = sess.make_callable(y, [x])
            run_us = median_ms(lambda: sess.run(y, {x: value}), repeats, 50) * 1e3
            call_us = median_ms(lambda: call(value), repeats, 50) * 1e3
            plan = next(iter(sess._plans.values()))
            feeds = {x: value}
            plan_us = median_ms(lambda: plan.run(feeds, RunState({}, None)), repeats, 50) * 1e3
            rows.append({"measure": f"one-op graph, optimize={optimize}",
                         "Session.run µs": run_us, "make_callable µs": call_us,
                         "plan.run µs": plan_us})
            sess.close()
    return rows


def per_kernel_overhead(repeats=300):
    import numpy as np
    import flowgraph as fg
    from flowgraph.executor import RunState
    out = {}
    for kind in ("ufunc", "numba"):
        times = {}
        for n in (1, 64):
            with fg.Graph().as_default():
                x = fg.placeholder(fg.float32, (1, 1))
                w = fg.constant(np.full((1, 1), 0.5, np.float32))
                h = x
                for _ in range(n):
                    h = fg.matmul(h, w)
                    h = fg.tanh(h) if kind == "ufunc" else h * 0.5 + 0.25
                sess = fg.Session(config=fg.SessionConfig(compile="eager"))
                sess.run(h, {x: np.ones((1, 1), np.float32)})
                plan = next(iter(sess._plans.values()))
                feeds = {x: np.ones((1, 1), np.float32)}
                times[n] = (median_ms(lambda: plan.run(feeds, RunState({}, None)), repeats, 10),
                            len(plan._steps))
        (t1, s1), (t64, s64) = times[1], times[64]
        out[kind] = (t64 - t1) * 1e3 / (s64 - s1)
    return out


def compile_times(repeats=1):
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, FLOWGRAPH_CACHE_DIR=cache)
        for label, runs in (("cold (empty cache)", 1),
                            ("from disk cache, new process", repeats)):
            results = []
            for _ in range(runs):
                proc = subprocess.run([sys.executable, "-c",
                                       COMPILE_CHILD.format(here=HERE)],
                                      env=env, capture_output=True, text=True, timeout=900)
                if proc.returncode:
                    raise RuntimeError(proc.stderr[-3000:])
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(results[-1], flush=True)
            data = sorted(results, key=lambda r: r["plan_s"])[(len(results) - 1) // 2]
            note = f", median of {runs} processes" if runs > 1 else ""
            data["measure"] = f"T=50 LSTM training graph, {label}{note}"
            rows.append(data)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "overhead"))
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--only-compile", action="store_true",
                        help="measure only the compile time of the LSTM graph")
    parser.add_argument("--compile-repeats", type=int, default=1,
                        help="from-cache processes to run (the median is reported)")
    args = parser.parse_args()
    pin_threads(1)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    rows = []
    if not args.only_compile:
        rows = run_overhead()
        per_kernel = per_kernel_overhead()
        for kind, us in per_kernel.items():
            rows.append({"measure": f"per step in a plan ({kind} kernel / 1x1 matmul chain)",
                         "plan.run µs": us})
    if not args.skip_compile:
        for r in compile_times(args.compile_repeats):
            rows.append({"measure": r["measure"], "plan compile s": r["plan_s"],
                         "process s": r["process_s"], "import s": r["import_s"],
                         "kernels": r["kernels"], "steps": r["steps"], "ops": r["ops"],
                         "buffers / live set": (r["memory"]["pooled_bytes"]
                                                / r["memory"]["largest_live_set_bytes"]),
                         "pooled MB": r["memory"]["pooled_bytes"] / 2**20,
                         "live set MB": r["memory"]["largest_live_set_bytes"] / 2**20,
                         "scratch MB": r["memory"].get("scratch_bytes", 0) / 2**20})
    columns = ["measure", "Session.run µs", "make_callable µs", "plan.run µs",
               "plan compile s", "process s", "import s", "kernels", "steps", "ops",
               "buffers / live set", "pooled MB", "live set MB", "scratch MB"]
    print(write_results(rows, columns, args.out, "Overheads and compile time",
                        ["one pinned core; medians; the machine was shared with other jobs"
                         " while measuring (noisy)."]))


if __name__ == "__main__":
    main()
