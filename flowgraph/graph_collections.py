"""TF1's graph collections at module level: ``fg.GraphKeys``, ``fg.get_collection``,
``fg.add_to_collection`` (``Graph`` has the methods; TF1 code calls the functions).

The collections flowgraph itself fills: ``GraphKeys.GLOBAL_VARIABLES`` and
``TRAINABLE_VARIABLES`` (every ``fg.Variable``), ``GLOBAL_STEP``
(``fg.train.get_or_create_global_step``) and ``LOSSES`` (the ``fg.losses`` functions,
``fg.losses.add_loss``), ``UPDATE_OPS`` (the moving-average updates of
``fg.layers.batch_normalization``) and ``REGULARIZATION_LOSSES`` (the losses of
regularizers, see :mod:`flowgraph.regularizers`). Other keys hold what user code adds.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     with fg.variable_scope("a"):
...         w = fg.get_variable("w", [1])
...     b = fg.Variable(0.0, name="b")
...     [v.name for v in fg.get_collection(fg.GraphKeys.TRAINABLE_VARIABLES, scope="a")]
['a/w:0']
"""
from __future__ import annotations

import re

from .graph import get_default_graph


class GraphKeys:
    """TF1's standard collection names (the same strings as TF1)."""
    GLOBAL_VARIABLES = "variables"
    VARIABLES = GLOBAL_VARIABLES
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"          # = variables.LOCAL_VARIABLES
    MODEL_VARIABLES = "model_variables"
    GLOBAL_STEP = "global_step"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"                    # = fg.losses.LOSSES
    REGULARIZATION_LOSSES = "regularization_losses"
    WEIGHTS = "weights"                  # read by fg.contrib.layers.apply_regularization
    BIASES = "biases"
    SUMMARIES = "summaries"


def add_to_collection(name, value):
    """Append ``value`` to the default graph's collection ``name``."""
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names, value):
    """``add_to_collection`` for each of ``names`` (a name or a list)."""
    for name in [names] if isinstance(names, str) else names:
        add_to_collection(name, value)


def get_collection(key, scope=None):
    """A copy of the default graph's collection ``key`` (empty if there is none); with
    ``scope``, only the items whose ``.name`` matches it from the start (``re.match``,
    as TF1)."""
    items = get_default_graph().get_collection(key)
    if scope is None:
        return items
    pattern = re.compile(scope)
    return [item for item in items
            if getattr(item, "name", None) is not None and pattern.match(item.name)]
