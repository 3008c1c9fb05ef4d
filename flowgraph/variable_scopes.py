"""Variable scopes (TF1): ``fg.variable_scope``, ``fg.get_variable`` and ``fg.AUTO_REUSE``.

``get_variable(name, ...)`` names a variable ``<variable scope>/<name>`` and keeps it in
its graph's variable store. Creating a name that exists raises ``ValueError`` unless
the scope reuses (``reuse=True``, ``scope.reuse_variables()`` or ``AUTO_REUSE``);
reusing a name that does not exist raises too. A variable scope also opens a name scope
for the ops made inside; variable names ignore name scopes (``fg.name_scope``).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.variable_scope("model"):
...         w = fg.get_variable("w", (2, 3))
...     with fg.variable_scope("model", reuse=True):
...         same = fg.get_variable("w")
...     w.op.name, same is w
('model/w', True)
"""
from __future__ import annotations

import contextlib
import enum
import threading

import numpy as np

from . import dtypes
from .graph import (Tensor, _absolute_name_scope, _no_control_dependencies, _scopes,
                    get_default_graph)
from .variables import Variable


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1

    def __repr__(self):
        return "fg.AUTO_REUSE"


AUTO_REUSE = _ReuseMode.AUTO_REUSE
"""``reuse=fg.AUTO_REUSE``: ``get_variable`` creates a variable if missing, else reuses it."""

_STORE = "__variable_store__"


class VariableScope:
    """A variable scope: its ``name``, ``reuse`` flag, default ``initializer`` and
    default ``regularizer``."""

    def __init__(self, reuse, name="", initializer=None, dtype=dtypes.float32,
                 regularizer=None):
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.dtype = dtypes.as_dtype(dtype)
        self.regularizer = regularizer

    @property
    def original_name_scope(self):
        return self.name + "/" if self.name else ""

    def reuse_variables(self):
        """From now on ``get_variable`` in this scope reuses existing variables."""
        self.reuse = True

    def set_initializer(self, initializer):
        self.initializer = initializer

    def set_regularizer(self, regularizer):
        self.regularizer = regularizer

    def get_variable(self, name, shape=None, dtype=None, initializer=None,
                     regularizer=None, trainable=True):
        with variable_scope(self):
            return get_variable(name, shape, dtype, initializer, regularizer, trainable)

    def __repr__(self):
        return f"<fg.VariableScope '{self.name}' reuse={self.reuse}>"


class _VariableStore:
    """One per graph: the variables made by ``get_variable`` and how often each scope
    name was opened (default names are made unique with these counts, as TF1's)."""

    def __init__(self):
        self.variables = {}      # full name -> Variable
        self.counts = {}         # scope name -> times opened since its parent was
        self.root = VariableScope(False)

    def open(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1
        prefix = name + "/"
        for key in self.counts:
            if key.startswith(prefix):
                self.counts[key] = 0

    def has_variables_under(self, name):
        prefix = name + "/"
        return any(key.startswith(prefix) for key in self.variables)


def _store(graph=None):
    graph = graph or get_default_graph()
    found = graph.get_collection(_STORE)
    if found:
        return found[0]
    store = _VariableStore()
    graph.add_to_collection(_STORE, store)
    return store


class _ScopeStack(threading.local):
    def __init__(self):
        self.stack = []   # [(graph, VariableScope)]


_stack = _ScopeStack()


def get_variable_scope() -> VariableScope:
    """The innermost variable scope of the default graph (its root scope outside any).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default(), fg.variable_scope("a"):
    ...     with fg.variable_scope("b"):
    ...         fg.get_variable_scope().name
    'a/b'
    """
    graph = get_default_graph()
    for g, scope in reversed(_stack.stack):
        if g is graph:
            return scope
    return _store(graph).root


def _join(parent, name):
    return f"{parent}/{name}" if parent else name


def _inherit(reuse, parent_reuse):
    if reuse is True or reuse is AUTO_REUSE:
        return reuse
    return parent_reuse or False


@contextlib.contextmanager
def variable_scope(name_or_scope, reuse=None, initializer=None, default_name=None,
                   values=None, dtype=None, regularizer=None):
    """A context manager opening variable scope ``name_or_scope`` (a string, a
    :class:`VariableScope` to re-enter, or ``None`` with ``default_name``, made unique)
    and the name scope of the same name; yields the :class:`VariableScope`.

    ``reuse``: ``True`` (variables must exist), ``fg.AUTO_REUSE`` (made if missing), or
    ``None``/``False`` (inherit the parent's; a scope that reuses stays reusing).
    ``initializer`` and ``regularizer`` become the defaults of ``get_variable`` inside
    (nested scopes inherit them). As in TF1, a string as the second positional argument
    is ``default_name``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     with fg.variable_scope("layer", initializer=fg.ones_initializer()) as scope:
    ...         a = fg.get_variable("a", (2,))
    ...         scope.reuse_variables()
    ...         b = fg.get_variable("a")
    ...     with fg.Session() as sess:
    ...         sess.run(b).tolist(), a is b
    ([1.0, 1.0], True)
    """
    if isinstance(reuse, str):                 # TF1: variable_scope(scope, "default")
        default_name, reuse = reuse, None
        if isinstance(initializer, (list, tuple)):
            values, initializer = initializer, None
    if reuse is False:
        reuse = None
    graph = get_default_graph()
    store = _store(graph)
    parent = get_variable_scope()
    if isinstance(name_or_scope, VariableScope):
        full = name_or_scope.name
        scope = VariableScope(_inherit(reuse, name_or_scope.reuse or parent.reuse), full,
                              name_or_scope.initializer if initializer is None else initializer,
                              dtype or name_or_scope.dtype,
                              name_or_scope.regularizer if regularizer is None else regularizer)
        names = _absolute_name_scope(full)
    else:
        if name_or_scope is None:
            if default_name is None:
                raise TypeError("variable_scope: expected a name_or_scope or a "
                                "default_name, found neither")
            if reuse is True:
                raise ValueError("variable_scope: reuse=True cannot be used without a "
                                 "name_or_scope")
            base = _unique_default(store, parent, default_name)
        else:
            base = str(name_or_scope).rstrip("/")
        full = _join(parent.name, base)
        scope = VariableScope(_inherit(reuse, parent.reuse), full,
                              parent.initializer if initializer is None else initializer,
                              dtype or parent.dtype,
                              parent.regularizer if regularizer is None else regularizer)
        names = _relative_name_scope(base)
    store.open(full)
    _stack.stack.append((graph, scope))
    try:
        with names:
            yield scope
    finally:
        _stack.stack.pop()


@contextlib.contextmanager
def _relative_name_scope(name):
    state = _scopes()
    state.names = state.names + [name]
    try:
        yield
    finally:
        state.names = state.names[:-1]


def _unique_default(store, parent, prefix):
    """``prefix``, or ``prefix_N``: TF1's rule (a name not opened since its parent was)
    and, in a scope that does not reuse, not the scope of existing variables (so two
    unnamed cells in one scope get their own weights, as flowgraph always did)."""
    reusing = parent.reuse is True or parent.reuse is AUTO_REUSE
    index = 0
    while True:
        name = prefix if index == 0 else f"{prefix}_{index}"
        full = _join(parent.name, name)
        if not store.counts.get(full) and (reusing or not store.has_variables_under(full)):
            return name
        index += 1


def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None,
                 trainable=True):
    """The variable ``<scope>/<name>``: made (with ``initializer``, else the scope's,
    else Glorot-uniform for floats and zeros otherwise) or, in a reusing scope, found.

    ``initializer`` is a callable ``(shape, dtype) -> array or tensor`` or a value
    (array-like or tensor; then ``shape`` may be left out). ``regularizer`` (else the
    scope's; a callable ``variable -> scalar loss or None``, such as
    ``fg.contrib.layers.l2_regularizer(1e-4)``) is applied when the variable is made,
    not when it is reused, and its loss added to ``GraphKeys.REGULARIZATION_LOSSES``
    (TF1). The arguments are in TF1's order; a bool fifth argument is taken as
    ``trainable``, its place before ``regularizer`` existed.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     v = fg.get_variable("v", (3,), initializer=fg.zeros_initializer())
    ...     try:
    ...         fg.get_variable("v", (3,))
    ...     except ValueError as e:
    ...         print(str(e)[:38])
    Variable v already exists, disallowed.
    """
    if isinstance(regularizer, (bool, np.bool_)):   # get_variable(n, s, d, i, False)
        regularizer, trainable = None, bool(regularizer)
    graph = get_default_graph()
    store = _store(graph)
    scope = get_variable_scope()
    full = _join(scope.name, name)
    existing = store.variables.get(full)
    if scope.reuse is True and existing is None:
        raise ValueError(f"Variable {full} does not exist, or was not created with "
                         "fg.get_variable(). Did you mean to set reuse=fg.AUTO_REUSE in "
                         "VarScope?")
    if existing is not None:
        if not scope.reuse:
            raise ValueError(f"Variable {full} already exists, disallowed. Did you mean "
                             "to set reuse=True or reuse=fg.AUTO_REUSE in VarScope? "
                             f"Originally defined at: {existing.op.location}")
        if shape is not None and tuple(int(d) for d in shape) != tuple(existing.shape):
            raise ValueError(f"Trying to share variable {full}, but specified shape "
                             f"{tuple(shape)} and found shape {tuple(existing.shape)}.")
        if dtype is not None and dtypes.as_dtype(dtype) != existing.dtype:
            raise ValueError(f"Trying to share variable {full}, but specified dtype "
                             f"{dtypes.as_dtype(dtype).name} and found dtype "
                             f"{existing.dtype.name}.")
        return existing
    if initializer is None:
        initializer = scope.initializer
    var = _new_variable(full, shape, dtype, initializer, trainable, scope)
    store.variables[full] = var
    if regularizer is None:
        regularizer = scope.regularizer
    if regularizer is not None:
        from .regularizers import add_regularization_loss
        add_regularization_loss(var, regularizer)
    return var


def _new_variable(full, shape, dtype, initializer, trainable, scope):
    if isinstance(initializer, type):          # TF1 accepts the class itself
        initializer = initializer()
    value_given = initializer is not None and not callable(initializer)
    if value_given and dtype is None and isinstance(initializer, (Tensor, np.ndarray)):
        dtype = initializer.dtype
    dtype = dtypes.as_dtype(dtype if dtype is not None else scope.dtype)
    if value_given:
        value = initializer
        found = tuple(np.shape(value)) if not isinstance(value, Tensor) else value.shape
        if shape is not None and tuple(int(d) for d in shape) != tuple(found):
            raise ValueError(f"get_variable {full}: the initial value has shape {found}, "
                             f"expected the shape given, {tuple(shape)}")
    else:
        if shape is None:
            raise ValueError(f"Shape of a new variable ({full}) must be fully defined, "
                             "but instead was None.")
        shape = tuple(int(d) for d in shape)
        if initializer is None:
            from .initializers import glorot_uniform_initializer, zeros_initializer
            initializer = (glorot_uniform_initializer() if dtypes.is_floating(dtype)
                           else zeros_initializer())
        init = initializer

        def value():
            return init(shape, dtype=dtype)
    with _no_control_dependencies(), _absolute_name_scope(""):
        return Variable(value, name=full, trainable=trainable, dtype=dtype)


__all__ = ["AUTO_REUSE", "VariableScope", "variable_scope", "get_variable",
           "get_variable_scope"]
