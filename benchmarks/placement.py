"""Soft placement against the plain CPU run: the char-LSTM training step (T=32, H=256,
vocabulary 96, batch 64, Adam; one BLAS thread) built once with no device and once under
``fg.device("/gpu:0")`` with ``allow_soft_placement=True`` on a machine without a GPU
(with a GPU, or ``NUMBA_ENABLE_CUDASIM=1``, under the first GPU it lacks). Both are
timed in turn within every repeat; medians after warm-up.

    python benchmarks/placement.py [--repeats 15]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import interleaved_medians_ms, pin_threads  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    import flowgraph as fg
    from char_lstm import make_step
    # /gpu:0 on a machine without a GPU; else the first GPU this machine lacks
    gpus = sum(d.startswith("/gpu:") for d in fg.list_devices())
    missing = f"/gpu:{gpus}"
    cpu, cpu_sess, cpu_model = make_step(args.batch)
    soft, soft_sess, soft_model = make_step(args.batch, device=missing, soft=True)
    plans = {}
    for name, sess, model, step in (("cpu", cpu_sess, cpu_model, cpu),
                                    ("soft", soft_sess, soft_model, soft)):
        plan = sess.explain([model.loss, model.train_op],
                            dict(zip([model.inputs, model.targets] + model.flat_state_in,
                                     step.feeds)))
        plans[name] = plan.splitlines()[0]
        print(f"{name}: {plans[name]}")
    print(f"soft-placed graph built under {missing}")
    times = interleaved_medians_ms({"cpu": cpu, "soft": soft}, args.repeats, warmup=2)
    print(f"char-LSTM step (T=32, H=256, vocab 96, batch {args.batch}, Adam), ms, "
          f"median of {args.repeats}:")
    print(f"  compiled CPU run:                        {times['cpu']:8.1f}")
    print(f"  built under {missing}, soft-placed on CPU:  {times['soft']:8.1f}")
    print(f"  ratio soft / cpu:                        {times['soft'] / times['cpu']:8.3f}")
    return times, plans


if __name__ == "__main__":
    pin_threads(1)    # before NumPy loads (not when a test imports main)
    main()
