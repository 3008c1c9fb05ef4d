"""Device placement, the first step of every compiled run: every op of the run gets
the device it actually runs on, after soft placement. Unknown devices raise
``PlacementError`` (or fall back to ``/cpu:0`` with ``allow_soft_placement=True``).

What the compiler does next depends only on where ops *landed*, never on what was
requested: a graph built under ``fg.device("/gpu:0")`` and soft-placed on a machine
without a GPU is an all-CPU run and gets the compiled CPU plan.

>>> resolve_device(None, ["/cpu:0"], soft=False)
'/cpu:0'
>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.device("/gpu:7"):
...         y = fg.constant(1.0) + 1.0
...     chosen = place([y], [], [], fg.SessionConfig(allow_soft_placement=True))
>>> sorted(set(chosen.values()))
['/cpu:0']
"""
from __future__ import annotations

from .devices import DEFAULT_DEVICE, list_devices, local_device, split_device
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


def place(fetch_tensors, target_ops, feed_tensors, config):
    """``{op: device}`` for every op of the run: the device each op runs on after soft
    placement. Raises ``PlacementError`` for an op placed on a missing device (without
    ``allow_soft_placement``) and for a run spanning several GPUs.
    """
    ops = needed_ops([t.op for t in fetch_tensors] + list(target_ops), set(feed_tensors))
    requested = {op.device for op in ops} - {None, DEFAULT_DEVICE}
    if requested:
        available = list_devices()
        chosen = {op: resolve_device(op.device, available, config.allow_soft_placement, op)
                  for op in ops}
        check_one_gpu(chosen)
    else:   # nothing placed: no need to ask numba.cuda what this machine has
        chosen = dict.fromkeys(ops, DEFAULT_DEVICE)
    if config.log_device_placement:
        log_placement(ops, chosen)
    return chosen


def check(graph, fetch_tensors, target_ops, feed_tensors, config):
    """``place`` (kept for callers that pass the graph)."""
    return place(fetch_tensors, target_ops, feed_tensors, config)


def all_on_cpu(chosen) -> bool:
    """True when a placement (``{op: device}``) puts every op on the local CPU."""
    return all(d == DEFAULT_DEVICE for d in chosen.values())


def device_kind(device) -> str:
    """``"gpu"`` or ``"cpu"`` for a canonical device string (``None`` is the CPU)."""
    if device is None:
        return "cpu"
    return split_device(device)[2]


def uses_gpu(chosen) -> bool:
    """True when a placement (``{op: device}``) puts some op on a GPU."""
    return any(device_kind(d) == "gpu" for d in chosen.values())


def check_one_gpu(chosen):
    """Raise ``PlacementError`` for a run spanning several GPUs (not supported yet)."""
    gpus = sorted({local_device(d) for d in chosen.values() if device_kind(d) == "gpu"})
    if len(gpus) > 1:
        op = next(op for op, d in chosen.items() if local_device(d) == gpus[1])
        raise PlacementError(
            f"{describe_op(op)}: placed on {gpus[1]} while other ops of this run are on "
            f"{gpus[0]}; a run spanning several GPUs is not supported yet (expected "
            "one GPU per run, found " + ", ".join(gpus) + ")")


def log_placement(ops, chosen):
    import sys
    for op in ops:
        print(f"{op.name}: ({op.type}): {chosen.get(op, op.device or DEFAULT_DEVICE)}",
              file=sys.stderr)
