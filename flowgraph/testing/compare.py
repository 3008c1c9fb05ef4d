"""Run one graph-building function on several devices and compare the results.

>>> import flowgraph as fg
>>> def build():
...     x = fg.placeholder(fg.float32, (2,))
...     return fg.tanh(x), {x: [0.5, 1.0]}
>>> results = fg.testing.compare_devices(build, devices=("/cpu:0", "cpu"))
>>> sorted(results)
['/cpu:0', 'cpu']
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Operation, Tensor, device
from ..nest import flatten
from ..session import Session, SessionConfig

_TOLERANCES = {np.dtype(np.float64): (1e-9, 1e-12), np.dtype(np.float32): (1e-4, 1e-5)}


def compare_devices(build, devices=("/cpu:0", "/gpu:0"), rtol=None, atol=None, config=None):
    """Call ``build()`` once per device inside a fresh graph and ``fg.device(d)``, run
    the ``(fetches, feed_dict)`` it returns, and compare every fetch with the first
    device's. Returns ``{device: results}``; raises ``AssertionError`` naming the first
    fetch that differs (in value, shape or dtype) and by how much.

    Gradients built inside ``build`` run on the same device (they are colocated with
    the ops they differentiate), so one call checks a model's forward and backward
    pass on the GPU against the CPU::

        def build():
            x = fg.placeholder(fg.float32, (2, 3))
            y = fg.nn.softmax(x @ fg.constant(np.ones((3, 4), np.float32)))
            return [y, fg.gradients(fg.reduce_sum(y * y), [x])], {x: np.ones((2, 3))}
        fg.testing.compare_devices(build, devices=("/cpu:0", "/gpu:0"))

    A device this machine lacks raises ``fg.errors.PlacementError`` (pass
    ``config=fg.SessionConfig(allow_soft_placement=True)`` to fall back to the CPU).
    Default tolerances: ``rtol=1e-4, atol=1e-5`` for float32, ``1e-9, 1e-12`` for
    float64, exact for integers and bools.
    """
    results, names = {}, None
    for dev in devices:
        graph = Graph()
        with graph.as_default(), device(dev):
            fetches, feed_dict = build()
            leaf = lambda x: isinstance(x, (Tensor, Operation)) or hasattr(x, "_as_tensor")  # noqa: E731
            leaves, _ = flatten(fetches, is_leaf=leaf)
            with Session(graph, config or SessionConfig()) as sess:
                results[dev] = sess.run(fetches, feed_dict)
        dev_names = [getattr(x, "name", repr(x)) for x in leaves]
        names = names or dev_names
    first = devices[0]
    base_leaves, _ = flatten(results[first])
    for dev in devices[1:]:
        leaves, _ = flatten(results[dev])
        for name, a, b in zip(names, base_leaves, leaves):
            if a is None and b is None:
                continue
            a, b = np.asarray(a), np.asarray(b)
            d_rtol, d_atol = _TOLERANCES.get(a.dtype, (0, 0))
            r = d_rtol if rtol is None else rtol
            t = d_atol if atol is None else atol
            if a.dtype != b.dtype:
                raise AssertionError(f"compare_devices: fetch {name} has dtype {a.dtype} on "
                                     f"{first} but {b.dtype} on {dev}")
            if a.shape != b.shape:
                raise AssertionError(f"compare_devices: fetch {name} has shape {a.shape} on "
                                     f"{first} but {b.shape} on {dev}")
            if not np.allclose(a, b, rtol=r, atol=t, equal_nan=True):
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
                i = np.unravel_index(np.nanargmax(diff), diff.shape) if diff.ndim else ()
                raise AssertionError(
                    f"compare_devices: fetch {name} differs between {first} and {dev}: "
                    f"max |diff| {np.nanmax(diff):.3g} at index {tuple(map(int, i))} "
                    f"({a[i]!r} vs {b[i]!r}; rtol={r:g}, atol={t:g})")
    return results
