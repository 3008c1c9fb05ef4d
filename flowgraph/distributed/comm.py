"""The world communicator: MPI through mpi4py when the program was launched by an MPI
launcher, a one-process stand-in otherwise.

Everything in :mod:`flowgraph.distributed` talks to MPI through :class:`World`, so the
rest of the package never imports mpi4py itself. A plain ``python train.py`` never
imports mpi4py (world size 1); ``mpiexec -n 4 python -m mpi4py train.py`` (or Slurm's
``srun``) uses ``MPI.COMM_WORLD``.

>>> from flowgraph.distributed import comm
>>> w = comm.world()
>>> (w.rank, w.size) if not comm.launched_by_mpi() else (0, 1)
(0, 1)
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..errors import FlowgraphError

# Variables that MPI launchers set in every process they start: MPICH/Intel MPI/Hydra and
# Slurm's PMI-2 (PMI_*), PMIx (Open MPI >= 5, Slurm --mpi=pmix), Open MPI, MVAPICH.
_LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE",
                       "MV2_COMM_WORLD_SIZE")


def launched_by_mpi() -> bool:
    """Whether this process should join an MPI job.

    True when mpi4py was already imported (``python -m mpi4py`` does that), when an MPI
    launcher's environment variables are present, or with ``FLOWGRAPH_MPI=1``;
    ``FLOWGRAPH_MPI=0`` forces a single process.
    """
    forced = os.environ.get("FLOWGRAPH_MPI")
    if forced is not None and forced.strip() != "":
        return forced.strip() not in ("0", "false", "no")
    if "mpi4py.MPI" in sys.modules:
        return True
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


class World:
    """The operations flowgraph needs from MPI, on one communicator.

    Buffers are NumPy arrays; ``allreduce_sum_`` and ``bcast_`` work in place.
    """

    def __init__(self, mpi_comm=None):
        self._comm = mpi_comm
        # Seconds spent waiting in allreduce and how many calls (for benchmarks: the
        # wait includes time the other ranks were still computing).
        self.allreduce_seconds, self.allreduce_calls = 0.0, 0
        if mpi_comm is None:
            self.rank, self.size, self.tag_ub = 0, 1, 2**31 - 1
        else:
            from mpi4py import MPI
            self._mpi = MPI
            self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
            self.tag_ub = mpi_comm.Get_attr(MPI.TAG_UB) or 32767

    @property
    def mpi_comm(self):
        """The mpi4py communicator, or ``None`` in a single process."""
        return self._comm

    def allreduce_sum_(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` (contiguous) over all ranks, in place."""
        if self._comm is not None and self.size > 1:
            start = time.perf_counter()
            self._comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
            self.allreduce_seconds += time.perf_counter() - start
            self.allreduce_calls += 1
        return buf

    def bcast_(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """Overwrite ``buf`` (contiguous) on every rank with root's, in place."""
        if self._comm is not None and self.size > 1:
            self._comm.Bcast(buf, root=root)
        return buf

    def isend(self, array: np.ndarray, dest: int, tag: int):
        """Start sending a contiguous array; returns a request for :meth:`waitall`."""
        return self._comm.Isend(array, dest=dest, tag=tag)

    def isend_object(self, obj, dest: int, tag: int):
        return self._comm.isend(obj, dest=dest, tag=tag)

    def recv_into(self, buf: np.ndarray, source: int, tag: int) -> np.ndarray:
        self._comm.Recv(buf, source=source, tag=tag)
        return buf

    def recv_object(self, source: int, tag: int):
        return self._comm.recv(source=source, tag=tag)

    def waitall(self, requests):
        if requests:
            self._mpi.Request.Waitall(requests)

    def allgather(self, obj) -> list:
        if self._comm is None or self.size == 1:
            return [obj]
        return self._comm.allgather(obj)

    def barrier(self):
        if self._comm is not None and self.size > 1:
            self._comm.Barrier()

    def abort(self, code: int = 1):
        """End every rank of the job (a failure on one rank would hang the others)."""
        if self._comm is not None and self.size > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            # MPI_Abort kills the launcher's output forwarding at once: give it a moment
            # to deliver the traceback just printed (seen lost about 1 run in 8).
            time.sleep(0.25)
            self._comm.Abort(code)
        raise SystemExit(code)


_world: World | None = None


def init(comm=None) -> World:
    """Choose the communicator flowgraph uses: ``comm`` (an mpi4py communicator, e.g.
    a sub-communicator from ``Split``), else ``MPI.COMM_WORLD`` when launched by MPI,
    else a single process. Called implicitly on first use; call it explicitly only to
    pick another communicator, before building graphs that use it.
    """
    global _world
    if comm is not None:
        _world = World(comm)
    elif launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError:
            raise FlowgraphError(
                "this process was started by an MPI launcher (or FLOWGRAPH_MPI=1) but "
                "mpi4py is not installed; expected `pip install mpi4py` (it builds "
                "against the cluster's MPI) or `pip install flowgraph[mpi]`") from None
        _world = World(MPI.COMM_WORLD)
        if _world.size > 1:
            _abort_on_uncaught_exception(_world)
    else:
        _world = World(None)
    return _world


def _abort_on_uncaught_exception(w: World):
    """An exception that ends one rank would leave the others waiting forever in their
    next collective or receive: print it, then abort the whole job (what
    ``python -m mpi4py`` does; this covers programs started without it).
    """
    previous = sys.excepthook
    if getattr(previous, "_flowgraph_aborts", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if not issubclass(kind, (KeyboardInterrupt, SystemExit)):
            print(f"flowgraph.distributed: rank {w.rank} of {w.size} ended with an "
                  "uncaught exception; aborting the job", file=sys.stderr, flush=True)
        w.abort(1)

    hook._flowgraph_aborts = True
    sys.excepthook = hook


def world() -> World:
    """The communicator in use (initialized on first call)."""
    return _world if _world is not None else init()


def rank() -> int:
    """This process's rank in the job (0 in a single process)."""
    return world().rank


def size() -> int:
    """The number of processes in the job (1 in a single process)."""
    return world().size
