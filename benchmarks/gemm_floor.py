"""The GEMM floor of a training step: its matrix products alone, each at the best rate
any BLAS on this machine gives its shape, against torch's whole step.

A step whose products alone take ``floor`` ms cannot run faster than ``floor / torch``
of torch's step however small the rest of it becomes, unless its products run faster
than every BLAS timed here. This is what bounds the cells and programs that miss the
0.8x-torch target (README, "Benchmarks").

For one RNN cell size of ``rnn_step.py`` or one model of ``programs.py`` it builds
flowgraph's compiled step, reads the products its plan runs (shape, layout, count),
times each shape alone with NumPy's BLAS (OpenBLAS in the NumPy wheels) on 64-byte
aligned operands and with torch's (``torch.mm``: MKL in the x86 wheels), takes the
faster, and sums; then times flowgraph's and torch's steps in turn (medians).

    taskset -c 1 python benchmarks/gemm_floor.py --cells lstm rnn --size large
    taskset -c 1 python benchmarks/gemm_floor.py --programs rows

One pinned core and one BLAS thread (as ``rnn_step.py``). The GEMMs are timed with
warm caches, which a step never gives them, so the floor is optimistic.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import cpu_description, interleaved_medians_ms, median_ms, pin_threads  # noqa: E402


def plan_gemms(sess):
    """``{(m, k, n, transpose_a, transpose_b): count}`` of the products the session's
    (largest) compiled plan runs per step."""
    from step_profile import gemm_shape
    plan = max(sess._plans.values(), key=lambda p: len(p._steps))
    return collections.Counter(gemm_shape(origin) for _, _, origin in plan._checked_steps
                               if origin.type == "MatMul")


def _aligned(shape, rng):
    """A float32 array of ``shape`` aligned as plan buffers are (flowgraph.buffers)."""
    import numpy as np
    from flowgraph.buffers import aligned_bytes
    out = aligned_bytes(4 * int(np.prod(shape))).view(np.float32).reshape(shape)
    out[...] = rng.standard_normal(shape)
    return out


def time_shape(m, k, n, ta, tb, repeats):
    """Median ms of one ``(m x k) @ (k x n)`` product in the plan's layout: NumPy's
    BLAS and torch's."""
    import numpy as np
    import torch
    rng = np.random.default_rng(0)
    a = _aligned((k, m) if ta else (m, k), rng)
    b = _aligned((n, k) if tb else (k, n), rng)
    out = _aligned((m, n), rng)
    av, bv = (a.T if ta else a), (b.T if tb else b)
    ms_numpy = median_ms(lambda: np.matmul(av, bv, out=out), repeats, warmup=5)
    at, bt, ot = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)
    at, bt = (at.t() if ta else at), (bt.t() if tb else bt)
    ms_torch = median_ms(lambda: torch.mm(at, bt, out=ot), repeats, warmup=5)
    return ms_numpy, ms_torch


def measure(name, fg_step, sess, torch_step, repeats, gemm_repeats):
    gemms = plan_gemms(sess)
    floor = floor_numpy = 0.0
    print(f"{name}: the plan's products per step (ms per call: NumPy's BLAS, torch.mm)")
    for (m, k, n, ta, tb), count in sorted(gemms.items(), key=lambda kv: -kv[1]):
        ms_numpy, ms_torch = time_shape(m, k, n, ta, tb, gemm_repeats)
        best = min(ms_numpy, ms_torch)
        floor += count * best
        floor_numpy += count * ms_numpy
        rate = 2.0 * m * k * n / (best * 1e-3) / 1e9
        layout = (" A^T" if ta else "") + (" B^T" if tb else "")
        print(f"  {count:3d} x {m}x{k} @ {k}x{n}{layout}: {ms_numpy:.3f} / {ms_torch:.3f}"
              f" ms, best {rate:.0f} GFLOP/s")
    ms = interleaved_medians_ms({"flowgraph": fg_step, "torch": torch_step}, repeats,
                                warmup=2)
    row = {"model": name, "flowgraph_ms": round(ms["flowgraph"], 2),
           "torch_ms": round(ms["torch"], 2), "gemm_floor_ms": round(floor, 2),
           "floor_numpy_blas_ms": round(floor_numpy, 2),
           "flowgraph_over_torch": round(ms["flowgraph"] / ms["torch"], 3),
           "floor_over_torch": round(floor / ms["torch"], 3)}
    print(f"  flowgraph {row['flowgraph_ms']} ms, torch {row['torch_ms']} ms "
          f"(ratio {row['flowgraph_over_torch']}); GEMM floor {row['gemm_floor_ms']} ms "
          f"(NumPy's BLAS alone {row['floor_numpy_blas_ms']}) = "
          f"{row['floor_over_torch']} of torch's step", flush=True)
    return row


def cell_row(cell, size, repeats, gemm_repeats):
    import numpy as np
    import rnn_step
    d = rnn_step.SIZES[size]
    step, sess, _ = rnn_step.fg_training_step(cell, d["B"], d["I"], d["H"], d["T"],
                                              "float32")
    xs = list(np.random.default_rng(1).standard_normal((d["T"], d["B"], d["I"]))
              .astype(np.float32))
    step(*xs)
    torch_step = rnn_step.torch_training_step(cell, d["B"], d["I"], d["H"], d["T"],
                                              "float32")
    return measure(f"{cell} {size}", lambda: step(*xs), sess, torch_step, repeats,
                   gemm_repeats)


def program_row(name, repeats, gemm_repeats):
    import programs
    cfg = programs.PROGRAMS[name]
    step, initial, layout = programs.fg_program(name, cfg)
    torch_step = programs.torch_program(name, cfg, initial, layout)
    x, y = programs.make_batch(name, cfg)
    step(x, y)
    return measure(name, lambda: step(x, y), step.session, lambda: torch_step(x, y),
                   repeats, gemm_repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="*", default=[], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--size", default="large", choices=["small", "medium", "large"])
    parser.add_argument("--programs", nargs="*", default=[], choices=["char", "ptb", "rows"])
    parser.add_argument("--repeats", type=int, default=7, help="whole steps, each side")
    parser.add_argument("--gemm-repeats", type=int, default=30)
    args = parser.parse_args(argv)
    if not args.cells and not args.programs:
        parser.error("name --cells and/or --programs")
    pin_threads(1)
    import torch
    torch.set_num_threads(1)
    print(f"{cpu_description()}, one pinned core, one BLAS thread; torch {torch.__version__}")
    rows = [cell_row(c, args.size, args.repeats, args.gemm_repeats) for c in args.cells]
    rows += [program_row(p, args.repeats, args.gemm_repeats) for p in args.programs]
    return rows


if __name__ == "__main__":
    main()
