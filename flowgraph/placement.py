"""Device placement: every op gets a device; unknown devices raise ``PlacementError``
(or fall back to ``/cpu:0`` with ``allow_soft_placement=True``).

>>> resolve_device(None, ["/cpu:0"], soft=False)
'/cpu:0'
"""
from __future__ import annotations

from .devices import DEFAULT_DEVICE, list_devices, split_device
from .errors import PlacementError, describe_op
from .executor import needed_ops


def resolve_device(requested, available, soft, op=None):
    """The device an op runs on."""
    if requested is None:
        return DEFAULT_DEVICE
    if requested in available:
        return requested
    if soft:
        return DEFAULT_DEVICE
    who = describe_op(op) if op is not None else "an op"
    raise PlacementError(f"{who}: placed on device '{requested}', which this machine does "
                         f"not have; expected one of {', '.join(available)} (or "
                         "SessionConfig(allow_soft_placement=True))")


def check(graph, fetch_tensors, target_ops, feed_tensors, config):
    """Raise ``PlacementError`` for an op of this run placed on a missing device."""
    ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(feed_tensors))
    requested = {op.device for op in ops} - {None, DEFAULT_DEVICE}
    if not requested:
        if config.log_device_placement:
            log_placement(ops, {})
        return {}
    available = list_devices()
    chosen = {}
    for op in ops:
        chosen[op] = resolve_device(op.device, available, config.allow_soft_placement, op)
    if config.log_device_placement:
        log_placement(ops, chosen)
    return chosen


def device_kind(device) -> str:
    """``"gpu"`` or ``"cpu"`` for a canonical device string (``None`` is the CPU)."""
    if device is None:
        return "cpu"
    return split_device(device)[2]


def uses_gpu(chosen) -> bool:
    """True when a placement (``{op: device}``) puts some op on a GPU."""
    return any(device_kind(d) == "gpu" for d in chosen.values())


def log_placement(ops, chosen):
    import sys
    for op in ops:
        print(f"{op.name}: ({op.type}): {chosen.get(op, op.device or DEFAULT_DEVICE)}",
              file=sys.stderr)
