"""The compiled plan's loop step: ``While`` and ``If`` ops run their bodies as plans
compiled once (:func:`flowgraph.compiler.compile_plan` on the body's sub-graph, with
its own buffers), keyed by the body's input shapes. The number of iterations is data:
a new sequence length needs no new compile of the body.

Registered as the CPU kernels of ``While`` and ``If`` (:mod:`kernels`); a plan that
finds them calls the step like any other prebound kernel.
"""
from __future__ import annotations

import numpy as np

from kernels import register

from . import control_flow


def _compiled_plan_for(function, arrays):
    return function.compiled_plan(arrays)


def _copy_into(outputs, values):
    copyto = np.copyto
    for out, value in zip(outputs, values):
        if np.shape(value) != out.shape:
            raise ValueError(f"produced shape {np.shape(value)}, expected {out.shape}")
        copyto(out, value, casting="unsafe")


class _OpView:
    """What the loop evaluator reads of an op: attrs, a name for errors."""

    __slots__ = ("attrs", "type", "name", "location")

    def __init__(self, attrs, type_):
        self.attrs, self.type = attrs, type_
        self.name, self.location = attrs.get("_name", type_), None


@register("While", "cpu")
def while_step(attrs, inputs, outputs):
    view = _OpView(attrs, "While")
    run = control_flow.run_loop

    def step():
        _copy_into(outputs, run(view, inputs, _compiled_plan_for))
    return step


@register("If", "cpu")
def if_step(attrs, inputs, outputs):
    view = _OpView(attrs, "If")
    run = control_flow.run_if

    def step():
        _copy_into(outputs, run(view, inputs, _compiled_plan_for))
    return step
