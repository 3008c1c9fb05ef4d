"""One rank fails while the other waits on it; the job must end with an error.

Usage: mpiexec -n 2 python -m mpi4py tests/mpi_programs/rank_fails.py MODE [OUT]
  MODE=raise:     rank 1 raises in user code while rank 0 waits in an allreduce.
  MODE=partition: an op on task 1 fails at run time while task 0 waits for its output.
"""
import sys

import numpy as np

import flowgraph as fg
import flowgraph.distributed as fgd

mode = sys.argv[1]
if mode == "raise":
    total, = fgd.allreduce_mean([fg.constant([1.0, 2.0])])
    sess = fg.Session()
    if fgd.rank() == 1:
        raise RuntimeError("rank 1 failed on purpose")
    sess.run(total)  # rank 0 waits here for rank 1
elif mode == "partition":
    index = fg.placeholder(fg.int64, (), name="index")
    with fg.device("/job:worker/task:1/cpu:0"):
        picked = fg.gather(fg.constant([1.0, 2.0, 3.0]), index, name="picked")
    with fg.device("/job:worker/task:0/cpu:0"):
        doubled = picked * 2.0
    sess = fg.Session()
    first = sess.run(doubled, {index: 1})
    print("ok", first, flush=True)
    if len(sys.argv) > 2:  # a file too: MPI_Abort may cut off forwarded stdout
        with open(f"{sys.argv[2]}.rank{fgd.rank()}", "w") as f:
            f.write(f"ok {first}\n")
    sess.run(doubled, {index: 7})  # out of range on task 1
print("rank", fgd.rank(), "should not get here", flush=True)
