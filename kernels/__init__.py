"""Per-device kernels, registered by (op type, device kind) with a fallback to the
NumPy reference kernel declared with each primitive in :mod:`flowgraph.ops`.

Nothing here imports Numba or compiles at import time; backends load lazily.

>>> lookup("Tanh", "cpu") is None or callable(lookup("Tanh", "cpu"))
True
"""
from __future__ import annotations

_REGISTRY: dict[tuple[str, str], object] = {}


def register(op_type: str, device_kind: str):
    """Decorator: register ``fn`` as the kernel of ``op_type`` on ``device_kind``
    (``"cpu"`` or ``"gpu"``).
    """
    def deco(fn):
        _REGISTRY[(op_type, device_kind)] = fn
        return fn
    return deco


def compiles(builder):
    """Mark a CPU kernel builder that compiles a Numba kernel when called. A plan
    calls it only where ``SessionConfig(compile=...)`` allows (at once when eager, on
    the background thread otherwise, never with ``"never"``) and runs the op's
    reference kernel until then (:mod:`flowgraph.tiering`)."""
    builder.compiles = True
    return builder


def compiles_for(builder, attrs, inputs, outputs):
    """Does ``builder`` compile a Numba kernel for these arrays? Yes for a
    :func:`compiles` builder; a builder that compiles for some arrays only (a copy
    that is a transpose) says which through its ``compiles_when(attrs, inputs,
    outputs)``."""
    if getattr(builder, "compiles", False):
        return True
    when = getattr(builder, "compiles_when", None)
    return when is not None and bool(when(attrs, inputs, outputs))


def lookup(op_type: str, device_kind: str):
    """The registered kernel, or ``None`` (callers then use the reference kernel)."""
    return _REGISTRY.get((op_type, device_kind))


def bind_call(fn, args):
    """A zero-argument callable for ``fn(*args)``. Plans call these in their hot loop;
    binding two or three arguments by name skips the tuple splat (measured here as
    the cheaper call).

    >>> bind_call(max, (2, 5))()
    5
    """
    if len(args) == 2:
        a, b = args
        return lambda: fn(a, b)
    if len(args) == 3:
        a, b, c = args
        return lambda: fn(a, b, c)
    return lambda: fn(*args)
