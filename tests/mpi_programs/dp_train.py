"""Data-parallel training under mpiexec; each rank saves its weight history.

Usage: mpiexec -n 2 python -m mpi4py tests/mpi_programs/dp_train.py OUT_DIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import flowgraph.distributed as fgd  # noqa: E402
from models import train_data_parallel  # noqa: E402

history, ops = train_data_parallel()
allreduces = [op for op in ops if op.type == "AllReduceMean"]
np.savez(os.path.join(sys.argv[1], f"rank{fgd.rank()}.npz"), history=history,
         size=fgd.size(), allreduce_ops=len(allreduces),
         explain=train_data_parallel.explained,
         allreduce_inputs=[len(op.inputs) for op in allreduces])
