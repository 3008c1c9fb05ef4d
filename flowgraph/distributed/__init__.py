"""Scale-out over MPI (through mpi4py): data-parallel training and graph partitions on
remote workers.

Launch a program on N processes with ``mpiexec -n N python -m mpi4py train.py``
(``-m mpi4py`` makes one failing rank abort the whole job instead of leaving the
others waiting). Without a launcher the same program runs as one process.

- :func:`rank`, :func:`size`, :func:`init`: the job.
- :class:`DistributedOptimizer`: averages gradients over ranks in one fused allreduce
  per step; sessions start from rank 0's variables (:func:`broadcast_variables`).
- :func:`shard`: this rank's part of a batch or dataset.
- :func:`allreduce_mean`: the in-graph collective (op ``AllReduceMean``).
- Ops placed with ``fg.device("/job:worker/task:N/cpu:0")`` run on rank N; tensors that
  cross tasks are sent with MPI (:mod:`flowgraph.distributed.partition`).

>>> import flowgraph.distributed as fgd
>>> fgd.rank() < fgd.size()
True
"""
from .collectives import (allreduce_mean, broadcast_variables,
                          broadcast_variables_at_session_start)
from .comm import init, launched_by_mpi, rank, size, world
from .data import shard
from .optimizer import DistributedOptimizer

__all__ = ["DistributedOptimizer", "allreduce_mean", "broadcast_variables",
           "broadcast_variables_at_session_start", "init", "launched_by_mpi", "rank",
           "shard", "size", "world"]
