"""Shared benchmark helpers: thread pinning, timing, GEMM rate, result tables.

Call :func:`pin_threads` before importing NumPy or torch: BLAS reads the thread
environment variables when it loads.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """One core and one BLAS thread (``threads=1``), or ``threads`` cores unpinned."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def interleaved_medians_ms(fns: dict, repeats: int, warmup: int = 1,
                           rotate: bool = False) -> dict:
    """Median ms of each callable, timed in turn within each repeat, so that all of them
    see the same machine load (this VM is shared and noisy: a peer measured minutes
    apart is not a fair comparison).

    ``rotate``: vary the order from repeat to repeat (:func:`balanced_orders`) so
    that each callable runs right after each of the callables about equally often.
    Measured on millisecond steps (the RNN loop vs unrolled rows of ``rnn_step.py
    --loop``): the callable that runs right after torch's step pays for the caches
    torch left behind, about 0.3 ms at the small sizes, whichever it is; a fixed order
    charges that to one of them every time. (Starting each repeat one callable later,
    as this did before, balances two callables but not three: the first of three ran
    after the third in 18 of 26 turns, the second in 9.)
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    names = list(fns)
    orders = balanced_orders(names, repeats) if rotate else [names] * repeats
    for order in orders:
        for name in order:
            fn = fns[name]
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def balanced_orders(names, repeats):
    """One order of ``names`` per repeat, chosen so that over the run (repeats back
    to back) each name follows each name about equally often: greedily, the
    permutation whose neighbour pairs (the previous repeat's last name included) have
    been used least so far. Deterministic.

    >>> from collections import Counter
    >>> orders = balanced_orders(["a", "b", "c"], 12)
    >>> seq = [n for order in orders for n in order]
    >>> after_c = Counter(b for a, b in zip(seq, seq[1:]) if a == "c")
    >>> max(after_c.values()) - min(after_c.values()) <= 2
    True
    """
    import itertools
    from collections import Counter
    perms = list(itertools.permutations(names))
    counts, prev, out = Counter(), None, []
    for _ in range(repeats):
        def pairs(p):
            return ([(prev, p[0])] if prev is not None else []) + list(zip(p, p[1:]))
        best = min(perms, key=lambda p: sum(counts[q] ** 2 + counts[q] for q in pairs(p)))
        counts.update(pairs(best))
        prev = best[-1]
        out.append(list(best))
    return out


def rows_in_fresh_processes(script: str, arg_lists, flag: str = "--rows-json") -> list:
    """Run ``script`` once per argument list, each in a new Python process that writes
    its result rows as JSON to the file named after ``flag``; return all the rows, in
    order. The children inherit the CPU affinity and the thread variables.

    Why: torch's step time depends on the glibc heap its process has, and earlier rows
    leave theirs behind. On the Zen 4 core, torch's LSTM medium step took 87 ms after
    the small row of ``rnn_step.py --loop`` had run (its T=5000 loops) and 102 ms in a
    process of its own, and the rows program's torch step took 25.8 ms after the ptb
    program and 30.1 ms alone; flowgraph, which allocates its buffers once, barely
    moved. A row measured in its own process does not depend on which rows ran
    before it, and sees the heap a user's own script would.
    """
    import subprocess
    import tempfile
    rows = []
    for args in arg_lists:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rows.json")
            subprocess.run([sys.executable, script, *args, flag, path], check=True)
            with open(path) as f:
                rows.extend(json.load(f))
    return rows


def write_rows_json(rows, path: str) -> None:
    """The child's half of :func:`rows_in_fresh_processes`."""
    with open(path, "w") as f:
        json.dump(rows, f)


def gemm_gflops(m: int, k: int, n: int, dtype, repeats: int = 20) -> float:
    """This machine's measured ``np.matmul`` rate at an (m x k) @ (k x n) shape."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((m, k)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((k, n)).astype(dtype)
    out = np.empty((m, n), dtype)
    ms = median_ms(lambda: np.matmul(a, b, out=out), repeats, warmup=3)
    return 2.0 * m * k * n / (ms * 1e-3) / 1e9


def cpu_description() -> str:
    """The CPU as figures should name it: model, family/model numbers and the widest
    vector extension, e.g. ``"AMD EPYC (family 25 model 1, AVX2)"``. The same name
    covers different chips (an AMD EPYC with AVX-512 and one without gave different
    ratios for the same code), so the numbers and the extension are part of it."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in fields:
                    fields[key] = value.strip()
                if line.strip() == "" and fields:
                    break
    except OSError:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    vector = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
              else "AVX" if "avx" in flags else "SSE")
    return (f"{fields.get('model name', platform.machine())} (family "
            f"{fields.get('cpu family', '?')} model {fields.get('model', '?')}, {vector})")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "cpu": cpu_description(),
            "affinity": sorted(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else None,
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": os.environ.get("OMP_NUM_THREADS")}


def write_results(rows, columns, path_stem: str, title: str, notes=()):
    """Write ``rows`` (dicts) as ``<stem>.json`` and a Markdown table ``<stem>.md``."""
    meta = machine()
    with open(path_stem + ".json", "w") as f:
        json.dump({"machine": meta, "rows": rows, "notes": list(notes)}, f, indent=1)
    lines = [f"### {title}", "", f"Machine: {meta['cpu']}, {meta['cpus']} CPUs, affinity "
             f"{meta['affinity']}, {meta['threads']} thread(s), Python {meta['python']}.", ""]
    lines += [f"- {n}" for n in notes]
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    with open(path_stem + ".md", "w") as f:
        f.write(text)
    return text


def _fmt(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
