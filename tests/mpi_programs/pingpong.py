"""Values crossing tasks back and forth inside one run, where fusion would merge a
producer of a sent value with a consumer of a received one (a deadlock if it did):
the compiled partition and the reference partition must both finish and agree.

Usage: mpiexec -n 2 python -m mpi4py tests/mpi_programs/pingpong.py OUT_DIR
"""
import json
import os
import sys

import numpy as np

import flowgraph as fg
import flowgraph.distributed as fgd

x = fg.placeholder(fg.float64, (None, 3), name="x")
with fg.device("/job:worker/task:0/cpu:0"):
    a = fg.tanh(x) * 2.0                   # sent to task 1
with fg.device("/job:worker/task:1/cpu:0"):
    c = fg.sigmoid(a + 1.0)                # sent back to task 0
with fg.device("/job:worker/task:0/cpu:0"):
    d = c * a + fg.tanh(x)                 # same shape as a's region: fusion candidate
with fg.device("/job:worker/task:1/cpu:0"):
    e = fg.reduce_sum(d * c, axis=1)       # and over again
with fg.device("/job:worker/task:0/cpu:0"):
    out = e * 3.0 + fg.reduce_sum(a, axis=1)
value = np.linspace(-1, 1, 12).reshape(4, 3)
results, kinds = {}, {}
for optimize in (True, False):
    sess = fg.Session(config=fg.SessionConfig(optimize=optimize))
    results[optimize] = [sess.run([out, d], {x: value}) for _ in range(2)]
    (plan,) = sess._plans.values()
    kinds[optimize] = type(plan).__name__
    if optimize:   # a traced run: this rank's steps on its own track
        md = fg.RunMetadata()
        sess.run([out, d], {x: value}, options=fg.RunOptions(trace=True), run_metadata=md)
        events = [e for e in json.loads(md.chrome_trace())["traceEvents"] if e["ph"] == "X"]
np.savez(os.path.join(sys.argv[1], f"rank{fgd.rank()}.npz"),
         out=results[True][1][0], d=results[True][1][1],
         ref_out=results[False][1][0], ref_d=results[False][1][1],
         compiled_kind=kinds[True], reference_kind=kinds[False],
         trace_pids=[e["pid"] for e in events], trace_kinds=[e["cat"] for e in events],
         trace_devices=[e["args"]["device"] for e in events])
