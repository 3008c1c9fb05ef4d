"""Data-parallel training: an optimizer wrapper that averages gradients over ranks.

Every rank builds the same graph and feeds its own shard of the batch. The wrapper
inserts one ``AllReduceMean`` op over all gradients between ``compute_gradients`` and
``apply_gradients``, and makes every session start from rank 0's variable values, so
the ranks stay identical step after step. With equal shards, the averaged gradient of
the per-shard mean losses is the gradient of the full-batch mean loss.

>>> import numpy as np, flowgraph as fg
>>> from flowgraph.distributed import DistributedOptimizer
>>> class SGD:  # any TF1-style optimizer, e.g. fg.train.GradientDescentOptimizer(0.1)
...     def compute_gradients(self, loss, var_list=None):
...         var_list = var_list or fg.trainable_variables()
...         return list(zip(fg.gradients(loss, var_list), var_list))
...     def apply_gradients(self, grads_and_vars, global_step=None, name=None):
...         return fg.group(*[v.assign_sub(0.5 * g) for g, v in grads_and_vars])
>>> with fg.Graph().as_default():
...     w = fg.Variable(2.0)
...     train = DistributedOptimizer(SGD()).minimize(fg.square(w))
...     with fg.Session() as sess:
...         _ = sess.run(train)
...         float(sess.run(w))
0.0
"""
from __future__ import annotations

from ..autodiff import gradients
from ..variables import trainable_variables
from .collectives import allreduce_mean, broadcast_variables_at_session_start
from .comm import world


class DistributedOptimizer:
    """Wraps a TF1-style optimizer (``compute_gradients``/``apply_gradients``) so that
    gradients are averaged over all ranks in one fused allreduce per step.

    ``root`` is the rank whose variable values every session starts from. In a single
    process the wrapper adds no op and behaves exactly like ``optimizer``. Other
    attributes (``learning_rate``, slots, ...) are the wrapped optimizer's.
    """

    def __init__(self, optimizer, root=0, name="DistributedOptimizer"):
        if not hasattr(optimizer, "apply_gradients"):
            raise TypeError(f"DistributedOptimizer: expected an optimizer with "
                            f"apply_gradients(grads_and_vars), found "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.root = root
        self.name = name

    def compute_gradients(self, loss, var_list=None, **kwargs):
        """``[(averaged_gradient, variable)]``; gradients that are ``None`` stay so."""
        if hasattr(self.optimizer, "compute_gradients"):
            grads_and_vars = list(self.optimizer.compute_gradients(loss, var_list=var_list,
                                                                   **kwargs))
        else:
            var_list = list(var_list or trainable_variables(loss.graph))
            grads_and_vars = list(zip(gradients(loss, var_list), var_list))
        graph = loss.graph
        broadcast_variables_at_session_start(graph, self.root)
        if world().size == 1:
            return grads_and_vars
        present = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
        averaged = allreduce_mean([grads_and_vars[i][0] for i in present],
                                  name=f"{self.name}/allreduce_mean")
        out = list(grads_and_vars)
        for i, g in zip(present, averaged):
            out[i] = (g, grads_and_vars[i][1])
        return out

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        """The wrapped optimizer's update (gradients are expected already averaged,
        i.e. from :meth:`compute_gradients`)."""
        return self.optimizer.apply_gradients(grads_and_vars, *args, **kwargs)

    def minimize(self, loss, global_step=None, var_list=None, name=None):
        """``apply_gradients(compute_gradients(loss, var_list))`` (TF1's argument order)."""
        grads_and_vars = self.compute_gradients(loss, var_list=var_list)
        kwargs = {}
        if global_step is not None:
            kwargs["global_step"] = global_step
        if name is not None:
            kwargs["name"] = name
        return self.apply_gradients(grads_and_vars, **kwargs)

    def __getattr__(self, item):
        # Only reached for attributes not found here: delegate to the wrapped optimizer.
        if item == "optimizer":
            raise AttributeError(item)
        return getattr(self.optimizer, item)
