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


def lookup(op_type: str, device_kind: str):
    """The registered kernel, or ``None`` (callers then use the reference kernel)."""
    return _REGISTRY.get((op_type, device_kind))
