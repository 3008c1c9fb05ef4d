"""Variable scopes for layers and cells: a unique name reserved at first call.

A layer's variables are named ``<name scope>/<layer name>/<variable>``, e.g.
``rnn/lstm_cell/kernel``; the layer name is made unique in the graph on first call,
so two cells of one kind get ``lstm_cell`` and ``lstm_cell_1``.
"""
from __future__ import annotations

from ..graph import _no_control_dependencies, _scopes, get_default_graph
from ..variables import Variable


def reserve_scope(base: str, graph=None) -> str:
    """Reserve a unique ``base`` in the current name scope; return it without the
    enclosing scope's prefix (ready for ``fg.name_scope`` or variable names).
    """
    graph = graph or get_default_graph()
    prefix = _scopes().name_prefix
    full = graph.unique_name(base)
    return full[len(prefix):]


def make_variable(scope: str, name: str, value, trainable=True) -> Variable:
    """A variable named ``<current name scope>/<scope>/<name>``; created outside any
    ``control_dependencies`` block (a variable is state, not a step of the computation).
    """
    with _no_control_dependencies():
        return Variable(value, name=f"{scope}/{name}", trainable=trainable)
