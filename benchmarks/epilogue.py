"""A dense layer's GEMM with its bias/activation epilogue fused (row blocks: the region
runs on each block of the GEMM's output while it is in cache) against the same plan
with the epilogue run as a separate pass (the default: see
``flowgraph.plan.EPILOGUE_MIN_BYTES``), and against NumPy (matmul, then in-place add and
maximum or tanh). Forward only, float32, one pinned core by default.

    python benchmarks/epilogue.py --out benchmarks/results/epilogue
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import interleaved_medians_ms, pin_threads, write_results  # noqa: E402

SHAPES = [(8192, 128, 1024), (8192, 512, 1024), (2048, 1024, 1024), (256, 256, 256)]


def build(M, K, N, activation):
    import numpy as np
    import flowgraph as fg
    rng = np.random.default_rng(0)
    graph = fg.Graph()
    with graph.as_default():
        x = fg.placeholder(fg.float32, (M, K))
        w = fg.constant((rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32))
        b = fg.constant(rng.standard_normal(N).astype(np.float32))
        z = fg.matmul(x, w) + b
        y = fg.relu(z) if activation == "relu" else fg.tanh(z)
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        step = sess.make_callable(y, [x])
    return step, sess, rng.standard_normal((M, K)).astype(np.float32), (w, b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "results", "epilogue"))
    args = parser.parse_args()
    pin_threads(args.threads)
    import numpy as np
    import flowgraph.plan as plan

    rows = []
    for M, K, N in SHAPES:
        for activation in ("relu", "tanh"):
            saved = plan.EPILOGUE_MIN_BYTES
            plan.EPILOGUE_MIN_BYTES = 1 << 20
            try:
                fused_step, _, x, _ = build(M, K, N, activation)
                fused_step(x)                    # compiled with the epilogue
            finally:
                plan.EPILOGUE_MIN_BYTES = saved
            split_step, sess, _, (w, b) = build(M, K, N, activation)
            split_step(x)                        # compiled without it (the default)
            wv, bv = sess.run([w, b])
            out = np.empty((M, N), np.float32)

            def numpy_step():
                np.matmul(x, wv, out=out)
                np.add(out, bv, out=out)
                if activation == "relu":
                    np.maximum(out, 0, out=out)
                else:
                    np.tanh(out, out=out)
            np.testing.assert_allclose(fused_step(x), split_step(x), rtol=1e-6, atol=1e-6)
            times = interleaved_medians_ms({"fused": lambda: fused_step(x),
                                            "separate": lambda: split_step(x),
                                            "numpy": numpy_step}, args.repeats)
            rows.append({"M x K x N": f"{M}x{K}x{N}", "activation": activation,
                         "output MB": round(M * N * 4 / 2**20, 1),
                         "fused ms": times["fused"], "separate ms": times["separate"],
                         "numpy ms": times["numpy"],
                         "fused / separate": times["fused"] / times["separate"],
                         "fused / numpy": times["fused"] / times["numpy"]})
            print(rows[-1], flush=True)
    columns = ["M x K x N", "activation", "output MB", "fused ms", "separate ms", "numpy ms",
               "fused / separate", "fused / numpy"]
    print(write_results(rows, columns, args.out, "Matmul with a fused epilogue (ms)",
                        [f"{args.threads} thread(s); the three timed in turn within each "
                         "repeat, medians after one warm-up call; fused and separate "
                         "include the copy of the fetched output"]))


if __name__ == "__main__":
    main()
