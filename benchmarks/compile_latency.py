"""How long a user waits: time to the end of the first training step, and compile cost
against graph size.

    python benchmarks/compile_latency.py --out benchmarks/results/compile_latency

1. **First step, empty kernel cache** (each in a new process with a new, empty
   ``FLOWGRAPH_CACHE_DIR``): the char-LSTM (T=32, H=256, vocabulary 96, batch 48,
   softmax loss, Adam, gradient clipping: ``examples/char_rnn.py``'s model at
   ``--hidden 256``) and ``examples/char_rnn.py``'s default model (H=128), under
   ``SessionConfig(compile="background")`` (the default) and ``"eager"``. "first step"
   is the first ``train_step`` call (the plan is built and run there); "to first step"
   adds ``import flowgraph`` and building the graph. Then the background run keeps
   training and reports how many steps ran, and after how long, before
   ``wait_compiled`` returned.
2. **Steady state**: in one process with a warm cache, a session whose kernels were
   compiled in the background (after ``wait_compiled``) against an eager one, steps
   timed in turn in a shuffled order (the ratio is the median of the per-repeat
   ratios): the same kernels, so the ratio should be 1 within noise.
   A third session with ``compile="never"`` shows what the kernels buy.
3. **T scaling**: a T-step LSTM training graph (B=16, I=32, H=64, ``fg.nn.LSTMCell``,
   loss mean(h_T^2), gradients of all weights) for T = 50 ... 1000, each in a new
   process with a warm kernel cache: graph building, ``gradients``, the first run
   (eager: plan building and loading the kernels from the disk cache), microseconds
   per op.

4. **Loops** (``--loop``): the same LSTM trained through one loop
   (``fg.nn.dynamic_rnn``, inputs ``[B, None, I]``) at T=50 and T=5000, each in a new
   process with a warm kernel cache: seconds spent in ``compile_plan`` during the first
   run (the outer plan and the loop bodies), the first run, and how many loop bodies
   were compiled; then the same session runs a second length (T+7) and reports the
   compile time that took and the bodies it compiled (none: a body is compiled once
   for every length; only the outer plan, whose feed shapes changed, is rebuilt).

    python benchmarks/compile_latency.py --loop --out benchmarks/results/compile_latency

Every measurement runs in a fresh subprocess; timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = os.path.join(ROOT, "examples")

# Models of part 1: (name, keyword arguments of char_rnn.build_model).
MODELS = {
    "char-LSTM H=256": dict(vocab_size=96, hidden=256, seq_len=32, batch=48),
    "char_rnn.py (H=128)": dict(vocab_size=96, hidden=128, seq_len=32, batch=48),
}

FIRST_STEP_CHILD = r"""
import json, os, statistics, sys, time
t0 = time.perf_counter()
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, {examples!r})
import numpy as np
import flowgraph as fg
import char_rnn
t_import = time.perf_counter() - t0
kwargs, mode, after = {kwargs!r}, {mode!r}, {after!r}
graph = fg.Graph()
with graph.as_default():
    model = char_rnn.build_model(kwargs.pop("vocab_size"), **kwargs)
sess = fg.Session(graph, fg.SessionConfig(compile=mode))
trainer = char_rnn.Trainer(sess, model)
t_build = time.perf_counter() - t0 - t_import
rng = np.random.default_rng(0)
x = rng.integers(0, model.vocab_size, (model.batch, model.seq_len)).astype(np.int32)
y = rng.integers(0, model.vocab_size, (model.batch, model.seq_len)).astype(np.int32)
t = time.perf_counter()
trainer.train_step(x, y, True)
first = time.perf_counter() - t
to_first = time.perf_counter() - t0
plan = next(iter(sess._plans.values()))
# Keep training until the kernels are in (background) or for `after` steps.
steps, t1 = 1, time.perf_counter()
while not plan.compiled and time.perf_counter() - t1 < 300:
    trainer.train_step(x, y, False)
    steps += 1
trained_until_compiled = time.perf_counter() - t1
sess.wait_compiled()
times = []
for _ in range(after):
    t = time.perf_counter()
    trainer.train_step(x, y, False)
    times.append(time.perf_counter() - t)
print(json.dumps(dict(import_s=t_import, build_s=t_build, first_step_s=first,
                      to_first_step_s=to_first, steps_before_compiled=steps,
                      compiled_after_s=first + trained_until_compiled,
                      step_ms=1e3 * statistics.median(times), kernels=plan.distinct_kernels,
                      ops=len(graph.operations), plan_steps=len(plan._steps))))
"""

STEADY_CHILD = r"""
import json, os, statistics, sys, time
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, {examples!r})
sys.path.insert(0, {here!r})
import numpy as np
import flowgraph as fg
import char_rnn
kwargs, repeats, modes = {kwargs!r}, {repeats!r}, {modes!r}
graph = fg.Graph()
with graph.as_default():
    model = char_rnn.build_model(kwargs.pop("vocab_size"), **kwargs)
rng = np.random.default_rng(0)
x = rng.integers(0, model.vocab_size, (model.batch, model.seq_len)).astype(np.int32)
y = rng.integers(0, model.vocab_size, (model.batch, model.seq_len)).astype(np.int32)
trainers = {{}}
for mode in modes:
    sess = fg.Session(graph, fg.SessionConfig(compile=mode))
    trainers[mode] = char_rnn.Trainer(sess, model)
    trainers[mode].train_step(x, y, True)
    sess.wait_compiled()
# Each repeat times every session once, in a shuffled order; the ratio is the median
# of the per-repeat ratios (paired: the machine's load drifts between repeats).
order = list(trainers)
times = {{m: [] for m in order}}
for t in trainers.values():
    for _ in range(3):
        t.train_step(x, y, False)
shuffle = np.random.default_rng(2)
for _ in range(repeats):
    shuffle.shuffle(order)
    for m in order:
        t = time.perf_counter()
        trainers[m].train_step(x, y, False)
        times[m].append(1e3 * (time.perf_counter() - t))
row = {{f"{{m}}_ms": statistics.median(v) for m, v in times.items()}}
if "background" in times and "eager" in times:
    row["ratio"] = statistics.median(b / e for b, e in zip(times["background"],
                                                            times["eager"]))
print(json.dumps(row))
"""

SCALING_CHILD = r"""
import json, os, sys, time
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = "1"
import numpy as np
import flowgraph as fg
T, mode, (B, I, H) = {T!r}, {mode!r}, {sizes!r}
graph = fg.Graph()
t0 = time.perf_counter()
with graph.as_default():
    xs = [fg.placeholder(fg.float32, (B, I), name=f"x{{t}}") for t in range(T)]
    outputs, _ = fg.nn.static_rnn(fg.nn.LSTMCell(H, seed=0), xs, dtype=fg.float32)
    loss = fg.reduce_mean(fg.square(outputs[-1]))
    t1 = time.perf_counter()
    forward_ops = len(graph.operations)
    grads = fg.gradients(loss, graph.get_collection("trainable_variables"))
    t2 = time.perf_counter()
    sess = fg.Session(graph, fg.SessionConfig(compile=mode))
    step = sess.make_callable([loss] + grads, xs)
    feeds = list(np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32))
    step(*feeds)
    t3 = time.perf_counter()
plan = next(iter(sess._plans.values()))
ops = len(graph.operations)
print(json.dumps(dict(T=T, ops=ops, build_s=t1 - t0, gradients_s=t2 - t1,
                      first_run_s=t3 - t2, total_s=t3 - t0,
                      build_us_per_op=1e6 * (t1 - t0) / forward_ops,
                      build_and_gradients_us_per_op=1e6 * (t2 - t0) / ops,
                      total_us_per_op=1e6 * (t3 - t0) / ops,
                      plan_steps=len(plan._steps), kernels=plan.distinct_kernels)))
"""


LOOP_CHILD = r"""
import json, os, sys, time
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = "1"
import numpy as np
import flowgraph as fg
from flowgraph import compiler
T, mode, (B, I, H) = {T!r}, {mode!r}, {sizes!r}
spent, depth = [0.0], [0]
original = compiler.compile_plan


def timed(*a, **k):
    depth[0] += 1
    t = time.perf_counter()
    try:
        return original(*a, **k)
    finally:
        depth[0] -= 1
        if depth[0] == 0:
            spent[0] += time.perf_counter() - t


compiler.compile_plan = timed
graph = fg.Graph()
t0 = time.perf_counter()
with graph.as_default():
    x = fg.placeholder(fg.float32, (B, None, I), name="x")
    outputs, _ = fg.nn.dynamic_rnn(fg.nn.LSTMCell(H, seed=0), x, dtype=fg.float32)
    loss = fg.reduce_mean(fg.square(outputs[:, -1]))
    t1 = time.perf_counter()
    grads = fg.gradients(loss, graph.get_collection("trainable_variables"))
    t2 = time.perf_counter()
    sess = fg.Session(graph, fg.SessionConfig(compile=mode))
    step = sess.make_callable([loss] + grads, [x])
    bodies = [op.attrs["body"] for op in graph.operations if op.type == "While"]
    rng = np.random.default_rng(1)
    step(rng.standard_normal((B, T, I)).astype(np.float32))
    t3 = time.perf_counter()
    compile_s, compiles = spent[0], sum(b.compiles for b in bodies)
    spent[0] = 0.0
    t4 = time.perf_counter()
    step(rng.standard_normal((B, T + 7, I)).astype(np.float32))
    t5 = time.perf_counter()
print(json.dumps(dict(T=T, ops=len(graph.operations), build_s=t1 - t0,
                      gradients_s=t2 - t1, compile_s=compile_s, first_run_s=t3 - t2,
                      body_compiles=compiles, new_T_compile_s=spent[0],
                      new_T_run_s=t5 - t4,
                      new_T_body_compiles=sum(b.compiles for b in bodies) - compiles)))
"""


def loop_compile(T, cache_dir, mode="eager", sizes=(16, 32, 64)):
    """Part 4 for one T (warm the cache first for warm-cache figures)."""
    return _child(LOOP_CHILD.format(T=T, mode=mode, sizes=tuple(sizes)), cache_dir)


def run_loop(args):
    """``--loop``: compile time of a dynamic_rnn training graph at two lengths."""
    from common import write_results
    rows = []
    with tempfile.TemporaryDirectory(prefix="fg-warm-cache-") as warm:
        loop_compile(min(args.loop_steps), warm)   # warms the kernel cache
        for _ in range(args.loop_repeats):
            for T in args.loop_steps:
                rows.append(loop_compile(T, warm))
    table = []
    for T in args.loop_steps:
        mine = [r for r in rows if r["T"] == T]
        row = {k: sorted(r[k] for r in mine)[len(mine) // 2] for k in mine[0]}
        table.append(row)
        print(f"T={T:5d} ops={row['ops']} compile {row['compile_s']:.3f} s (first run "
              f"{row['first_run_s']:.3f} s, {row['body_compiles']} bodies compiled); "
              f"T+7 after it: compile {row['new_T_compile_s']:.3f} s, "
              f"{row['new_T_body_compiles']} bodies compiled", flush=True)
    base = table[0]["compile_s"]
    for row in table:
        row["compile / first T"] = row["compile_s"] / base
    print(f"compile time T={table[-1]['T']} / T={table[0]['T']}: "
          f"{table[-1]['compile_s'] / base:.2f}")
    if args.out:
        write_results(table, ["T", "ops", "build_s", "gradients_s", "compile_s",
                              "compile / first T", "first_run_s", "body_compiles",
                              "new_T_compile_s", "new_T_body_compiles"],
                      args.out + "_loop", "LSTM through dynamic_rnn: compile time against "
                      "T (warm kernel cache, eager)",
                      notes=[f"B, I, H = 16, 32, 64; median of {args.loop_repeats} fresh "
                             "processes per T; compile_s: seconds in compile_plan during "
                             "the first run (outer plan and loop bodies); new_T: a second "
                             "run of the same session at T+7"])
    return table


def _child(code, cache_dir, timeout=1800):
    env = dict(os.environ, FLOWGRAPH_CACHE_DIR=cache_dir,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_step(kwargs, mode, cache_dir=None, after=10):
    """Part 1 for one model and mode; a new empty cache folder unless ``cache_dir``."""
    with tempfile.TemporaryDirectory(prefix="fg-empty-cache-") as empty:
        code = FIRST_STEP_CHILD.format(examples=EXAMPLES, kwargs=dict(kwargs), mode=mode,
                                       after=after)
        return _child(code, cache_dir or empty)


def steady_state(kwargs, cache_dir, repeats=30, modes=("background", "eager", "never")):
    """Part 2: background-compiled against eager step time, warm cache."""
    code = STEADY_CHILD.format(examples=EXAMPLES, here=HERE, kwargs=dict(kwargs),
                               repeats=repeats, modes=tuple(modes))
    return _child(code, cache_dir)


def scaling(T, cache_dir, mode="eager", sizes=(16, 32, 64)):
    """Part 3 for one T (warm the cache first for warm-cache figures)."""
    return _child(SCALING_CHILD.format(T=T, mode=mode, sizes=tuple(sizes)), cache_dir)


def main(argv=None):
    sys.path.insert(0, HERE)
    from common import write_results
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="results path stem (.json and .md)")
    p.add_argument("--models", nargs="*", default=list(MODELS))
    p.add_argument("--modes", nargs="*", default=["background", "eager"])
    p.add_argument("--steps", nargs="*", type=int, default=[50, 200, 400, 800, 1000])
    p.add_argument("--repeats", type=int, default=60, help="steady-state steps timed")
    p.add_argument("--loop", action="store_true",
                   help="only part 4: compile time of a dynamic_rnn graph against T")
    p.add_argument("--loop-steps", nargs="*", type=int, default=[50, 5000])
    p.add_argument("--loop-repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.loop:
        return run_loop(args)

    first_rows = []
    for name in args.models:
        for mode in args.modes:
            row = first_step(MODELS[name], mode)
            row.update(model=name, mode=mode)
            first_rows.append(row)
            print(f"{name:22s} {mode:10s} first step {row['first_step_s']:6.2f} s "
                  f"(from process start {row['to_first_step_s']:6.2f} s), compiled after "
                  f"{row['compiled_after_s']:6.1f} s / {row['steps_before_compiled']} steps, "
                  f"{row['kernels']} kernels, step {row['step_ms']:.1f} ms", flush=True)

    steady_rows = []
    with tempfile.TemporaryDirectory(prefix="fg-warm-cache-") as warm:
        for name in args.models:
            row = steady_state(MODELS[name], warm, args.repeats)
            row.update(model=name)
            steady_rows.append(row)
            print(f"{name:22s} steady state: background-compiled {row['background_ms']:.1f} "
                  f"ms, eager {row['eager_ms']:.1f} ms, ratio {row['ratio']:.3f}; never "
                  f"(ufunc chains) {row['never_ms']:.1f} ms", flush=True)

        scaling_rows = []
        scaling(min(args.steps), warm)      # warms the cache: the same kernels for every T
        for T in args.steps:
            row = scaling(T, warm)
            scaling_rows.append(row)
            print(f"T={T:5d} ops={row['ops']:6d} build {row['build_s']:6.2f} s "
                  f"gradients {row['gradients_s']:6.2f} s first run {row['first_run_s']:6.2f} "
                  f"s total {row['total_s']:6.2f} s ({row['build_us_per_op']:.1f} us/op "
                  f"building, {row['total_us_per_op']:.0f} us/op in all)", flush=True)
    base = scaling_rows[0]["total_s"] if scaling_rows else None
    for row in scaling_rows:
        row["total / first T"] = row["total_s"] / base
    if args.out:
        write_results(first_rows, ["model", "mode", "first_step_s", "to_first_step_s",
                                   "compiled_after_s", "steps_before_compiled", "kernels",
                                   "step_ms"],
                      args.out + "_first_step", "Time to the first training step, empty "
                      "kernel cache", notes=["seconds; step_ms after wait_compiled"])
        write_results(steady_rows, ["model", "background_ms", "eager_ms", "ratio", "never_ms"],
                      args.out + "_steady", "Steady-state step, background vs eager")
        write_results(scaling_rows, ["T", "ops", "build_s", "gradients_s", "first_run_s",
                                     "total_s", "build_us_per_op", "total_us_per_op",
                                     "total / first T", "kernels"],
                      args.out + "_scaling", "T-step LSTM training graph, warm cache, "
                      "eager first run")


if __name__ == "__main__":
    main()
