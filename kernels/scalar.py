"""Scalar expression templates, shared by the CPU (Numba) and CUDA code generators for
fused elementwise kernels.

Each primitive that can join a fused kernel declares its template in
:mod:`flowgraph.ops` (:attr:`flowgraph.primitives.Primitive.template`): a Python
expression over the operands ``{0}``, ``{1}``, ``{2}`` that Numba compiles in both
``@njit`` and ``@cuda.jit`` code (``math`` is in scope). Ops with attributes get them
formatted in by :func:`render`.

>>> render("Add", ["a", "b"])
'(a + b)'
>>> has_template("MatMul")
False
"""
from __future__ import annotations


def template(op_type: str):
    """The declared scalar template of ``op_type``, or ``None`` (no template, or no
    such primitive: the op then runs as a step of its own)."""
    from flowgraph.primitives import find_primitive
    prim = find_primitive(op_type)
    return None if prim is None else prim.template


def render(op_type: str, operands, attrs=None) -> str:
    """The scalar expression of ``op_type`` applied to ``operands`` (source strings)."""
    text = template(op_type)
    if text is None:
        raise KeyError(f"{op_type} declares no scalar template")
    return text.format(*operands, **(attrs or {}))


def has_template(op_type: str) -> bool:
    return template(op_type) is not None
