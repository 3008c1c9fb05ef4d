"""GPU benchmark: an LSTM training step on /gpu:0 against torch.nn.LSTM on CUDA (cuDNN),
and flowgraph's tiled matmul kernel against torch.matmul, in the same run.

Needs a real NVIDIA GPU, numba-cuda (extra ``gpu``) and a CUDA build of torch (extra
``bench``); it refuses to run on the numba.cuda simulator, whose timings mean nothing.

    python benchmarks/gpu_step.py                 # medium and large, 20 repeats
    python benchmarks/gpu_step.py --sizes medium --repeats 5

Each figure is the median over ``--repeats`` timed calls after ``--warmup`` untimed ones;
GPU work is synchronized before a clock is read. The LSTM step is one layer, T unrolled
steps, loss = mean(h_t**2) over all steps, plain SGD on every weight; the flowgraph
step is a ``make_callable`` with variables resident on the GPU (only the loss comes back
to the host).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = {"medium": dict(B=64, I=128, H=256, T=50), "large": dict(B=128, I=256, H=512, T=50)}


def refuse(reason: str):
    print(f"gpu_step.py: refusing to run: {reason}", file=sys.stderr)
    sys.exit(2)


def require_gpu():
    """numba.cuda on a real GPU, and torch with CUDA, or a clear refusal."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        refuse("NUMBA_ENABLE_CUDASIM is set: the simulator runs kernels in Python, so its "
               "timings are meaningless. Unset it and run on a machine with an NVIDIA GPU.")
    from kernels.cuda import runtime as cuda_runtime
    if cuda_runtime.device_count() == 0:
        refuse("numba.cuda sees no GPU (no NVIDIA driver or device, or numba-cuda is "
               "missing: pip install 'flowgraph[gpu]').")
    try:
        import torch
    except ImportError:
        refuse("torch is not installed (pip install 'flowgraph[bench]' with a CUDA build).")
    if not torch.cuda.is_available():
        refuse("torch has no CUDA device: the cuDNN peer cannot be measured.")
    return torch


def median_time(fn, sync, warmup, repeats):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- flowgraph LSTM step ---------------------------------------------------------------

def flowgraph_lstm_step(B, I, H, T, lr=0.01):
    import flowgraph as fg
    graph = fg.Graph()
    rng = np.random.default_rng(0)
    with graph.as_default():
        xs = [fg.placeholder(fg.float32, (B, I), name=f"x{t}") for t in range(T)]
        with fg.device("/gpu:0"):
            kernel = fg.Variable(rng.uniform(-0.05, 0.05, (H + I, 4 * H)).astype(np.float32),
                                 name="kernel")
            bias0 = np.zeros(4 * H, np.float32)
            bias0[H:2 * H] = 1.0
            bias = fg.Variable(bias0, name="bias")
            h = fg.zeros((B, H))
            c = fg.zeros((B, H))
            squares = []
            for x in xs:
                z = fg.matmul(fg.concat([h, x], 1), kernel) + bias
                i, f, o, g = fg.split(z, 4, axis=1)
                c = fg.sigmoid(f) * c + fg.sigmoid(i) * fg.tanh(g)
                h = fg.sigmoid(o) * fg.tanh(c)
                squares.append(fg.reduce_sum(fg.square(h)))
            loss = fg.add_n(squares) / float(B * H * T)
            gk, gb = fg.gradients(loss, [kernel, bias])
            train = fg.group(kernel.assign_sub(lr * gk), bias.assign_sub(lr * gb))
        sess = fg.Session(graph, fg.SessionConfig(compile="eager"))
        step = sess.make_callable([loss, train], xs)
    feeds = [rng.normal(size=(B, I)).astype(np.float32) for _ in range(T)]
    return lambda: step(*feeds)  # returns the loss on the host: the run is complete


def torch_lstm_step(torch, B, I, H, T, lr=0.01):
    torch.backends.cudnn.enabled = True
    lstm = torch.nn.LSTM(I, H).cuda()
    opt = torch.optim.SGD(lstm.parameters(), lr=lr)
    x = torch.randn(T, B, I, device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        loss = out.pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()  # like the flowgraph step, the loss comes back to the host
    return step


# --- matmul ----------------------------------------------------------------------------

def flowgraph_matmul(n):
    from kernels import cuda as gpu
    from kernels.cuda import runtime as rt
    ctx = gpu.GpuContext()
    rng = np.random.default_rng(0)
    a = rt.to_device(rng.normal(size=(n, n)).astype(np.float32), ctx.stream)
    b = rt.to_device(rng.normal(size=(n, n)).astype(np.float32), ctx.stream)
    check = gpu.matmul(ctx, a, b).copy_to_host(stream=ctx.stream)
    ctx.stream.synchronize()
    want = a.copy_to_host() @ b.copy_to_host()
    assert np.allclose(check, want, rtol=1e-3, atol=1e-2 * np.sqrt(n)), "matmul is wrong"
    return (lambda: gpu.matmul(ctx, a, b)), ctx.stream.synchronize


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["medium", "large"], choices=SIZES)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--matmul", type=int, nargs="+", default=[1024, 2048, 4096])
    args = parser.parse_args(argv)
    torch = require_gpu()
    from numba import cuda
    sync_torch = torch.cuda.synchronize
    gpu_name = cuda.get_current_device().name
    gpu_name = gpu_name.decode() if isinstance(gpu_name, bytes) else gpu_name
    print(f"GPU: {gpu_name}; "
          f"torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}); "
          f"{os.cpu_count()} CPU cores; median of {args.repeats} after {args.warmup} warm-up")
    print("\nLSTM training step (1 layer, forward + backward + SGD)")
    print(f"{'size':<8}{'B':>5}{'I':>5}{'H':>5}{'T':>4}{'flowgraph ms':>15}{'cuDNN ms':>11}"
          f"{'ratio':>8}")
    for name in args.sizes:
        s = SIZES[name]
        fg_ms = 1e3 * median_time(flowgraph_lstm_step(**s), lambda: None, args.warmup,
                                  args.repeats)
        th_ms = 1e3 * median_time(torch_lstm_step(torch, **s), sync_torch, args.warmup,
                                  args.repeats)
        print(f"{name:<8}{s['B']:>5}{s['I']:>5}{s['H']:>5}{s['T']:>4}{fg_ms:>15.2f}"
              f"{th_ms:>11.2f}{fg_ms / th_ms:>7.2f}x")
    print("\nfloat32 matmul n x n @ n x n (GFLOP/s)")
    print(f"{'n':>6}{'flowgraph':>12}{'torch':>10}{'ratio':>8}")
    for n in args.matmul:
        run, sync = flowgraph_matmul(n)
        fg_s = median_time(run, sync, args.warmup, args.repeats)
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")
        th_s = median_time(lambda: torch.matmul(a, b), sync_torch, args.warmup, args.repeats)
        flops = 2.0 * n ** 3
        print(f"{n:>6}{flops / fg_s / 1e9:>12.1f}{flops / th_s / 1e9:>10.1f}"
              f"{th_s / fg_s:>7.2f}x")


if __name__ == "__main__":
    main()
