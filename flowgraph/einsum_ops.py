"""TF1's ``tf.einsum`` (``tf.linalg.einsum``), as a composition: per operand, a
repeated index (``ii->i``, the trace ``ii->``) is a multiply by an identity mask and a
``reduce_sum``, and an index no other operand or the output has is summed out; then the
operands are contracted left to right, each pair by ``transpose`` / ``reshape`` to
``[batch, free, contracted]`` and one (batched) ``matmul`` (or a broadcasting
``multiply`` when nothing is contracted); a final ``transpose`` gives the output order.
Gradients to any order, fusion and placement come from those ops.

Equations: letters ``a-z``/``A-Z``, ``,`` between operands, an explicit ``->`` output or
an implicit one (the indices appearing once, in alphabetical order, as NumPy and TF1),
``...`` for leading dimensions (aligned from the right, as NumPy; sizes must match, not
broadcast). Ranks, and the size of an index repeated within one operand, must be known
when the graph is built; other dimensions, contracted ones included, may be ``None``
(read with ``fg.shape`` at run time).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     a = fg.constant(np.arange(6.0).reshape(2, 3))
...     b = fg.constant(np.arange(12.0).reshape(3, 4))
...     c = fg.einsum("ij,jk->ik", a, b)              # matmul
...     t = fg.einsum("ii", fg.constant(np.eye(3) * 2.0))  # trace
...     print(c.shape, fg.Session().run(t))
(2, 4) 6.0
"""
from __future__ import annotations

import re

import numpy as np

from . import api as F
from .array_ops import shape as _shape
from .errors import DTypeError, ShapeError
from .graph import location_suffix

_LABELS = re.compile(r"^[a-zA-Z]*$")
_ELLIPSIS_BASE = 0x100       # internal one-character labels for the dimensions of "..."


def _fail(cls, message):
    return cls("einsum" + location_suffix("called") + f": {message}")


def _parse(equation, ranks):
    """The operands' label strings and the output's, with ``...`` replaced by internal
    labels (one per dimension it covers, aligned from the right) and the implicit
    output made explicit."""
    if not isinstance(equation, str):
        raise _fail(TypeError, f"expected the equation as a str, found {equation!r}")
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise _fail(ValueError, f"expected at most one '->' in {equation!r}")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise _fail(ValueError, f"{equation!r} names {len(terms)} operand(s), found "
                    f"{len(ranks)} input(s)")
    labels, ell_rank = [], 0
    for term, rank in zip(terms, ranks):
        head, dots, tail = term.partition("...")
        if "." in head + tail or not _LABELS.match(head + tail):
            raise _fail(ValueError, f"expected letters and at most one '...' per operand "
                        f"in {equation!r}, found {term!r}")
        n = rank - len(head) - len(tail)
        if (n < 0) or (not dots and n != 0):
            raise _fail(ValueError, f"operand {term!r} of {equation!r} has "
                        f"{len(head) + len(tail)} index(es) but its input has rank {rank}")
        ell_rank = max(ell_rank, n)
        labels.append((head, n if dots else 0, tail))
    ell = "".join(chr(_ELLIPSIS_BASE + i) for i in range(ell_rank))
    expanded = [h + ell[ell_rank - n:] + t for h, n, t in labels]
    if arrow:
        head, dots, tail = out.partition("...")
        if "." in head + tail or not _LABELS.match(head + tail):
            raise _fail(ValueError, f"expected letters and at most one '...' in the output "
                        f"of {equation!r}, found {out!r}")
        if not dots and ell_rank and any(n for _, n, _ in labels):
            # NumPy sums "..." dimensions the output omits; TF1 refuses: so do we
            raise _fail(ValueError, f"the inputs of {equation!r} have '...' but its output "
                        f"does not")
        output = head + (ell if dots else "") + tail
    else:
        letters = "".join(expanded)
        output = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                      and ord(c) < _ELLIPSIS_BASE))
    if len(set(output)) != len(output):
        raise _fail(ValueError, f"the output of {equation!r} repeats an index")
    missing = set(output) - set("".join(expanded))
    if missing:
        raise _fail(ValueError, f"output index(es) {''.join(sorted(missing))} of "
                    f"{equation!r} appear in no input")
    return expanded, output


class _Term:
    """A tensor and the label of each of its axes."""

    def __init__(self, tensor, labels):
        self.tensor, self.labels = tensor, labels

    def dim(self, label):
        return self.tensor.shape[self.labels.index(label)]


def _known_sizes(terms, equation):
    """Each label's static size; a label on several axes must have one size."""
    sizes = {}
    for term in terms:
        for axis, label in enumerate(term.labels):
            d = term.tensor.shape[axis]
            if d is None:
                continue
            if sizes.setdefault(label, d) != d:
                shown = "..." if ord(label) >= _ELLIPSIS_BASE else label
                raise _fail(ShapeError, f"index {shown} of {equation!r} has sizes "
                            f"{sizes[label]} and {d}")
            sizes[label] = d
    return sizes


def _diagonal(term, sizes, equation):
    """Take the diagonal over every index repeated within ``term``."""
    while len(set(term.labels)) != len(term.labels):
        label = next(c for c in term.labels if term.labels.count(c) > 1)
        p = term.labels.index(label)
        q = term.labels.index(label, p + 1)
        n = sizes.get(label)
        if n is None:
            raise _fail(ShapeError, f"repeated index {label} of {equation!r} needs its "
                        f"size known when the graph is built")
        x = term.tensor
        mask_shape = [1] * len(term.labels)
        mask_shape[p] = mask_shape[q] = n
        mask = F.constant(np.eye(n, dtype=x.dtype).reshape(mask_shape))
        term = _Term(F.reduce_sum(x * mask, axis=q), term.labels[:q] + term.labels[q + 1:])
    return term


def _sum_out(term, keep):
    axes = [i for i, c in enumerate(term.labels) if c not in keep]
    if not axes:
        return term
    return _Term(F.reduce_sum(term.tensor, axis=axes),
                 "".join(c for c in term.labels if c in keep))


def _transpose(term, labels):
    if term.labels == labels:
        return term
    return _Term(F.transpose(term.tensor, [term.labels.index(c) for c in labels]), labels)


def _size(term, labels):
    """The product of ``labels``' dimensions: an int, or a scalar tensor at run time."""
    known = int(np.prod([term.dim(c) for c in labels if term.dim(c) is not None],
                        dtype=np.int64))
    unknown = [c for c in labels if term.dim(c) is None]
    if not unknown:
        return known
    shape = _shape(term.tensor)
    out = shape[term.labels.index(unknown[0])]
    for c in unknown[1:]:
        out = out * shape[term.labels.index(c)]
    return out * known if known != 1 else out


def _dims(term, labels):
    shape = None
    out = []
    for c in labels:
        d = term.dim(c)
        if d is None:
            shape = _shape(term.tensor) if shape is None else shape
            d = shape[term.labels.index(c)]
        out.append(d)
    return out


def _contract(a, b, keep):
    """The pair's product summed over the indices both have and ``keep`` lacks."""
    batch = [c for c in a.labels if c in b.labels and c in keep]
    summed = [c for c in a.labels if c in b.labels and c not in keep]
    free_a = [c for c in a.labels if c not in b.labels]
    free_b = [c for c in b.labels if c not in a.labels]
    if not summed:        # nothing contracted: a broadcasting multiply
        labels = "".join(batch + free_a + free_b)
        xa = _transpose(a, "".join(batch + free_a)).tensor
        xb = _transpose(b, "".join(batch + free_b)).tensor
        xa = F.reshape(xa, _dims(a, batch + free_a) + [1] * len(free_b)) if free_b else xa
        if free_a:
            xb = F.reshape(xb, _dims(b, batch) + [1] * len(free_a) + _dims(b, free_b))
        return _Term(F.multiply(xa, xb), labels)
    ta = _transpose(a, "".join(batch + free_a + summed))
    tb = _transpose(b, "".join(batch + summed + free_b))
    k = _size(ta, summed)
    lead = [_size(ta, batch)] if batch else []
    xa = F.reshape(ta.tensor, lead + [_size(ta, free_a), k])
    xb = F.reshape(tb.tensor, lead + [k, _size(tb, free_b)])
    out = F.matmul(xa, xb)
    dims = _dims(ta, batch + free_a) + _dims(tb, free_b)
    return _Term(F.reshape(out, dims), "".join(batch + free_a + free_b))


def einsum(equation, *inputs, **kwargs):
    """TF1's ``tf.einsum(equation, *inputs, name=None)``: the sum of products over the
    indices the output lacks (see the module's docstring for the equations accepted).

    >>> import numpy as np, flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.placeholder(fg.float32, (None, 4, 3))
    ...     w = fg.constant(np.ones((3, 5), np.float32))
    ...     fg.einsum("bij,jk->bik", x, w).shape, fg.einsum("i,j", w[0], w[:, 0]).shape
    ((None, 4, 5), (5, 3))
    """
    name = kwargs.pop("name", None)
    if kwargs:
        raise _fail(TypeError, f"unexpected keyword argument(s) {sorted(kwargs)}")
    if not inputs:
        raise _fail(ValueError, "expected at least one input")
    tensors = [F.convert_to_tensor(x) for x in inputs]
    for t in tensors[1:]:
        if t.dtype != tensors[0].dtype:
            raise _fail(DTypeError, "expected inputs of one dtype, found " + ", ".join(
                f"{x.name}: {x.dtype.name}" for x in tensors))
    for t in tensors:
        if t.shape is None:
            raise _fail(ShapeError, f"expected the rank of {t.name} known when the graph "
                        f"is built")
    labels, output = _parse(equation, [len(t.shape) for t in tensors])
    terms = [_Term(t, s) for t, s in zip(tensors, labels)]
    sizes = _known_sizes(terms, equation)
    terms = [_diagonal(t, sizes, equation) for t in terms]
    # an index only one operand has, and the output lacks, is summed out at once
    for i, term in enumerate(terms):
        others = set(output).union(*(t.labels for j, t in enumerate(terms) if j != i))
        terms[i] = _sum_out(term, others)
    acc = terms[0]
    for i, term in enumerate(terms[1:], 1):
        keep = set(output).union(*(t.labels for t in terms[i + 1:]))
        acc = _sum_out(_contract(acc, term, keep), keep)
    acc = _transpose(acc, output)
    return F.identity(acc.tensor, name=name) if name else acc.tensor


__all__ = ["einsum"]
