"""The graph IR: :class:`Graph`, :class:`Operation`, :class:`Tensor`, and the scopes
(default graph, device, name, control dependencies) that shape new operations.

An :class:`Operation` is one immutable node: a primitive ``type`` (declared once in
:mod:`flowgraph.ops`, looked up in the registry :mod:`flowgraph.primitives`: this
module imports neither the ops nor the API), its input tensors, static ``attrs``, a
device and the place in user code that created it. Its outputs are :class:`Tensor`
handles carrying static shape and dtype. Graphs are append-only, so creation order is
a topological order.

>>> import flowgraph as fg
>>> g = fg.Graph()
>>> with g.as_default():
...     x = fg.placeholder(fg.float32, (None, 3), name="x")
>>> x.name, x.shape, g.operations[0].type
('x:0', (None, 3), 'Placeholder')
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy as np

from . import shapes as _shapes
from . import tensor_shape as _tensor_shape
from .devices import canonical_device
from .errors import FlowgraphError, describe_op
from .primitives import get_primitive

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_KERNELS_DIR = os.path.join(os.path.dirname(_PACKAGE_DIR), "kernels")


_USER_FILES: dict[str, str | None] = {}   # code filename -> basename if user code, else None


def _user_file(filename):
    """The basename of ``filename`` if it is user code (outside flowgraph), else None;
    cached: every op creation asks this for each frame of its stack."""
    found = _USER_FILES.get(filename, False)
    if found is False:
        path = os.path.abspath(filename)
        found = None if (path.startswith(_PACKAGE_DIR) or path.startswith(_KERNELS_DIR)
                         or "contextlib" in path) else os.path.basename(path)
        _USER_FILES[filename] = found
    return found


def _user_location() -> str | None:
    """``"file.py:LINE"`` of the innermost frame outside flowgraph itself."""
    frame = sys._getframe(1)
    while frame is not None:
        base = _user_file(frame.f_code.co_filename)
        if base is not None:
            return f"{base}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def location_suffix(verb: str = "created") -> str:
    """``" (created at model.py:12)"`` (or ``"called"``): the user's line an error is
    about, as error messages append it to the op or function they name; ``""`` when
    no frame outside flowgraph is on the stack."""
    where = _user_location()
    return f" ({verb} at {where})" if where else ""


class Tensor:
    """A symbolic value: output ``value_index`` of operation ``op``.

    Arithmetic operators (``+ - * / @``, ``**``, comparisons, indexing) build new ops;
    they are installed by :mod:`flowgraph.api`.
    """

    __slots__ = ("op", "value_index", "shape", "dtype", "__weakref__")
    __array_priority__ = 100  # make `ndarray + tensor` defer to Tensor.__radd__

    def __init__(self, op: "Operation", value_index: int, shape, dtype):
        self.op = op
        self.value_index = value_index
        # the contract's tuple, with TF1's .as_list() / .ndims (tensor_shape.StaticShape)
        self.shape = None if shape is None else _tensor_shape.StaticShape(shape)
        self.dtype = np.dtype(dtype)

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"

    @property
    def device(self) -> str | None:
        return self.op.device

    @property
    def graph(self) -> "Graph":
        return self.op.graph

    @property
    def ndim(self):
        return None if self.shape is None else len(self.shape)

    def get_shape(self):
        """TF1's ``tensor.get_shape()``: the static shape as an ``fg.TensorShape``
        (``.as_list()``, ``[i].value``, ``ndims``...). ``tensor.shape`` stays the plain
        tuple (``None`` for an unknown dimension; a ``StaticShape``, which also has
        ``.as_list()`` and ``.ndims``, but whose items are ints).

        >>> import flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     x = fg.placeholder(fg.float32, [None, 3])
        >>> x.get_shape()[1].value, x.get_shape().as_list(), x.shape
        (3, [None, 3], (None, 3))
        """
        return _tensor_shape.TensorShape(self.shape)

    def set_shape(self, shape):
        """TF1's ``tensor.set_shape(shape)``: refine the static shape with what you know
        (``None`` dimensions become known). The shapes must be compatible, else
        ``ValueError`` naming the tensor and where its op was created. As in TF1 this
        is static information for the ops built afterwards; on a placeholder it also
        restricts what may be fed.

        >>> import flowgraph as fg
        >>> with fg.Graph().as_default():
        ...     x = fg.placeholder(fg.float32, [None, None])
        ...     x.set_shape([None, 3])
        >>> x.shape
        (None, 3)
        """
        try:
            merged = _tensor_shape.TensorShape(self.shape).merge_with(shape)
        except ValueError:
            raise ValueError(
                f"{describe_op(self.op)}: set_shape on {self.name}: expected a shape "
                f"compatible with {_shapes.fmt(self.shape)}, found "
                f"{_shapes.fmt(_shapes.as_shape(shape))}") from None
        with self.op.graph._lock:
            self.shape = None if merged.ndims is None else _tensor_shape.StaticShape(
                merged.as_list())
            self.op.graph._shape_epoch += 1

    def __repr__(self):
        return (f"<fg.Tensor '{self.name}' shape={_shapes.fmt(self.shape)} "
                f"dtype={self.dtype.name}>")

    # __hash__ and __eq__ are object's: identity, as in TF1 (tensors are dict keys).

    def __bool__(self):
        raise TypeError(
            f"the truth value of a symbolic tensor ({self.name}) is unknown until the "
            "graph runs; use fg.where(...) for a choice inside the graph")

    def __iter__(self):
        raise TypeError(f"tensor {self.name} is not iterable; use fg.unstack(...)")

    def eval(self, feed_dict=None, session=None):
        """This tensor's value, run in ``session`` or the default session (TF1; see
        ``Session.as_default``)."""
        from .session import run_in_default_session
        return run_in_default_session(self, feed_dict, session,
                                      f"evaluate tensor {self.name!r} using `eval()`")

    def __len__(self):
        if self.shape is None or not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of tensor {self.name} is unknown (shape "
                            f"{_shapes.fmt(self.shape)})")
        return self.shape[0]


class Operation:
    """One node of the graph. Create operations through the ``fg.*`` functions.

    Attributes: ``type`` (the primitive's name), ``name``, ``inputs`` (tensors),
    ``control_inputs`` (operations that must run first), ``attrs`` (static
    parameters), ``outputs``, ``device`` (canonical string or ``None``), ``graph``,
    ``location`` (``"file.py:LINE"`` of the user code that created it).
    """

    __slots__ = ("type", "name", "inputs", "control_inputs", "attrs", "outputs", "device",
                 "graph", "location", "_id", "__weakref__")

    def __init__(self, graph, type_, name, inputs, attrs, device, control_inputs, location):
        self.graph = graph
        self.type = type_
        self.name = name
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs)
        self.device = device
        self.control_inputs = tuple(control_inputs)
        self.location = location
        self.outputs: tuple[Tensor, ...] = ()
        self._id = -1

    @property
    def primitive(self):
        return get_primitive(self.type)

    def run(self, feed_dict=None, session=None):
        """Run this operation in ``session`` or the default session (TF1); ``None``."""
        from .session import run_in_default_session
        run_in_default_session(self, feed_dict, session,
                               f"execute operation {self.name!r} using `run()`")

    def __repr__(self):
        return f"<fg.Operation '{self.name}' type={self.type}>"



class Graph:
    """A dataflow graph. Operations are appended in creation (topological) order.

    >>> import flowgraph as fg
    >>> g = fg.Graph()
    >>> with g.as_default():
    ...     c = fg.constant(2.0) * 3.0
    >>> [op.type for op in g.operations]
    ['Const', 'Const', 'Mul']
    """

    def __init__(self):
        self._operations: list[Operation] = []
        self._names: set[str] = set()
        self._by_name: dict[str, Operation] = {}
        self._name_counts: dict[str, int] = {}
        self._lock = threading.RLock()
        self._variables = []
        self._collections: dict[str, list] = {}
        self._version = 0  # bumped on every new op; plan caches use it
        self._shape_epoch = 0  # bumped by Tensor.set_shape; sessions re-resolve feeds
        self.seed = None   # graph-level random seed (fg.set_random_seed)

    @property
    def operations(self) -> list[Operation]:
        """All operations in creation (hence topological) order."""
        return list(self._operations)

    def get_operations(self) -> list[Operation]:
        """``operations`` (TF1's ``Graph.get_operations()``)."""
        return self.operations

    @property
    def version(self) -> int:
        return self._version

    def as_default(self):
        """Context manager that makes this the default graph."""
        return _default_graph_stack.scope(self)

    def get_operation_by_name(self, name: str) -> Operation:
        op = self._by_name.get(name)
        if op is not None:
            return op
        raise KeyError(f"no operation named {name!r} in this graph")

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, _, index = name.rpartition(":")
        if not op_name or not index.isdigit():
            raise KeyError(f"expected a tensor name like 'x:0', found {name!r}")
        op = self.get_operation_by_name(op_name)
        if int(index) >= len(op.outputs):
            raise KeyError(f"operation {op_name!r} has {len(op.outputs)} outputs, "
                           f"found index {index} in {name!r}")
        return op.outputs[int(index)]

    def unique_name(self, base: str) -> str:
        """Prefix ``base`` with the name scope and make it unique in this graph."""
        prefix = _scopes().name_prefix
        name = f"{prefix}{base}" if prefix else base
        with self._lock:
            if name not in self._names:
                self._names.add(name)
                return name
            count = self._name_counts.get(name, 0)
            while True:
                count += 1
                candidate = f"{name}_{count}"
                if candidate not in self._names:
                    self._name_counts[name] = count
                    self._names.add(candidate)
                    return candidate

    def create_op(self, type_, inputs, attrs=None, name=None, output_specs=None,
                  device=None, control_inputs=()) -> Operation:
        """Create and append an operation; shapes and dtypes of outputs come from the
        primitive's rule unless ``output_specs`` (``[(shape, dtype)]``) is given.
        """
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"inputs of {type_} must be tensors, found {type(t).__name__}")
            if t.graph is not self:
                raise FlowgraphError(
                    f"{type_}: input {t.name} belongs to another graph; tensors from "
                    "different graphs cannot be combined (is a `with g.as_default()` "
                    "missing?)")
        primitive = get_primitive(type_)
        scopes = _scopes()
        dev = device if device is not None else scopes.device
        op = Operation(self, type_, self.unique_name(name or primitive.default_name),
                       inputs, attrs or {}, dev,
                       scopes.control_inputs_for(self, inputs) + list(control_inputs),
                       _user_location())
        if output_specs is None:
            output_specs = primitive.infer_checked(op)
        op.outputs = tuple(Tensor(op, i, shape, dtype)
                           for i, (shape, dtype) in enumerate(output_specs))
        scopes.record_op(self, op)
        with self._lock:
            op._id = len(self._operations)
            self._operations.append(op)
            self._by_name.setdefault(op.name, op)
            self._version += 1
        return op

    # -- collections ------------------------------------------------------------------
    def add_to_collection(self, key: str, value):
        self._collections.setdefault(key, []).append(value)

    def get_collection(self, key: str) -> list:
        return list(self._collections.get(key, []))

    def to_dot(self) -> str:
        """Graphviz DOT text of the graph: op names, types, shapes, devices, one
        colour per device (rendered by :mod:`flowgraph.visualize`, which registers
        itself: :func:`register_renderer`).
        """
        render = _RENDERERS.get("dot")
        if render is None:
            raise FlowgraphError("to_dot: no DOT renderer is registered (import flowgraph, "
                                 "which loads flowgraph.visualize)")
        return render(self)


_RENDERERS: dict = {}


def register_renderer(name: str, render) -> None:
    """Register ``render(graph) -> str`` as the graph's ``name`` view (``"dot"``:
    :meth:`Graph.to_dot`). :mod:`flowgraph.visualize` registers its renderer here, so
    that this module need not import it."""
    _RENDERERS[name] = render


class _DefaultGraphStack(threading.local):
    def __init__(self):
        self.stack: list[Graph] = []

    @contextlib.contextmanager
    def scope(self, graph):
        self.stack.append(graph)
        try:
            yield graph
        finally:
            self.stack.pop()


_default_graph_stack = _DefaultGraphStack()
_global_default_graph = Graph()


def get_default_graph() -> Graph:
    """The innermost graph of a ``with g.as_default():`` block, else the module's
    default graph.

    >>> import flowgraph as fg
    >>> isinstance(fg.get_default_graph(), fg.Graph)
    True
    """
    if _default_graph_stack.stack:
        return _default_graph_stack.stack[-1]
    return _global_default_graph


def reset_default_graph() -> None:
    """Replace the module's default graph with a new empty one."""
    global _global_default_graph
    if _default_graph_stack.stack:
        raise FlowgraphError("reset_default_graph() called inside a `with g.as_default()` "
                             "block; leave the block first")
    _global_default_graph = Graph()


class _Scopes(threading.local):
    """Per-thread device, name and control-dependency scopes."""

    def __init__(self):
        self.devices: list[str | None] = []
        self.names: list[str] = []
        # (graph, control ops, ids of the ops created inside that context)
        self.controls: list[tuple[Graph, tuple[Operation, ...], set]] = []

    @property
    def device(self):
        return self.devices[-1] if self.devices else None

    @property
    def name_prefix(self) -> str:
        return "".join(f"{n}/" for n in self.names)

    def control_inputs_for(self, graph, inputs=()):
        """The control inputs of a new op of ``graph`` with data ``inputs``, by TF1's
        rule (``Graph._control_dependencies_for_inputs``): a context's ops, except
        where one of ``inputs`` was made inside that context (that input already runs
        after them, so the new op does too) and those ``inputs`` already are. Fewer
        control edges lets the compiler fuse what a ``control_dependencies`` block
        holds (a whole ``minimize`` under ``UPDATE_OPS``, say) as it fuses the rest."""
        out = []
        input_ops = [t.op for t in inputs]
        for g, ops, seen in self.controls:
            if g is graph and not any(id(o) in seen for o in input_ops):
                out.extend(o for o in ops if all(o is not i for i in input_ops))
        return out

    def record_op(self, graph, op):
        """``op`` was made inside each open ``control_dependencies`` of ``graph``."""
        for g, _, seen in self.controls:
            if g is graph:
                seen.add(id(op))


_scope_state = _Scopes()


def _scopes() -> _Scopes:
    return _scope_state


@contextlib.contextmanager
def device(name: str | None):
    """Place the operations created inside on ``name`` (``"/cpu:0"``, ``"/gpu:0"``,
    ``"cpu"``, ``"/device:GPU:0"``, ...). ``None`` clears the enclosing device.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     with fg.device("/device:CPU:0"):
    ...         c = fg.constant(1.0)
    >>> c.device
    '/cpu:0'
    """
    _scope_state.devices.append(canonical_device(name))
    try:
        yield
    finally:
        _scope_state.devices.pop()


@contextlib.contextmanager
def name_scope(name: str):
    """Prefix the names of operations created inside with ``name/``."""
    _scope_state.names.append(name.rstrip("/"))
    try:
        yield name
    finally:
        _scope_state.names.pop()


@contextlib.contextmanager
def control_dependencies(ops):
    """Operations created inside run only after ``ops`` (operations or tensors).

    A variable read made inside with ``v.read_value()`` sees assignments in ``ops``.
    """
    ops = tuple(o.op if isinstance(o, Tensor) else o for o in (ops or ()))
    graph = ops[0].graph if ops else get_default_graph()
    _scope_state.controls.append((graph, ops, set()))
    try:
        yield
    finally:
        _scope_state.controls.pop()


@contextlib.contextmanager
def _absolute_name_scope(name: str):
    """Replace the name scope by ``name`` (absolute; "" for the root) inside."""
    saved = _scope_state.names
    _scope_state.names = [name] if name else []
    try:
        yield
    finally:
        _scope_state.names = saved


@contextlib.contextmanager
def _no_control_dependencies():
    saved = _scope_state.controls
    _scope_state.controls = []
    try:
        yield
    finally:
        _scope_state.controls = saved
