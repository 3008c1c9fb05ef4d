"""TF1's ``tf.Print`` and ``tf.py_func``: ops that run Python on the host (kind
``"io"``). ``tf.Print`` is an identity that writes a message and some tensors' values to
stderr each time it runs (the ``Print`` primitive, kind ``"io"``: never folded, merged
or dropped by the compiler, a reference step of its own in a compiled plan, on the
host when placed on a GPU).

>>> import contextlib, sys
>>> import flowgraph as fg
>>> with fg.Graph().as_default(), contextlib.redirect_stderr(sys.stdout):
...     x = fg.constant([1.0, 2.5, 3.0, 4.0])
...     y = fg.Print(x, [x, fg.reduce_sum(x)], message="x, sum: ")
...     fg.Session().run(y * 2.0).tolist()
x, sum: [1 2.5 3...][10.5]
[2.0, 5.0, 6.0, 8.0]
"""
from __future__ import annotations

import numbers

import weakref

from . import api as F
from . import dtypes
from .graph import Tensor, location_suffix


def Print(input_, data, message=None, first_n=None, summarize=None, name=None):  # noqa: N802 - TF1's name
    """TF1's ``tf.Print``: a tensor equal to ``input_`` that, each time it runs, writes
    ``message`` followed by each tensor of ``data`` as ``[v0 v1 v2...]`` (its first
    ``summarize`` elements in row-major order, 3 when ``None``, all when negative) on
    one line of stderr. ``first_n`` (``None`` or negative: always) limits how many times
    the op prints, counted per op across runs and sessions. TF1 logs the line with a
    timestamp prefix (``I ... logging_ops.cc]``); flowgraph writes the line alone.

    It prints only when its output is computed (as in TF1: fetch it, or something
    made from it). The gradient is the identity to ``input_``, none to ``data``.
    Inside a ``fg.cond`` branch or a ``fg.while_loop`` body it prints each time the
    branch or the iteration runs.

    >>> import contextlib, sys
    >>> import flowgraph as fg
    >>> with fg.Graph().as_default(), contextlib.redirect_stderr(sys.stdout):
    ...     x = fg.placeholder(fg.int32, [None])
    ...     y = fg.Print(x, [x], "x = ", first_n=2, summarize=2)
    ...     sess = fg.Session()
    ...     for n in (1, 3, 5):
    ...         _ = sess.run(y, {x: list(range(n))})
    x = [0]
    x = [0 1...]
    """
    fn = "Print"
    at = location_suffix()
    if isinstance(data, (Tensor,)) or not isinstance(data, (list, tuple)):
        data = [data]       # TF1 takes a list; one tensor is read as a list of one
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise TypeError(f"{fn}{at}: expected a str message, found {message!r}")
    for arg, value in (("first_n", first_n), ("summarize", summarize)):
        if value is not None and (not isinstance(value, numbers.Integral)
                                  or isinstance(value, bool)):
            raise TypeError(f"{fn}{at}: expected a Python int {arg} or None, found "
                            f"{value!r}")
    x = F.convert_to_tensor(input_)
    tensors = [F.convert_to_tensor(d) for d in data]
    attrs = {"message": message, "first_n": None if first_n is None else int(first_n),
             "summarize": 3 if summarize is None else int(summarize)}
    return F._op("Print", [x, *tensors], attrs, name=name or "Print").outputs[0]


def py_func(func, inp, Tout, stateful=True, name=None):
    """TF1's ``tf.py_func``: calls ``func`` on the NumPy values of the tensors ``inp``
    each time the op runs, on the host. ``Tout`` is a dtype (one tensor is returned)
    or a list of dtypes (a list is returned); each value ``func`` returns must have
    its dtype exactly (``InvalidArgumentError`` naming the op otherwise, as TF1).
    ``func`` gets copies of its inputs.

    The outputs' shapes are unknown (TF1), so a run computing them uses the reference
    path; once ``set_shape`` makes every output's shape fully known, compiled plans
    run the op as a reference step of their own (on the host when placed on a GPU).
    Like ``Print`` the op is never folded, merged or dropped by the compiler, whatever
    ``stateful`` says. No gradient flows through it: TF1 raises ``LookupError``;
    ``fg.gradients``, as for any op without a gradient, gives its inputs' paths
    nothing (zeros where nothing else reaches them).

    >>> import numpy as np
    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float64, [None])
    ...     top, n = fg.py_func(lambda v: (np.sort(v)[::-1], np.int32(v.size)), [x],
    ...                         [fg.float64, fg.int32])
    ...     t, k = fg.Session().run([top, n], {x: [2.0, 3.0, 1.0]})
    ...     top.shape, t.tolist(), int(k)
    (None, [3.0, 2.0, 1.0], 3)
    """
    fn = "py_func"
    at = location_suffix()
    if not callable(func):
        raise TypeError(f"{fn}{at}: expected a callable func, found {func!r}")
    single = not isinstance(Tout, (list, tuple))
    touts = [dtypes.as_dtype(t) for t in ([Tout] if single else Tout)]
    if isinstance(inp, Tensor) or not isinstance(inp, (list, tuple)):
        inp = [inp]
    tensors = [F.convert_to_tensor(x) for x in inp]
    attrs = {"func": func, "Tout": touts, "single": single, "stateful": bool(stateful)}
    op = F._op("PyFunc", tensors, attrs, name=name or "PyFunc")
    op.attrs["graph_op"] = weakref.ref(op)   # its outputs' shapes, once set_shape runs
    return op.outputs[0] if single else list(op.outputs)


__all__ = ["Print", "py_func"]
