"""What drawing random numbers costs: Philox4x32-10 in vectorized NumPy (the reference
path's random ops and dropout masks) and with its rounds in a Numba loop (the compiled
plan's) against NumPy's own generator (PCG64), and a compiled LSTM step with and without
dropout on its input and output, all timed in turn in the same repeats.

    python benchmarks/random_draw.py [--n 1000000] [--repeats 15]
"""
from __future__ import annotations

import argparse

from common import interleaved_medians_ms, pin_threads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    pin_threads(1)
    import numpy as np
    import flowgraph as fg
    from flowgraph import philox
    from kernels.cpu.philox import contiguous_blocks

    rng = np.random.default_rng(0)
    draws = interleaved_medians_ms({
        "numpy PCG64 float32": lambda: rng.random(args.n, np.float32),
        "philox uniform float32": lambda: philox.uniform((args.n,), np.float32, (1, 2), 0,
                                                         0.0, 1.0),
        "philox uniform, numba rounds": lambda: philox.uniform(
            (args.n,), np.float32, (1, 2), 0, 0.0, 1.0, generator=contiguous_blocks),
        "numpy normal float32": lambda: rng.standard_normal(args.n, np.float32),
        "philox normal float32": lambda: philox.normal((args.n,), np.float32, (1, 2), 0,
                                                       0.0, 1.0),
    }, args.repeats)
    for name, ms in draws.items():
        print(f"{name:28s} {ms:8.2f} ms  ({ms * 1e6 / args.n:.1f} ns/element)")

    batch, hidden = 64, 256
    steps = {}
    for label, wrap in (("lstm step", False), ("lstm step + 2 dropouts", True)):
        g = fg.Graph()
        with g.as_default():
            x = fg.placeholder(fg.float32, (batch, hidden))
            cell = fg.nn.LSTMCell(hidden, seed=0)
            if wrap:
                cell = fg.nn.DropoutWrapper(cell, input_keep_prob=0.5, output_keep_prob=0.5)
            state = fg.nn.state_placeholders(cell, batch)
            out, _ = cell(x, state)
            sess = fg.Session(graph=g, config=fg.SessionConfig(compile="eager"))
            values = [np.ones((batch, hidden), np.float32)] * 3
            step = sess.make_callable(out, [x, state.c, state.h])
            steps[label] = lambda step=step, values=values: step(*values)
    for name, ms in interleaved_medians_ms(steps, args.repeats * 4, warmup=3).items():
        print(f"{name:28s} {ms:8.3f} ms")

if __name__ == "__main__":
    main()
