"""Per-op scalar expression templates, shared by the CPU (Numba) and CUDA code
generators for fused elementwise kernels.

Each template is a Python expression over the operands ``{0}``, ``{1}``, ``{2}`` that
Numba compiles in both ``@njit`` and ``@cuda.jit`` code (``math`` is in scope). Ops with
attributes get them formatted in by :func:`render`.

>>> render("Add", ["a", "b"])
'(a + b)'
"""
from __future__ import annotations

TEMPLATES = {
    "Neg": "(-{0})",
    "Exp": "math.exp({0})",
    "Log": "math.log({0})",
    "Tanh": "math.tanh({0})",
    # exp(-logaddexp(0, -x)) without overflow, as the reference computes it.
    "Sigmoid": "(1.0 / (1.0 + math.exp(-{0})) if {0} >= 0 else "
               "math.exp({0}) / (1.0 + math.exp({0})))",
    # +0 for negatives and -inf (np.maximum(x, 0) does not give -0.0), NaN passes through
    "Relu": "({0} if {0} > 0 else ({0} if {0} != {0} else 0))",
    "Sqrt": "math.sqrt({0})",
    "Abs": "abs({0})",
    "Sign": "((({0}) > 0) - (({0}) < 0))",
    "Square": "({0} * {0})",
    "Identity": "{0}",
    "StopGradient": "{0}",
    "Copy": "{0}",
    "PowScalar": "({0} ** {exponent})",
    "Cast": "{0}",  # the store into the typed output array converts
    "Add": "({0} + {1})",
    "Sub": "({0} - {1})",
    "Mul": "({0} * {1})",
    "Div": "({0} / {1})",
    "Pow": "({0} ** {1})",
    # NaN-propagating like np.maximum / np.minimum (Python's max would drop a NaN).
    "Maximum": "({0} if ({0} >= {1} or {0} != {0}) else {1})",
    "Minimum": "({0} if ({0} <= {1} or {0} != {0}) else {1})",
    "Less": "({0} < {1})",
    "LessEqual": "({0} <= {1})",
    "Greater": "({0} > {1})",
    "GreaterEqual": "({0} >= {1})",
    "Equal": "({0} == {1})",
    "NotEqual": "({0} != {1})",
    "Where": "({1} if {0} else {2})",
    "ZerosLike": "0",
    "OnesLike": "1",
}


def render(op_type: str, operands, attrs=None) -> str:
    """The scalar expression of ``op_type`` applied to ``operands`` (source strings)."""
    return TEMPLATES[op_type].format(*operands, **(attrs or {}))


def has_template(op_type: str) -> bool:
    return op_type in TEMPLATES
