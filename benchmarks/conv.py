"""``fg.nn.conv2d`` + relu + ``max_pool`` (an im2col: one ``ExtractPatches`` op and a
matmul; the input gradient one ``PatchesGrad``) against torch on one thread, compiled
(timed once every kernel is, ``sess.wait_compiled()``), one pinned core.

Each repeat times flowgraph and torch in turn (medians after warm-up), forward alone and
forward with the gradients of the input and the filter (of ``sum(pool**2)``), for the
two layers of TF1's MNIST "deep" tutorial (5x5 SAME convolutions, 2x2 pools).

``python benchmarks/conv.py [--batch 32] [--repeats 15]``
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import pin_threads  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    pin_threads(1)
    import numpy as np
    import torch
    import flowgraph as fg
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = args.batch
    for size, cin, cout in [(28, 1, 32), (14, 32, 64)]:
        xv = rng.normal(size=(n, size, size, cin)).astype(np.float32)
        wv = (rng.normal(size=(5, 5, cin, cout)) * 0.1).astype(np.float32)
        with fg.Graph().as_default():
            x = fg.placeholder(fg.float32, (None, size, size, cin))
            w = fg.constant(wv)
            p = fg.nn.max_pool(fg.nn.relu(fg.nn.conv2d(x, w, 1, "SAME")), 2, 2, "SAME")
            grads = fg.gradients(fg.reduce_sum(p * p), [x, w])
            sess = fg.Session()
            xt = torch.tensor(xv).permute(0, 3, 1, 2).contiguous().requires_grad_()
            wt = torch.tensor(wv).permute(3, 2, 0, 1).contiguous().requires_grad_()

            def torch_pool():
                c = torch.nn.functional.conv2d(xt, wt, padding=2)
                return torch.nn.functional.max_pool2d(torch.relu(c), 2, ceil_mode=True)

            def torch_fwd():
                with torch.no_grad():
                    torch_pool()

            def torch_both():
                q = torch_pool()
                torch.autograd.grad((q * q).sum(), [xt, wt])

            runs = {"fg fwd": lambda: sess.run(p, {x: xv}),
                    "fg fwd+grads": lambda: sess.run([p, *grads], {x: xv}),
                    "torch fwd": torch_fwd, "torch fwd+grads": torch_both}
            times = {k: [] for k in runs}
            for fn in runs.values():
                fn()
                fn()
            sess.wait_compiled()          # the compiled kernels, not the interim NumPy
            for _ in range(args.repeats):
                for k, fn in runs.items():
                    t = time.perf_counter()
                    fn()
                    times[k].append((time.perf_counter() - t) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"N={n} {size}x{size}x{cin} -> {cout}: " + ", ".join(
            f"{k} {v:.1f} ms" for k, v in med.items())
            + f"; ratio fwd {med['fg fwd'] / med['torch fwd']:.1f}x, fwd+grads "
            f"{med['fg fwd+grads'] / med['torch fwd+grads']:.1f}x")


if __name__ == "__main__":
    main()
