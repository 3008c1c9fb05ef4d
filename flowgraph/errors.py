"""The error classes of flowgraph.

Every message names the op (and the file and line of user code that created it) and
says what was expected and what was found.

>>> import flowgraph as fg
>>> issubclass(fg.errors.ShapeError, ValueError)
True
"""
from __future__ import annotations


class FlowgraphError(Exception):
    """Base class of every flowgraph error."""


class ShapeError(FlowgraphError, ValueError):
    """Incompatible shapes, at build time or (for unknown dimensions) at run time."""


class DTypeError(FlowgraphError, ValueError):
    """An unsupported or mismatched dtype."""


class FeedError(FlowgraphError, ValueError):
    """A missing, unknown or mismatched feed."""


class PlacementError(FlowgraphError):
    """An op placed on a device that does not exist."""


class NumericsError(FlowgraphError):
    """A NaN or Inf, with the op that first made it (``check_numerics=True``)."""


class CheckpointError(FlowgraphError):
    """A checkpoint that cannot be restored: missing, truncated, foreign or mismatched."""


class InvalidArgumentError(FlowgraphError, ValueError):
    """A value that an op cannot accept at run time (an index out of range, say)."""


class KernelCacheWarning(UserWarning):
    """The on-disk kernel cache is not used (an unsafe or unusable folder, no key) or
    one of its entries failed its check and is rebuilt; the run goes on."""


def describe_op(op) -> str:
    """``"MatMul 'dense/matmul' (created at model.py:12)"`` for error messages."""
    where = f" (created at {op.location})" if getattr(op, "location", None) else ""
    return f"{op.type} '{op.name}'{where}"
