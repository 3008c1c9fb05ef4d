"""Variables: named state that lives in a session between runs.

A variable's value belongs to the session: each session starts from the variable's
initial value (computed once, when the variable is created, so every session starts
from the same numbers).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     v = fg.Variable([1.0, 2.0], name="v")
...     step = v.assign_add([1.0, 1.0])
...     with fg.Session() as sess:
...         _ = sess.run(step)
...         sess.run(v)
array([2., 3.], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from . import api, dtypes
from .errors import DTypeError
from .graph import Tensor, control_dependencies, get_default_graph

GLOBAL_VARIABLES = "variables"
TRAINABLE_VARIABLES = "trainable_variables"


class Variable:
    """A mutable tensor whose value persists across ``Session.run`` calls.

    ``initial_value`` is an array-like, a callable returning one, or a tensor that
    depends on no placeholder or variable.
    """

    def __init__(self, initial_value, name=None, trainable=True, dtype=None):
        if callable(initial_value):
            initial_value = initial_value()
        if isinstance(initial_value, Tensor):
            from .session import evaluate_constant
            initial_value = evaluate_constant(initial_value)
        if dtype is not None:
            dtype = dtypes.as_dtype(dtype)
        elif isinstance(initial_value, (np.ndarray, np.generic)):
            dtype = dtypes.as_dtype(initial_value.dtype)
        else:
            dtype = dtypes.default_dtype_for_python(initial_value)
        value = np.array(initial_value, dtype=dtype)
        value.setflags(write=False)
        self.initial_value = value
        self.trainable = bool(trainable)
        graph = get_default_graph()
        self._op = graph.create_op("Variable", [], {"shape": value.shape, "dtype": dtype,
                                                   "variable": self}, name or "Variable")
        self._tensor = self._op.outputs[0]
        graph.add_to_collection(GLOBAL_VARIABLES, self)
        if trainable:
            graph.add_to_collection(TRAINABLE_VARIABLES, self)

    # --- tensor-like attributes ---------------------------------------------------
    name = property(lambda self: self._tensor.name)
    shape = property(lambda self: self._tensor.shape)

    def get_shape(self):
        """TF1's ``variable.get_shape()``: the shape as an ``fg.TensorShape``."""
        return self._tensor.get_shape()
    dtype = property(lambda self: self._tensor.dtype)
    op = property(lambda self: self._op)
    device = property(lambda self: self._op.device)
    graph = property(lambda self: self._op.graph)
    ndim = property(lambda self: len(self._tensor.shape))

    def _as_tensor(self) -> Tensor:
        return self._tensor

    def initialized_value(self) -> Tensor:
        """A constant tensor of this variable's initial value (TF1's
        ``initialized_value()``, for another variable's initial value:
        ``fg.Variable(w.initialized_value() * 2)``). Initial values are computed when
        the variable is created, so this is that array, not a read of the variable."""
        return api.constant(self.initial_value, dtype=self.dtype,
                            name=f"{self._op.name}/initial_value")

    def value(self) -> Tensor:
        """The tensor of this variable's value at the start of a run."""
        return self._tensor

    def read_value(self) -> Tensor:
        """A new read of the variable: inside ``fg.control_dependencies([assign])`` it
        sees that assignment's result.
        """
        return self.graph.create_op(
            "ReadVariable", [], {"shape": self.shape, "dtype": self.dtype, "variable": self},
            self._op.name + "/read", device=self._op.device).outputs[0]

    def _assign(self, type_, value, name):
        value = api.convert_to_tensor(value, dtype=self.dtype, graph=self.graph) if not (
            isinstance(value, Tensor) or hasattr(value, "_as_tensor")) else \
            api.convert_to_tensor(value)
        if value.dtype != self.dtype:
            raise DTypeError(
                f"{type_} to variable '{self._op.name}': expected a value of dtype "
                f"{self.dtype.name}, found {value.name} of dtype {value.dtype.name}")
        return self.graph.create_op(type_, [value], {"variable": self},
                                    name or f"{self._op.name}/{type_}",
                                    device=self._op.device)

    def assign(self, value, name=None):
        """An operation that sets the variable to ``value`` (tensor or array-like);
        its output is the new value.
        """
        return self._assign("Assign", value, name)

    def assign_add(self, value, name=None):
        """An operation that adds ``value`` to the variable."""
        return self._assign("AssignAdd", value, name)

    def assign_sub(self, value, name=None):
        """An operation that subtracts ``value`` from the variable."""
        return self._assign("AssignSub", value, name)

    def eval(self, session=None):
        """The variable's value in ``session`` or the default session (TF1)."""
        from .session import run_in_default_session
        return run_in_default_session(self._tensor, None, session,
                                      f"evaluate variable {self._op.name!r} using `eval()`")

    def load(self, value, session=None):
        """Set this variable to ``value`` in ``session`` (or the default session)
        without running a graph (TF1's ``Variable.load``); the shape must match."""
        from .session import get_default_session
        session = session or get_default_session()
        if session is None:
            raise ValueError(f"Cannot load variable {self._op.name!r}: no default session "
                             f"is registered. Use `with sess.as_default():` (or `with "
                             f"fg.Session() as sess:`) or pass session=sess")
        if session.graph is not self.graph:
            raise ValueError(f"Cannot load variable {self._op.name!r}: the session's graph "
                             f"is not the variable's graph")
        session.load(self, value)

    @property
    def initializer(self):
        """An operation resetting this variable to its initial value."""
        return variables_initializer([self])

    def __repr__(self):
        from .shapes import fmt
        return f"<fg.Variable '{self.name}' shape={fmt(self.shape)} dtype={self.dtype.name}>"

    def __bool__(self):
        return self._tensor.__bool__()


api.install_operators(Variable)


# --- TF1's functional spellings: tf.assign(ref, value), ... -----------------------------

def _check_ref(fn_name, ref):
    if not isinstance(ref, Variable):
        raise TypeError(f"{fn_name}: expected an fg.Variable as ref, found "
                        f"{type(ref).__name__}: {ref!r:.60}")


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    """``ref.assign(value)`` as TF1's ``tf.assign``: returns the new value (a tensor
    whose evaluation performs the assignment; use it as a training op or fetch it).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     v = fg.Variable(1.0)
    ...     with fg.Session() as sess:
    ...         float(sess.run(fg.assign(v, 4.0))), float(sess.run(v))
    (4.0, 4.0)
    """
    _check_ref("assign", ref)
    return ref.assign(value, name=name).outputs[0]


def assign_add(ref, value, use_locking=None, name=None):
    """``ref.assign_add(value)`` as TF1's ``tf.assign_add`` (returns the new value)."""
    _check_ref("assign_add", ref)
    return ref.assign_add(value, name=name).outputs[0]


def assign_sub(ref, value, use_locking=None, name=None):
    """``ref.assign_sub(value)`` as TF1's ``tf.assign_sub`` (returns the new value)."""
    _check_ref("assign_sub", ref)
    return ref.assign_sub(value, name=name).outputs[0]


def global_variables(graph=None):
    """All variables of the (default) graph, in creation order."""
    return (graph or get_default_graph()).get_collection(GLOBAL_VARIABLES)


def trainable_variables(graph=None):
    """The variables created with ``trainable=True``."""
    return (graph or get_default_graph()).get_collection(TRAINABLE_VARIABLES)


def variables_initializer(var_list, name="init"):
    """An operation resetting ``var_list`` to their initial values."""
    var_list = list(var_list)
    graph = var_list[0].graph if var_list else get_default_graph()
    return graph.create_op("InitVariables", [], {"variables": tuple(var_list)}, name)


def global_variables_initializer():
    """An operation resetting every variable of the default graph to its initial value.

    Each session already starts from the initial values; run this to reset them.
    """
    return variables_initializer(global_variables())


LOCAL_VARIABLES = "local_variables"


def local_variables(graph=None):
    """TF1's local variables: what user code added to the ``local_variables``
    collection (``fg.GraphKeys.LOCAL_VARIABLES``); flowgraph itself makes none (it has
    no ``tf.metrics``), so this is usually empty."""
    return (graph or get_default_graph()).get_collection(LOCAL_VARIABLES)


def local_variables_initializer():
    """An operation resetting :func:`local_variables` (TF1 training scripts run it
    next to ``global_variables_initializer()``; with none it does nothing)."""
    return variables_initializer(local_variables(), name="init_local")


def initialize_all_variables():
    """TF1's deprecated name of :func:`global_variables_initializer`."""
    return global_variables_initializer()


__all__ = ["local_variables", "local_variables_initializer", "initialize_all_variables",
           "Variable", "assign", "assign_add", "assign_sub", "global_variables",
           "trainable_variables", "variables_initializer",
           "global_variables_initializer", "control_dependencies"]
