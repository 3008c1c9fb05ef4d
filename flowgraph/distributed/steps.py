"""Plan steps that talk to other ranks: the fused allreduce of ``AllReduceMean`` and
the ``Send``/``Recv`` pair of a value that crosses MPI tasks.

They are registered as the CPU kernels of those op types (:mod:`kernels`), so a
compiled plan (:mod:`flowgraph.plan`) emits them like any other step: their buffers
are planned by liveness, and the step reads and writes them in place. They run on the
host (MPI exchanges host memory). A step with a ``finish`` attribute has work left
after the run's last step (the plan calls it: waiting for sends).

- ``AllReduceMean``: every input is copied into one preallocated buffer per dtype, one
  in-place ``MPI_Allreduce`` sums it, a division makes it the mean (the same
  operations as the reference kernel, so the results are bitwise equal) and the
  outputs are copied out.
- ``Send``: the value is copied into the step's own buffer (the plan reuses its
  buffers, a message in flight must not change) and sent with ``MPI_Isend``; the plan
  waits for every send at the end of the run (``finish``).
- ``Recv``: a blocking receive straight into the value's buffer.

Values of a shape known only at run time in the graph travel as Python objects, as in
the reference partition plan, so a compiled rank and a reference rank understand each
other.

>>> import numpy as np
>>> out = np.empty(2)
>>> step = allreduce_mean_step({}, [np.array([1.0, 2.0])], [out])
>>> step(); out.tolist()      # one process: the mean of one value is itself
[1.0, 2.0]
"""
from __future__ import annotations

import numpy as np

from kernels import register

from .comm import world

# Plan IR node types for values crossing MPI tasks (made by
# :func:`flowgraph.distributed.partition.local_program`).
SEND, RECV = "Send", "Recv"


@register("AllReduceMean", "cpu")
def allreduce_mean_step(attrs, inputs, outputs):
    """The fused allreduce: one message per dtype (see the module doc)."""
    w = world()
    copyto = np.copyto
    if w.size == 1:
        pairs = list(zip(outputs, inputs))

        def mean_of_one():
            for out, x in pairs:
                copyto(out, x)
        return mean_of_one
    packs = []
    for dtype in dict.fromkeys(x.dtype for x in inputs):
        picks = [i for i, x in enumerate(inputs) if x.dtype == dtype]
        buf = np.empty(sum(inputs[i].size for i in picks), dtype)
        parts, start = [], 0
        for i in picks:
            size = inputs[i].size
            part = buf[start:start + size].reshape(inputs[i].shape)
            parts.append((part, inputs[i], outputs[i]))
            start += size
        packs.append((buf, parts))
    allreduce, divide, ranks = w.allreduce_sum_, np.true_divide, w.size

    def allreduce_mean():
        for buf, parts in packs:
            for part, x, _ in parts:
                copyto(part, x)
            allreduce(buf)
            divide(buf, ranks, out=buf)
            for part, _, out in parts:
                copyto(out, part)
    return allreduce_mean


@register(SEND, "cpu")
def send_step(attrs, inputs, outputs):
    w, (value,) = world(), inputs
    dest, tag, copyto = attrs["dest"], attrs["tag"], np.copyto
    requests = []
    if attrs["static"]:
        buf = np.empty(value.shape, value.dtype)

        def send():
            copyto(buf, value)
            requests.append(w.isend(buf, dest, tag))
    else:
        def send():
            requests.append(w.isend_object(value.copy(), dest, tag))

    def finish():
        w.waitall(requests)
        requests.clear()
    send.finish = finish
    return send


@register(RECV, "cpu")
def recv_step(attrs, inputs, outputs):
    w, (out,) = world(), outputs
    source, tag, copyto = attrs["source"], attrs["tag"], np.copyto
    if attrs["static"] and out.flags.c_contiguous:
        recv_into = w.recv_into
        return lambda: recv_into(out, source, tag)
    if attrs["static"]:
        buf = np.empty(out.shape, out.dtype)

        def recv_strided():
            copyto(out, w.recv_into(buf, source, tag))
        return recv_strided
    recv_object = w.recv_object

    def recv():
        copyto(out, recv_object(source, tag))
    return recv
