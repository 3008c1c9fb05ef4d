"""Flatten and rebuild nested fetch structures (lists, tuples, namedtuples, dicts).

>>> flat, rebuild = flatten({"a": [1, 2], "b": (3,)})
>>> flat, rebuild([10, 20, 30])
([1, 2, 3], {'a': [10, 20], 'b': (30,)})
"""
from __future__ import annotations


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(structure, is_leaf=None):
    """Return ``(leaves, rebuild)``: ``rebuild(new_leaves)`` makes the same structure."""
    leaves = []

    def walk(node):
        if is_leaf is not None and is_leaf(node):
            leaves.append(node)
            return lambda it: next(it)
        if isinstance(node, dict):
            keys = list(node.keys())
            subs = [walk(node[k]) for k in keys]
            kind = type(node)
            return lambda it: kind((k, s(it)) for k, s in zip(keys, subs)) if kind is not dict \
                else {k: s(it) for k, s in zip(keys, subs)}
        if _is_namedtuple(node):
            subs = [walk(v) for v in node]
            kind = type(node)
            return lambda it: kind(*(s(it) for s in subs))
        if isinstance(node, (list, tuple)):
            subs = [walk(v) for v in node]
            kind = type(node)
            return lambda it: kind(s(it) for s in subs)
        leaves.append(node)
        return lambda it: next(it)

    builder = walk(structure)

    def rebuild(values):
        return builder(iter(values))

    return leaves, rebuild
