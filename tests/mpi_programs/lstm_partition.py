"""A two-layer LSTM with layer 1 on task 0 and layer 2 (and the loss) on task 1, forward,
backward and one SGD step; each rank saves what it fetched and what it ran.

Usage: mpiexec -n 2 python -m mpi4py tests/mpi_programs/lstm_partition.py OUT_DIR [compiled]
(``compiled``: each rank's part runs as a compiled plan; the reference path otherwise)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import flowgraph.distributed as fgd  # noqa: E402
from flowgraph.shapes import is_fully_defined  # noqa: E402
from models import partitioned_lstm  # noqa: E402

compiled = sys.argv[2:] == ["compiled"]
out = partitioned_lstm(("/job:worker/task:0/cpu:0", "/job:worker/task:1/cpu:0"),
                       optimize=compiled)
plans = out.pop("plans")
np.savez(os.path.join(sys.argv[1], f"rank{fgd.rank()}.npz"),
         loss=out["loss"], loss_after=out["loss_after"],
         **{f"grad{i}": g for i, g in enumerate(out["grads"])},
         **{f"var{i}": v for i, v in enumerate(out["variables"])},
         plan_types=[type(p).__name__ for p in plans], explain=out["explain"],
         local_ops=[op.name for p in plans for op in p.local_ops],
         all_ops=[op.name for p in plans for op in p.task],
         sends=sum(len(s) for p in plans for s in p.sends.values()),
         recvs=sum(len(r) for p in plans for r in p.recvs.values()),
         static_sends=sum(is_fully_defined(t.shape) for p in plans for sends in
                          p.sends.values() for t, _, _ in sends),
         dynamic_sends=sum(not is_fully_defined(t.shape) for p in plans for sends in
                           p.sends.values() for t, _, _ in sends))
