"""A child process that compiles generated kernels into the disk cache.

``python -m kernels.compile_child`` reads a pickled list of ``(source, argument
types)`` from stdin, compiles each (:func:`kernels.cache.compile_kernel`: loaded from
the cache if it is there already) and prints its index on stdout when done. The parent
(:mod:`flowgraph.tiering`) then loads the kernel from the disk cache, which takes
milliseconds, while the compile itself ran on another core without holding the
parent's GIL.

It stops between two kernels (never during one, so no cache file is left half
written) on SIGTERM or SIGINT, or when its parent has gone.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys


def main():
    stop = []

    def request_stop(*_):
        stop.append(True)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    parent = os.getppid()
    jobs = pickle.load(sys.stdin.buffer)
    from kernels.cache import compile_kernel
    for index, (source, types) in enumerate(jobs):
        if stop or os.getppid() != parent:
            break
        try:
            compile_kernel(source, "kernel", types)
            print(index, flush=True)
        except Exception as exc:     # the parent compiles it itself and sees the error
            print(f"{index} failed {type(exc).__name__}", flush=True)


if __name__ == "__main__":
    main()
