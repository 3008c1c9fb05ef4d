"""Device names: parsing the accepted spellings into one canonical form.

Canonical names are ``"/cpu:0"`` and ``"/gpu:0"``, or with a task prefix for remote
workers, ``"/job:worker/task:1/cpu:0"``.

>>> canonical_device("/device:GPU:0")
'/gpu:0'
>>> canonical_device("cpu")
'/cpu:0'
"""
from __future__ import annotations

import re

DEFAULT_DEVICE = "/cpu:0"

_DEVICE_RE = re.compile(
    r"^/?(?:job:(?P<job>[a-z_][a-z0-9_]*)/?)?(?:replica:\d+/?)?(?:task:(?P<task>\d+)/?)?"
    r"(?:device:)?(?:(?P<kind>cpu|gpu)(?::(?P<index>\d+))?)?$")


def canonical_device(spec: str | None) -> str | None:
    """Canonical form of a device string; ``None`` stays ``None`` (no preference).

    Raises ``ValueError`` for a string that names no device kind.
    """
    if spec is None or spec == "":
        return None
    match = _DEVICE_RE.match(spec.strip().lower())
    if not match or not match.group("kind"):
        raise ValueError(
            f"expected a device such as '/cpu:0', 'cpu', '/gpu:0' or "
            f"'/job:worker/task:1/cpu:0', found {spec!r}")
    local = f"/{match.group('kind')}:{int(match.group('index') or 0)}"
    if match.group("job") or match.group("task"):
        job = match.group("job") or "worker"
        return f"/job:{job}/task:{int(match.group('task') or 0)}{local}"
    return local


def split_device(device: str) -> tuple[str | None, int | None, str, int]:
    """``"/job:worker/task:1/gpu:0"`` -> ``("worker", 1, "gpu", 0)``."""
    match = _DEVICE_RE.match(device)
    task = match.group("task")
    return (match.group("job"), int(task) if task is not None else None,
            match.group("kind"), int(match.group("index") or 0))


def local_device(device: str) -> str:
    """The device part without the job/task prefix: ``"/gpu:0"``."""
    _, _, kind, index = split_device(device)
    return f"/{kind}:{index}"


def list_devices() -> list[str]:
    """The devices this machine has: ``"/cpu:0"``, and ``"/gpu:N"`` for each GPU that
    numba.cuda sees (or its simulator, with ``NUMBA_ENABLE_CUDASIM=1``).

    >>> list_devices()[0]
    '/cpu:0'
    """
    return [DEFAULT_DEVICE] + [f"/gpu:{i}" for i in range(_gpu_count())]


def _gpu_count() -> int:
    # Imported lazily: importing flowgraph must not import numba.cuda.
    try:
        from kernels.cuda import runtime as cuda_runtime
    except Exception:  # numba-cuda not installed, or its bindings missing
        return 0
    return cuda_runtime.device_count()
