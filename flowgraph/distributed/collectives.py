"""Collectives: the in-graph ``AllReduceMean`` primitive and the fused variable
broadcast.

``AllReduceMean`` takes any number of tensors and returns their element-wise means over
all ranks. Its kernel packs every input into one contiguous buffer per dtype, calls one
``MPI_Allreduce`` on it and unpacks: one message per step however many gradients there
are (Horovod's tensor fusion), which matters because each allreduce pays a latency
that dwarfs small messages.

Every rank must run the same collectives in the same order. That holds because every
rank builds the same graph and plans run ops in creation order.

>>> import numpy as np, flowgraph as fg
>>> from flowgraph.distributed import allreduce_mean
>>> with fg.Graph().as_default():
...     a, b = allreduce_mean([fg.constant([1.0, 2.0]), fg.constant(3.0)])
...     fg.Session().run([a, b])  # one process: the mean of one value is itself
[array([1., 2.], dtype=float32), np.float32(3.0)]
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from .. import dtypes
from ..errors import DTypeError
from ..ops import defprim
from ..variables import global_variables
from . import steps  # noqa: F401 - registers the compiled allreduce step
from .comm import world


def _allreduce_mean_infer(op):
    for t in op.inputs:
        if not dtypes.is_floating(t.dtype):
            raise DTypeError(f"expected float32 or float64 inputs to average, found "
                             f"{t.dtype.name} ({t.name})")
    return [(t.shape, t.dtype) for t in op.inputs]


def _allreduce_mean_grad(op, *grads):
    # Every rank's output is the mean of all ranks' inputs, so the gradient of the sum
    # of all ranks' losses with respect to one rank's input is the mean of the output
    # gradients over ranks: AllReduceMean again.
    # Outputs without a gradient stay out of the collective: no gradient flows there.
    # (Every rank builds the same gradient graph, so all ranks leave out the same ones.)
    present = [i for i, g in enumerate(grads) if g is not None]
    averaged = iter(allreduce_mean([grads[i] for i in present]))
    return [next(averaged) if g is not None else None for g in grads]


def _allreduce_mean_ref(op, *inputs):
    w = world()
    if w.size == 1:
        return tuple(inputs)
    outputs = [None] * len(inputs)
    for dtype in dict.fromkeys(np.asarray(x).dtype for x in inputs):
        picks = [i for i, x in enumerate(inputs) if np.asarray(x).dtype == dtype]
        arrays = [np.asarray(inputs[i]) for i in picks]
        buf = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0, dtype)
        w.allreduce_sum_(buf)
        buf /= w.size
        start = 0
        for i, a in zip(picks, arrays):
            outputs[i] = buf[start:start + a.size].reshape(a.shape)
            start += a.size
    return tuple(outputs)


# kind "collective": an opaque host op that every rank runs in the same order; a
# compiler must neither fuse, reorder across other collectives, nor eliminate it.
defprim("AllReduceMean", _allreduce_mean_infer, _allreduce_mean_grad, _allreduce_mean_ref,
        "collective", "allreduce_mean", step_kind="allreduce")


def allreduce_mean(tensors, name=None):
    """The element-wise mean over all ranks of each tensor in ``tensors`` (a list), as
    one op with one fused message per dtype. Returns a list of tensors.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     m, = allreduce_mean([fg.constant([4.0])])
    ...     fg.Session().run(m)
    array([4.], dtype=float32)
    """
    tensors = [F.convert_to_tensor(t) for t in tensors]
    if not tensors:
        return []
    op = tensors[0].graph.create_op("AllReduceMean", tensors, name=name)
    return list(op.outputs)


def broadcast_variables(session, root=0, variables=None):
    """Overwrite ``variables`` (default: every global variable of the session's graph)
    in ``session`` with rank ``root``'s values, with one fused ``MPI_Bcast`` per dtype.
    Collective: every rank must call it. A no-op in a single process.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     v = fg.Variable([1.0])
    ...     sess = fg.Session()
    ...     broadcast_variables(sess)
    ...     sess.run(v)
    array([1.], dtype=float32)
    """
    w = world()
    if w.size == 1:
        return
    if not 0 <= root < w.size:
        raise ValueError(f"broadcast_variables: expected a root rank in [0, {w.size}), "
                         f"found {root}")
    variables = list(global_variables(session.graph) if variables is None else variables)
    for dtype in dict.fromkeys(np.dtype(v.dtype) for v in variables):
        group = [v for v in variables if np.dtype(v.dtype) == dtype]
        values = [session.variable_value(v) for v in group]
        buf = np.concatenate([a.ravel() for a in values]) if values else np.empty(0, dtype)
        w.bcast_(buf, root)
        start = 0
        for v, a in zip(group, values):
            session.load(v, buf[start:start + a.size].reshape(a.shape))
            start += a.size


SESSION_START_HOOKS = "session_start_hooks"


def broadcast_variables_at_session_start(graph, root=0):
    """Make every session created on ``graph`` start with rank ``root``'s variable
    values (registered once per graph; ``DistributedOptimizer`` does this for you).
    """
    marker = ("flowgraph.distributed.broadcast", root)
    if marker in graph.get_collection("flowgraph.distributed.markers"):
        return
    graph.add_to_collection("flowgraph.distributed.markers", marker)
    graph.add_to_collection(SESSION_START_HOOKS,
                            lambda session: broadcast_variables(session, root))
