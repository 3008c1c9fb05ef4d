"""TF1's ``tf.linalg.diag`` (``tf.matrix_diag``), ``tf.linalg.diag_part``
(``tf.matrix_diag_part``) and ``tf.linalg.trace`` (``tf.trace``), main diagonal only
(TF1's ``k=0``), as compositions: a multiply by an identity mask and a ``reduce_sum``
(``diag_part``, ``trace``) or an ``expand_dims`` times the identity (``diag``), so
gradients to any order come from those ops. The matrix sizes must be known when the
graph is built; leading (batch) dimensions may be ``None``.

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     m = fg.constant(np.arange(6.0).reshape(2, 3))
...     out = fg.Session().run([fg.linalg.diag_part(m), fg.linalg.trace(m),
...                             fg.linalg.diag(fg.constant([1, 2]))])
...     [v.tolist() for v in out]
[[0.0, 4.0], 4.0, [[1, 0], [0, 2]]]
"""
from __future__ import annotations

import numpy as np

from . import api as F
from .errors import ShapeError
from .graph import location_suffix


def _fail(fn, message):
    return ShapeError(f"{fn}{location_suffix('called')}: {message}")


def _known(fn, x, rank, axes):
    if x.shape is None or len(x.shape) < rank:
        raise _fail(fn, f"expected {x.name} of rank {rank} or more, found shape {x.shape}")
    sizes = [x.shape[a] for a in axes]
    if None in sizes:
        raise _fail(fn, f"expected the last {len(axes)} dimension(s) of {x.name} known when "
                        f"the graph is built, found shape {x.shape}")
    return sizes


def _main_diagonal_only(fn, k):
    if k != 0:
        raise ValueError(f"{fn}{location_suffix('called')}: only the main diagonal (k=0) is "
                         f"supported, found k={k!r}")


def matrix_diag(diagonal, name=None, k=0):
    """TF1's ``tf.linalg.diag`` / ``tf.matrix_diag``: ``[..., n]`` to the ``[..., n, n]``
    matrices with those diagonals, zeros elsewhere.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.linalg.diag(fg.placeholder(fg.float32, (None, 3))).shape
    (None, 3, 3)
    """
    _main_diagonal_only("diag", k)
    d = F.convert_to_tensor(diagonal)
    n, = _known("diag", d, 1, [-1])
    out = F.expand_dims(d, -1) * F.constant(np.eye(n, dtype=d.dtype))
    return F.identity(out, name=name) if name else out


def matrix_diag_part(input, name=None, k=0):  # noqa: A002 - TF1's argument name
    """TF1's ``tf.linalg.diag_part`` / ``tf.matrix_diag_part``: the main diagonals
    ``[..., min(m, n)]`` of ``[..., m, n]`` matrices.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     fg.linalg.diag_part(fg.ones([4, 2, 3])).shape
    (4, 2)
    """
    _main_diagonal_only("diag_part", k)
    x = F.convert_to_tensor(input)
    m, n = _known("diag_part", x, 2, [-2, -1])
    masked = x * F.constant(np.eye(m, n, dtype=x.dtype))
    out = F.reduce_sum(masked, -1 if m <= n else -2)
    return F.identity(out, name=name) if name else out


def trace(x, name=None):
    """TF1's ``tf.linalg.trace`` / ``tf.trace``: the sum of each ``[..., m, n]`` matrix's
    main diagonal, shape ``[...]``.

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     float(fg.Session().run(fg.trace(fg.constant(np.eye(3)))))
    3.0
    """
    x = F.convert_to_tensor(x)
    _known("trace", x, 2, [-2, -1])
    return F.reduce_sum(matrix_diag_part(x), -1, name=name)


__all__ = ["matrix_diag", "matrix_diag_part", "trace"]
