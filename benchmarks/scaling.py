"""Scale-out benchmark: MPI allreduce time against message size, and data-parallel
char-LSTM training steps per second with 1 and 2 ranks.

    python benchmarks/scaling.py [--ranks 2] [--steps 40] [--repeats 2]

It launches ``mpiexec -n N python -m mpi4py`` itself (the mpiexec next to this Python,
from the mpich wheel, else the one on PATH). Every rank runs with one BLAS thread, so
N ranks use N cores. Figures are medians over repeats after warm-up.

- Allreduce: ``MPI_Allreduce`` (in place, sum) of float32 buffers from 1K to 10M
  elements, through flowgraph's ``World`` (what ``AllReduceMean`` calls), next to a
  local NumPy copy of the same buffer as the peer (memory bandwidth on one core).
- Training: ``examples/data_parallel.py`` (an LSTM from fg ops, SGD, fixed global
  batch) under 1 and 2 ranks: strong scaling, each rank computes half the batch.
- Compiled data-parallel char-LSTM (``--char-lstm``, or ``--only-char-lstm``):
  ``examples/char_rnn.py``'s model (T=32, H=256, vocabulary 96, Adam, clipping) with
  ``DistributedOptimizer``, global batch 64: one compiled process against N ranks of
  64/N rows, each rank's step one compiled plan with one allreduce step. Steps per
  second of the job (the slowest rank's median step), runs alternated.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]


def mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


def launch(ranks, args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


# --- the allreduce worker (runs under mpiexec) ---------------------------------------------

def allreduce_worker(out_path):
    import numpy as np

    from flowgraph.distributed import world
    w = world()
    results = []
    for n in SIZES:
        buf = np.ones(n, np.float32)
        repeats = 30 if n <= 100_000 else (10 if n <= 1_000_000 else 5)
        times = []
        for i in range(repeats + 3):
            w.barrier()
            t0 = time.perf_counter()
            w.allreduce_sum_(buf)
            dt = time.perf_counter() - t0
            if i >= 3:
                times.append(dt)
        # every rank's worst time counts: the step waits for the slowest rank
        worst = w.allgather(float(np.median(times)))
        copy_times = []
        dst = np.empty_like(buf)
        for i in range(repeats + 3):
            t0 = time.perf_counter()
            np.copyto(dst, buf)
            if i >= 3:
                copy_times.append(time.perf_counter() - t0)
        results.append({"elements": n, "bytes": 4 * n, "allreduce_s": max(worst),
                        "numpy_copy_s": float(np.median(copy_times))})
    if w.rank == 0:
        with open(out_path, "w") as f:
            json.dump({"ranks": w.size, "allreduce": results}, f)


def char_lstm_worker(out_path, steps, global_batch):
    import numpy as np

    import flowgraph.distributed as fgd
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from char_lstm import make_step
    w = fgd.world()
    step, sess, model = make_step(global_batch // w.size, data_parallel=w.size > 1)
    for _ in range(3):   # compile, warm up
        step()
    times = []
    for _ in range(steps):
        w.barrier()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    worst = max(w.allgather(float(np.median(times))))
    if w.rank == 0:
        feeds = dict(zip([model.inputs, model.targets] + model.flat_state_in, step.feeds))
        plan = sess.explain([model.loss, model.train_op], feeds).splitlines()[0]
        with open(out_path, "w") as f:
            json.dump({"ranks": w.size, "median_step_s": worst, "plan": plan}, f)


def char_lstm_scaling(ranks, steps, repeats, tmp):
    """The compiled data-parallel char-LSTM at global batch 64: 1 rank vs ``ranks``.
    One process at 64/ranks rows (a rank's share, no communication) is timed too: the
    speed-up that perfect communication would give on this machine at this moment."""
    configs = [(1, 64), (ranks, 64), (1, 64 // ranks)]
    runs = {c: [] for c in configs}
    for _ in range(repeats):     # alternate so that load from others hits all
        for n, batch in configs:
            out = os.path.join(tmp, f"charlstm{n}_{batch}.json")
            launch(n, [os.path.abspath(__file__), "--worker", "char-lstm", "--out", out,
                       "--steps", str(steps), "--global-batch", str(batch)])
            with open(out) as f:
                runs[n, batch].append(json.load(f))
    print(f"\ncompiled data-parallel char-LSTM (T=32, H=256, vocab 96, Adam; median step "
          f"of the slowest rank, median over {repeats} runs; every run's figure in [])")
    print(f"{'ranks':>5} {'global batch':>12} {'ms/step':>8} {'steps/s':>8} "
          f"{'vs 1 rank':>9}  runs (ms)")
    base = None
    result = {}
    for (n, batch), results in runs.items():
        times = sorted(r["median_step_s"] for r in results)
        step_s = times[len(times) // 2]
        base = base or step_s
        result[n, batch] = step_s
        print(f"{n:>5} {batch:>12} {step_s * 1e3:>8.1f} {1 / step_s:>8.2f} "
              f"{base / step_s:>8.2f}x  [{', '.join(f'{t * 1e3:.0f}' for t in times)}]")
    print(f"plans: {runs[configs[0]][0]['plan']}\n       {runs[configs[1]][0]['plan']}")
    print(f"(the last row is one rank's share of the work without communication: "
          f"{ranks} ranks at batch 64 reach {result[configs[0]] / result[configs[1]]:.2f}x "
          f"of one process, of the {result[configs[0]] / result[configs[2]]:.2f}x that "
          "this machine allowed while measuring)")
    return result


# --- the driver ------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="training runs per rank count")
    parser.add_argument("--char-lstm", action="store_true",
                        help="also the compiled data-parallel char-LSTM")
    parser.add_argument("--only-char-lstm", action="store_true",
                        help="only the compiled data-parallel char-LSTM")
    parser.add_argument("--global-batch", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "allreduce":
        return allreduce_worker(args.out)
    if args.worker == "char-lstm":
        return char_lstm_worker(args.out, args.steps, args.global_batch)

    print(f"machine: {os.cpu_count()} cores; {args.ranks} ranks, one BLAS thread each")
    if args.only_char_lstm:
        with tempfile.TemporaryDirectory() as tmp:
            return char_lstm_scaling(args.ranks, args.steps, args.repeats, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        launch(args.ranks, ["-c", "pass"])
        print(f"mpiexec startup of {args.ranks} ranks (python -m mpi4py -c pass): "
              f"{time.perf_counter() - t0:.2f} s")

        out = os.path.join(tmp, "allreduce.json")
        launch(args.ranks, [os.path.abspath(__file__), "--worker", "allreduce", "--out", out])
        with open(out) as f:
            allreduce = json.load(f)["allreduce"]
        print(f"\nallreduce (sum, in place) of float32 over {args.ranks} ranks")
        print(f"{'elements':>10} {'MB':>8} {'allreduce ms':>13} {'GB/s':>7} "
              f"{'numpy copy ms':>14} {'ratio':>7}")
        for r in allreduce:
            print(f"{r['elements']:>10} {r['bytes'] / 1e6:>8.3f} {r['allreduce_s'] * 1e3:>13.3f}"
                  f" {r['bytes'] / r['allreduce_s'] / 1e9:>7.2f} "
                  f"{r['numpy_copy_s'] * 1e3:>14.3f} "
                  f"{r['allreduce_s'] / r['numpy_copy_s']:>7.1f}")

        example = os.path.join(ROOT, "examples", "data_parallel.py")
        batch = 32
        # (ranks, global batch): one rank; strong scaling (the same global batch split
        # over the ranks); weak scaling (each rank keeps the one-rank batch).
        configs = [(1, batch), (args.ranks, batch), (args.ranks, batch * args.ranks)]
        runs = {c: [] for c in configs}
        for _ in range(args.repeats):  # alternate so that load from others hits all
            for ranks, global_batch in configs:
                out = os.path.join(tmp, f"train{ranks}_{global_batch}.json")
                launch(ranks, [example, "--steps", str(args.steps), "--batch",
                               str(global_batch), "--json", out])
                with open(out) as f:
                    runs[ranks, global_batch].append(json.load(f))
        first = runs[configs[0]][0]
        print(f"\nchar-LSTM data-parallel training (examples/data_parallel.py: seq "
              f"{first['seq']}, hidden {first['hidden']}, float32, {args.steps} steps; "
              f"median step time of each run after warm-up, median over {args.repeats} "
              "runs)")
        print(f"{'ranks':>5} {'global batch':>12} {'steps/s':>8} {'ms/step':>8} "
              f"{'examples/s':>11} {'vs 1 rank':>9} {'allreduce wait ms/step':>22}")
        base = None
        for (ranks, global_batch), results in runs.items():
            step_s = sorted(r["median_step_s"] for r in results)[len(results) // 2]
            wait = sorted(r["allreduce_ms_per_step"] for r in results)[len(results) // 2]
            examples = global_batch / step_s
            base = base or examples
            print(f"{ranks:>5} {global_batch:>12} {1 / step_s:>8.1f} {step_s * 1e3:>8.1f} "
                  f"{examples:>11.0f} {examples / base:>8.2f}x {wait:>22.1f}")
        strong = runs[configs[1]][0]["losses"]
        diff = max(abs(a[1] - b[1]) for a, b in zip(first["losses"], strong))
        print(f"largest difference of the logged losses, 1 vs {args.ranks} ranks on the same "
              f"global batch: {diff:.2e} (float32)")
        if args.char_lstm:
            char_lstm_scaling(args.ranks, args.steps, args.repeats, tmp)

if __name__ == "__main__":
    main()
