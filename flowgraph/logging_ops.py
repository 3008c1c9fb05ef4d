"""TF1's ``tf.Print``: an identity that writes a message and some tensors' values to
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

from . import api as F
from .graph import Tensor, _user_location


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
    where = _user_location()
    at = f" (created at {where})" if where else ""
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


__all__ = ["Print"]
