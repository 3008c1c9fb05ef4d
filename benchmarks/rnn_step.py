"""One RNN/LSTM/GRU training step: flowgraph compiled vs reference vs torch.nn vs NumPy.

A step is the forward pass through T unrolled time steps and the backward pass to every
weight, with loss mean(h_T ** 2). Cells are built here from fg ops with the equations
of the README's cell table (GRU: the torch.nn.GRU equations, ``reset_after=True``).
Reported: median ms per step, the ratio to torch.nn, GFLOP/s of the step's matmuls and
the percent of this machine's measured ``np.matmul`` rate at the forward GEMM's shape
(same run, same thread settings).

    python benchmarks/rnn_step.py --cells lstm gru rnn --sizes small medium \\
        --dtypes float32 --threads 1 --out benchmarks/results/rnn_step

Each (cell, size, dtype) row runs in a fresh process (``--in-process`` to measure
them all in this one): torch's step time depends on the heap earlier rows left.
``--threads 1`` (the default) pins the process to one core and sets every BLAS/OpenMP/
Numba thread variable to 1 (and ``torch.set_num_threads(1)``) before NumPy loads.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (gemm_gflops, interleaved_medians_ms, median_ms, pin_threads,  # noqa: E402
                    rows_in_fresh_processes, write_results, write_rows_json)  # noqa: E402

SIZES = {"small": dict(B=16, I=32, H=64, T=20),
         "medium": dict(B=64, I=128, H=256, T=50),
         "large": dict(B=128, I=256, H=512, T=50)}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
REPEATS = {"small": 25, "medium": 9, "large": 7}


def init_params(cell, I, H, dtype, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-s, s, shape).astype(dtype)  # noqa: E731
    if cell == "gru":
        return {"W": u(I, 3 * H), "U": u(H, 3 * H), "bw": u(3 * H), "bu": u(3 * H)}
    return {"K": u(H + I, GATES[cell] * H), "b": u(GATES[cell] * H)}


def step_flops(cell, B, I, H, T):
    """Matmul FLOPs a training step needs: the forward GEMMs, the gradient of the state
    through the recurrent weight (T-1 steps: the initial state is a constant) and the
    weight gradients. No input gradient: x is fed, nothing asks for it, and flowgraph
    does not compute it (counting it, as 3x the forward, would overstate the rate)."""
    gates = GATES[cell] * H
    forward = 2 * B * (H + I) * gates * T
    state = 2 * B * gates * H * (T - 1)
    weights = 2 * (H + I) * gates * B * T
    return forward + state + weights


# --- flowgraph -------------------------------------------------------------------------

def fg_cell(fg, cell, p, x, h, c):
    if cell == "rnn":
        return fg.tanh(fg.matmul(fg.concat([h, x], 1), p["K"]) + p["b"]), None
    if cell == "lstm":
        z = fg.matmul(fg.concat([h, x], 1), p["K"]) + p["b"]
        i, f, o, g = fg.split(z, 4, axis=1)
        c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
        return fg.sigmoid(o) * fg.tanh(c), c
    gx = fg.matmul(x, p["W"]) + p["bw"]
    gh = fg.matmul(h, p["U"]) + p["bu"]
    xr, xz, xn = fg.split(gx, 3, axis=1)
    hr, hz, hn = fg.split(gh, 3, axis=1)
    r = fg.sigmoid(xr + hr)
    z = fg.sigmoid(xz + hz)
    n = fg.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h, None


def fg_training_step(cell, B, I, H, T, dtype, optimize=True, params=None):
    """(callable(*xs) -> [loss, grads...], session, graph)."""
    import numpy as np
    import flowgraph as fg
    graph = fg.Graph()
    with graph.as_default():
        xs = [fg.placeholder(dtype, (B, I), name=f"x{t}") for t in range(T)]
        params = params or init_params(cell, I, H, dtype)
        p = {k: fg.Variable(v, name=k) for k, v in params.items()}
        h = fg.constant(np.zeros((B, H), dtype))
        c = h
        for x in xs:
            h, c = fg_cell(fg, cell, p, x, h, c)
        loss = fg.reduce_mean(fg.square(h))
        grads = fg.gradients(loss, list(p.values()))
        sess = fg.Session(graph, fg.SessionConfig(optimize=optimize, compile="eager"))
        step = sess.make_callable([loss] + grads, xs)
    return step, sess, graph


def fg_loop_training_step(cell, B, I, H, dtype, params=None):
    """The same step with the time steps in one loop (``fg.scan``, the loop under
    ``dynamic_rnn``): ``(callable(xs[T, B, I]) -> [loss, grads...], session, graph)``;
    T is data, one graph and one compiled body for every T."""
    import numpy as np
    import flowgraph as fg
    graph = fg.Graph()
    with graph.as_default():
        xs = fg.placeholder(dtype, (None, B, I), name="xs")
        params = params or init_params(cell, I, H, dtype)
        p = {k: fg.Variable(v, name=k) for k, v in params.items()}
        zero = fg.constant(np.zeros((B, H), dtype))

        def step(acc, x):
            h, c = fg_cell(fg, cell, p, x, acc[0], acc[1])
            return (h, acc[1] if c is None else c)

        hs, _ = fg.scan(step, xs, initializer=(zero, zero))
        loss = fg.reduce_mean(fg.square(hs[-1]))
        grads = fg.gradients(loss, list(p.values()))
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        call = sess.make_callable([loss] + grads, [xs])
    return call, sess, graph


# --- torch -----------------------------------------------------------------------------

def torch_training_step(cell, B, I, H, T, dtype):
    import torch
    torch.manual_seed(0)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        I, H).to(tdtype)
    x = torch.randn(T, B, I, dtype=tdtype)

    def step():
        for q in module.parameters():
            q.grad = None
        out, _ = module(x)
        loss = out[-1].pow(2).mean()
        loss.backward()
        return loss
    return step


# --- NumPy BPTT ------------------------------------------------------------------------

def numpy_training_step(cell, B, I, H, T, dtype, params=None):
    """A hand-written forward + backward through time; weight gradients of all steps
    are summed with one stacked GEMM, as an expert NumPy implementation would.
    """
    import numpy as np
    p = params or init_params(cell, I, H, dtype)
    xs = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    def rnn_lstm(xs):
        K, b = p["K"], p["b"]
        G = GATES[cell]
        hx = np.empty((T, B, H + I), dtype)
        acts = np.empty((T, B, G * H), dtype)
        cs = np.zeros((T + 1, B, H), dtype)
        tcs = np.empty((T, B, H), dtype)
        h = np.zeros((B, H), dtype)
        for t in range(T):
            hx[t, :, :H] = h
            hx[t, :, H:] = xs[t]
            z = hx[t] @ K + b
            if cell == "rnn":
                h = acts[t] = np.tanh(z)
            else:
                a = acts[t]
                a[:, :3 * H] = sig(z[:, :3 * H])
                a[:, 3 * H:] = np.tanh(z[:, 3 * H:])
                i, f, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                cs[t + 1] = f * cs[t] + i * g
                tcs[t] = np.tanh(cs[t + 1])
                h = o * tcs[t]
        loss = np.mean(h * h)
        dh = 2.0 * h / h.size
        dc = np.zeros((B, H), dtype)
        dz = np.empty((T, B, G * H), dtype)
        for t in reversed(range(T)):
            a = acts[t]
            if cell == "rnn":
                dz[t] = dh * (1.0 - a * a)
            else:
                i, f, o, g = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
                dc = dc + dh * o * (1.0 - tcs[t] ** 2)
                d = dz[t]
                d[:, :H] = dc * g * i * (1.0 - i)
                d[:, H:2 * H] = dc * cs[t] * f * (1.0 - f)
                d[:, 2 * H:3 * H] = dh * tcs[t] * o * (1.0 - o)
                d[:, 3 * H:] = dc * i * (1.0 - g * g)
                dc = dc * f
            dh = (dz[t] @ K.T)[:, :H]
        dK = hx.reshape(T * B, -1).T @ dz.reshape(T * B, -1)
        return loss, dK, dz.sum(axis=(0, 1))

    def gru(xs):
        W, U, bw, bu = p["W"], p["U"], p["bw"], p["bu"]
        hs = np.zeros((T + 1, B, H), dtype)
        gxs = xs.reshape(T * B, I) @ W + bw
        gxs = gxs.reshape(T, B, 3 * H)
        r_, z_, n_, ghn = (np.empty((T, B, H), dtype) for _ in range(4))
        for t in range(T):
            gh = hs[t] @ U + bu
            gx = gxs[t]
            r_[t] = sig(gx[:, :H] + gh[:, :H])
            z_[t] = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
            ghn[t] = gh[:, 2 * H:]
            n_[t] = np.tanh(gx[:, 2 * H:] + r_[t] * ghn[t])
            hs[t + 1] = (1.0 - z_[t]) * n_[t] + z_[t] * hs[t]
        h = hs[T]
        loss = np.mean(h * h)
        dh = 2.0 * h / h.size
        dgx = np.empty((T, B, 3 * H), dtype)
        dgh = np.empty((T, B, 3 * H), dtype)
        for t in reversed(range(T)):
            r, z, n = r_[t], z_[t], n_[t]
            dan = dh * (1.0 - z) * (1.0 - n * n)
            daz = dh * (hs[t] - n) * z * (1.0 - z)
            dar = dan * ghn[t] * r * (1.0 - r)
            dgx[t, :, :H], dgx[t, :, H:2 * H], dgx[t, :, 2 * H:] = dar, daz, dan
            dgh[t, :, :H], dgh[t, :, H:2 * H], dgh[t, :, 2 * H:] = dar, daz, dan * r
            dh = dh * z + dgh[t] @ U.T
        dW = xs.reshape(T * B, I).T @ dgx.reshape(T * B, -1)
        dU = hs[:T].reshape(T * B, H).T @ dgh.reshape(T * B, -1)
        return loss, dW, dU, dgx.sum(axis=(0, 1)), dgh.sum(axis=(0, 1))

    fn = gru if cell == "gru" else rnn_lstm
    return (lambda: fn(xs)), xs, p


# --- the table -------------------------------------------------------------------------

def check_numpy_against_flowgraph(cell, dtype="float64"):
    """The NumPy BPTT baseline computes the same gradients as flowgraph (small sizes)."""
    import numpy as np
    B, I, H, T = 3, 4, 5, 4
    np_step, xs, params = numpy_training_step(cell, B, I, H, T, dtype)
    step, sess, _ = fg_training_step(cell, B, I, H, T, dtype, optimize=False, params=params)
    ours = step(*list(xs))
    theirs = np_step()
    names = list(params)
    by_name = dict(zip(names, ours[1:]))
    if cell == "gru":
        expected = [theirs[0], theirs[1], theirs[2], theirs[3], theirs[4]]
        got = [ours[0], by_name["W"], by_name["U"], by_name["bw"], by_name["bu"]]
    else:
        expected, got = list(theirs), [ours[0], by_name["K"], by_name["b"]]
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


def _step_rows(args):
    """One row per cell, size and dtype of ``args``: flowgraph, torch, NumPy (and the
    reference path) timed in this process."""
    import numpy as np
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rows = []
    for cell in args.cells:
        if args.check:
            check_numpy_against_flowgraph(cell)
        for size in args.sizes:
            dims = SIZES[size]
            B, I, H, T = dims["B"], dims["I"], dims["H"], dims["T"]
            for dtype in args.dtypes:
                reps = REPEATS[size]
                row = {"cell": cell, "size": size, "dtype": dtype}
                xs = list(np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype))
                import time
                step, sess, _ = fg_training_step(cell, B, I, H, T, dtype)
                t0 = time.perf_counter()
                step(*xs)
                row["first call s"] = time.perf_counter() - t0
                plan = next(iter(sess._plans.values()))
                stats = getattr(plan, "memory_stats", None)
                if stats:
                    row["buffers / live set"] = (stats["pooled_bytes"]
                                                 / stats["largest_live_set_bytes"])
                fns = {"flowgraph ms": lambda: step(*xs)}
                if torch is not None:
                    fns["torch ms"] = torch_training_step(cell, B, I, H, T, dtype)
                # flowgraph and torch in turn, orders varied as in the --loop rows (the
                # step after torch's pays for the caches torch left behind). NumPy's
                # step is timed on its own afterwards: in the rotation, its large
                # temporaries slowed torch's next step by 8-15% at LSTM medium
                # (Zen 4), which flattered flowgraph / torch.
                row.update(interleaved_medians_ms(fns, _whole_cycles(reps, fns),
                                                  rotate=True))
                np_step, _, _ = numpy_training_step(cell, B, I, H, T, dtype)
                row["numpy ms"] = median_ms(np_step, max(1, reps // 2))
                sess.close()
                if torch is not None:
                    row["flowgraph / torch"] = row["flowgraph ms"] / row["torch ms"]
                if not args.no_reference:
                    ref, rsess, _ = fg_training_step(cell, B, I, H, T, dtype, optimize=False)
                    row["reference ms"] = median_ms(lambda: ref(*xs), max(1, reps // 2))
                    rsess.close()
                flops = step_flops(cell, B, I, H, T)
                row["GFLOP/s"] = flops / (row["flowgraph ms"] * 1e-3) / 1e9
                k = H if cell == "gru" else H + I
                gemm = gemm_gflops(B, k, GATES[cell] * H, dtype)
                row["% GEMM"] = 100.0 * row["GFLOP/s"] / gemm
                rows.append(row)
                print(row, flush=True)
    return rows


def run(args):
    """:func:`_step_rows`, each row in a fresh process, and the table."""
    rows = _collect_rows(args, _step_rows)
    if rows is None:
        return
    columns = ["cell", "size", "dtype", "flowgraph ms", "reference ms", "torch ms",
               "numpy ms", "flowgraph / torch", "GFLOP/s", "% GEMM", "first call s",
               "buffers / live set"]
    notes = [f"{args.threads} thread(s){' pinned to one core' if args.threads == 1 else ''};"
             " flowgraph and torch timed in turn within each repeat (same load), "
             "medians after one warm-up call; NumPy's step timed alone after them; "
             "the machine is a shared VM (noisy).",
             "GFLOP/s: the matmul work the step needs (forward, state gradient, weight "
             "gradients; see step_flops) over flowgraph's step time. % GEMM: that over "
             "np.matmul's measured rate at the forward GEMM shape; the compiled weight "
             "gradient is one larger GEMM, which can run faster than that shape, so "
             "above 100% is possible."]
    text = write_results(rows, columns, args.out, "RNN training step (ms per step)", notes)
    print(text)


class _timing_compiles:
    """Seconds spent in ``compile_plan`` (the outer plan and the loop bodies: lowering,
    passes, buffer planning, kernel compiles or cache loads) while the block runs."""

    def __enter__(self):
        import time

        from flowgraph import compiler
        self.spent, self._compiler = [0.0], compiler
        self._original = original = compiler.compile_plan
        spent, depth = self.spent, [0]

        def timed(*a, **k):
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.perf_counter() - t0
        compiler.compile_plan = timed
        return self.spent

    def __exit__(self, *exc):
        self._compiler.compile_plan = self._original


def _whole_cycles(repeats, fns):
    """``repeats`` rounded up to a whole number of cycles of (n - 1) * n repeats of
    ``n`` callables, over which ``balanced_orders`` has each follow each other once or
    more."""
    cycle = max(1, (len(fns) - 1) * len(fns))
    return -(-repeats // cycle) * cycle


def _loop_rows(args):
    """``--loop``: the step through one loop vs the unrolled compiled step vs torch,
    and the loop's compile time (time in compile_plan on a first call) at T=50 and T=5000
    (small sizes, so that the 5000 steps' stacks fit in memory)."""
    import time

    import numpy as np
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rows = []
    for cell in args.cells:
        for size in args.sizes:
            dims = SIZES[size]
            B, I, H, T = dims["B"], dims["I"], dims["H"], dims["T"]
            for dtype in args.dtypes:
                row = {"cell": cell, "size": size, "dtype": dtype}
                xs = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)
                loop, lsess, _ = fg_loop_training_step(cell, B, I, H, dtype)
                unrolled, usess, _ = fg_training_step(cell, B, I, H, T, dtype)
                got, want = loop(xs), unrolled(*list(xs))
                for g, w in zip(got, want):   # the same step
                    np.testing.assert_allclose(g, w, rtol=2e-3, atol=1e-5)
                fns = {"loop ms": lambda: loop(xs), "unrolled ms": lambda: unrolled(*xs)}
                if torch is not None:
                    fns["torch ms"] = torch_training_step(cell, B, I, H, T, dtype)
                # orders varied: which step runs right after torch's matters at
                # these sizes (see interleaved_medians_ms)
                row.update(interleaved_medians_ms(fns, _whole_cycles(REPEATS[size], fns),
                                                  rotate=True))
                row["loop / unrolled"] = row["loop ms"] / row["unrolled ms"]
                if torch is not None:
                    row["loop / torch"] = row["loop ms"] / row["torch ms"]
                small = SIZES["small"]   # compile time at T=50 and 5000, small sizes
                sb, si, sh = small["B"], small["I"], small["H"]
                for t in (50, 5000):     # a fresh graph per length; median of 3
                    seq = np.random.default_rng(2).standard_normal((t, sb, si)).astype(dtype)
                    times = []
                    for _ in range(3):
                        fresh, fsess, _ = fg_loop_training_step(cell, sb, si, sh, dtype)
                        with _timing_compiles() as spent:
                            fresh(seq)
                        times.append(spent[0])
                        fsess.close()
                    row[f"compile s T={t}"] = float(np.median(times))
                lsess.close()
                usess.close()
                rows.append(row)
                print(row, flush=True)
    return rows


def run_loop(args):
    """``--loop``: :func:`_loop_rows`, each row in a fresh process, and the table."""
    rows = _collect_rows(args, _loop_rows)
    if rows is None:
        return
    columns = ["cell", "size", "dtype", "loop ms", "unrolled ms", "torch ms",
               "loop / unrolled", "loop / torch"] + sorted(
                   {k for r in rows for k in r if k.startswith("compile s")},
                   key=lambda k: int(k.split("=")[1]))
    notes = [f"{args.threads} thread(s); loop (fg.scan, as under dynamic_rnn), unrolled "
             "compiled step and torch timed in turn within each repeat, the order "
             "varied from repeat to repeat (each runs after each of the others about "
             "equally often: common.balanced_orders), medians after a warm-up; shared, "
             "noisy machine.",
             "compile s: time spent in compile_plan during the first call of a fresh "
             "graph at that length (the outer plan and the loop bodies: lowering, passes, "
             "buffers, kernels compiled or loaded from the cache), at the small sizes for "
             "every row."]
    text = write_results(rows, columns, args.out + "_loop", "RNN training step: loop vs "
                         "unrolled (ms per step)", notes)
    print(text)


def _collect_rows(args, measure):
    """The rows ``measure(args)`` gives, each (cell, size, dtype) measured in a fresh
    process (:func:`common.rows_in_fresh_processes`: torch's time depended on the heap
    earlier rows left behind) unless ``--in-process``. ``None`` in such a child, which
    hands its rows to the parent instead of writing the table."""
    if args.rows_json:
        write_rows_json(measure(args), args.rows_json)
        return None
    combos = [(c, s, d) for c in args.cells for s in args.sizes for d in args.dtypes]
    if args.in_process or len(combos) == 1:
        return measure(args)
    common = ["--threads", str(args.threads)]
    common += [flag for flag, on in (("--no-reference", args.no_reference),
                                     ("--check", args.check), ("--loop", args.loop)) if on]
    return rows_in_fresh_processes(os.path.abspath(__file__), [
        ["--cells", c, "--sizes", s, "--dtypes", d, *common] for c, s, d in combos])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"],
                        choices=list(GATES))
    parser.add_argument("--sizes", nargs="+", default=["small", "medium"],
                        choices=list(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=["float32"],
                        choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the (slow) reference-path column")
    parser.add_argument("--check", action="store_true",
                        help="first check the NumPy BPTT gradients against flowgraph")
    parser.add_argument("--loop", action="store_true",
                        help="the step through one loop (fg.scan) vs the unrolled step")
    parser.add_argument("--in-process", action="store_true",
                        help="measure every row in this process (by default each row "
                             "runs in a fresh one: torch's time depends on the heap "
                             "earlier rows leave)")
    parser.add_argument("--rows-json", help=argparse.SUPPRESS)   # a child's rows
    parser.add_argument("--out", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results", "rnn_step"))
    args = parser.parse_args()
    pin_threads(args.threads)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    (run_loop if args.loop else run)(args)


if __name__ == "__main__":
    main()
