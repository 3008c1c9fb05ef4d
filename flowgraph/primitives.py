"""The primitive registry: :class:`Primitive` (one op type and every fact about it) and
the table of declared primitives. :mod:`flowgraph.ops` declares them; the graph, the
compiler passes and the backends read them here.

This module imports nothing of flowgraph but its errors, so that :mod:`flowgraph.graph`
can look an op type up without importing :mod:`flowgraph.ops` (which imports the API
its gradient rules are written with).

>>> import flowgraph as fg
>>> tanh = get_primitive("Tanh")
>>> tanh.kind, tanh.template, tanh.float_only, tanh.pure
('elementwise', 'math.tanh({0})', True, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import DTypeError, FlowgraphError, ShapeError, describe_op

# Primitive kinds whose ops are pure functions of their inputs (safe to fold, merge
# and drop). Anything else (state, sources other than Const, unknown kinds) is kept.
PURE_KINDS = frozenset({"elementwise", "reduction", "matmul", "shape", "index", "copy",
                        "loop"})   # loop: While and If (flowgraph.control_flow)


@dataclass(frozen=True)
class Primitive:
    """One primitive op type, declared once (:func:`defprim`).

    ``infer(op) -> [(shape, dtype), ...]``; ``grad(op, *output_grads) -> [input grads]``
    (``None`` for a non-differentiable primitive); ``ref(op, *inputs) -> array or tuple``
    (the NumPy reference kernel: the specification, and what runs wherever no faster
    kernel is declared). ``kind`` groups primitives for the compiler: ``"elementwise"``,
    ``"reduction"``, ``"matmul"``, ``"shape"``, ``"index"``, ``"source"``, ``"state"``,
    ``"control"``, ``"random"``, ``"collective"``, ``"loop"``, ``"comm"``, ``"io"``
    (a side effect outside the graph: Print).

    The other fields are facts the compiler and the backends read; each has a default
    that means "nothing special", so an op declares only what it has:

    - ``template``: its scalar expression over the operands ``{0}``, ``{1}``, ``{2}``
      (and ``{attr}`` for attributes), with ``math`` in scope. With it the op joins
      generated fused kernels: Numba loops on the CPU (:mod:`kernels.cpu.codegen`),
      numba.cuda kernels on a GPU (:mod:`kernels.cuda.codegen`, checked by
      :mod:`kernels.cuda.ptx_check`). Without it the op is a step of its own.
    - ``template_f32``: a vectorizable replacement used in float32 CPU loops
      (:mod:`kernels.cpu.vmath`).
    - ``ufunc``: how a chain of NumPy calls computes it into a preallocated array
      (:mod:`kernels.cpu.ufuncs`): a NumPy ufunc called ``ufunc(*inputs, out)``, or the
      name of a compound in ``kernels.cpu.ufuncs.COMPOUNDS``. Without it, a fused
      region holding the op is never a ufunc chain, and before its loop is compiled
      the op runs its reference kernel.
    - ``cost_ns``: ``(float64, float32)`` nanoseconds per element the op adds to a
      generated CPU loop beyond its memory traffic (libm calls); the CPU backend's cost
      model weighs it against a ufunc chain.
    - ``ufunc_ns``: ``(float64, float32)`` nanoseconds per element its NumPy call(s)
      take beyond a plain arithmetic ufunc's (a transcendental function's loop), where
      NumPy has no AVX-512 SIMD loop for it (:func:`flowgraph.backends.cpu_steps.
      uses_ufuncs`).
    - ``float_only``: takes float inputs only (its shape rule says so too).
    - ``exact``: its template has no float literal, so on operands of its own float
      dtype the result needs no rounding cast.
    - ``cheap``: one add or multiply per element: recomputed in the kernel that reads
      it rather than stored by the one that makes it.
    - ``commutative``: operands may be swapped with bitwise-equal results.
    - ``view``: its output can be a view of its first input (no copy).
    - ``alias``: its output is its first input's value (Identity, StopGradient, a copy
      on one device).
    - ``shape_only``: its value depends only on its inputs' shapes.
    - ``int_div``: on integer operands a zero divisor is an error.
    - ``writes_state``: it assigns variables (not allowed inside a loop body).
    - ``every_rank``: in a graph partitioned over MPI tasks, every rank runs it
      (variable initialization), not one task.
    - ``step_kind``: what :meth:`~flowgraph.session.Session.explain` calls its step
      when a kernel of its own runs it (``"kernel"``, ``"gemm"``, ``"copy"``...).
    - ``ir_only``: an IR node type that passes create (not an op of the graph API);
      :func:`all_primitives` leaves these out.
    """

    name: str
    infer: Callable
    grad: Callable | None
    ref: Callable
    kind: str
    default_name: str
    flops: Callable | None = None
    template: str | None = None
    template_f32: str | None = None
    ufunc: object = None
    cost_ns: tuple = (0.0, 0.0)
    ufunc_ns: tuple = (0.0, 0.0)
    float_only: bool = False
    exact: bool = False
    cheap: bool = False
    commutative: bool = False
    view: bool = False
    alias: bool = False
    shape_only: bool = False
    int_div: bool = False
    step_kind: str = "kernel"
    writes_state: bool = False
    every_rank: bool = False
    ir_only: bool = False

    @property
    def pure(self) -> bool:
        """A pure function of its inputs (safe to fold, merge and drop)?"""
        return self.kind in PURE_KINDS

    @property
    def arity(self) -> int:
        """The number of operands its template reads (0 without a template)."""
        if self.template is None:
            return 0
        import string
        fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f}
        return max((int(f) + 1 for f in fields if f.isdigit()), default=0)

    def infer_checked(self, op):
        """Run the shape/dtype rule; errors name the op and where it was created."""
        try:
            return self.infer(op)
        except (ShapeError, DTypeError) as exc:
            raise type(exc)(f"{describe_op(op)}: {exc}") from None
        except ValueError as exc:
            raise ShapeError(f"{describe_op(op)}: {exc}") from None


_PRIMITIVES: dict[str, Primitive] = {}


def get_primitive(name: str) -> Primitive:
    """The declared primitive ``name`` (:class:`~flowgraph.errors.FlowgraphError` if
    there is none)."""
    try:
        return _PRIMITIVES[name]
    except KeyError:
        raise FlowgraphError(f"unknown primitive {name!r}") from None


def find_primitive(name: str) -> Primitive | None:
    """The declared primitive ``name``, or ``None``."""
    return _PRIMITIVES.get(name)


def all_primitives() -> dict[str, Primitive]:
    """The registry, by name (a copy), without the IR-only node types."""
    return {k: p for k, p in _PRIMITIVES.items() if not p.ir_only}


def defprim(name, infer, grad, ref, kind, default_name=None, flops=None, **facts):
    """Declare a primitive. ``grad=None`` makes it non-differentiable; ``facts`` are
    the optional fields of :class:`Primitive` (``template=``, ``ufunc=``...)."""
    _PRIMITIVES[name] = Primitive(name, infer, grad, ref, kind,
                                  default_name or _snake(name), flops, **facts)


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
