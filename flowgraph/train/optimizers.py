"""Optimizers: gradient descent, momentum, Adagrad, RMSProp and Adam, as TF1
``tf.train`` optimizers (TF1's update formulas).

An update is a graph op built from tensors: each new value is computed from the values
the variables had at the start of the run (the README's ordering rule, "Sessions"),
then assigned. So ``sess.run([loss, train_op])`` returns the loss before the step, and
Adam's parameter update uses the new moments ``m_new``, ``v_new`` of the same step. Slot variables
(momenta, moments, step counts) are ordinary non-trainable ``fg.Variable``s, saved by
``Saver`` like any other. One optimizer applied more than once (two
``apply_gradients`` calls, say for two losses) shares its slots and its step counters,
as in TF1. Learning rates (and Momentum's ``momentum``) may be tensors, e.g. a
placeholder or a schedule of ``fg.train.get_or_create_global_step()``.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     w = fg.Variable(3.0, name="w")
...     step = fg.train.GradientDescentOptimizer(0.25).minimize(fg.square(w))
...     with fg.Session() as sess:
...         _ = sess.run(step)
...         float(sess.run(w))
1.5
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from .. import dtypes
from ..autodiff import _backward_ops, gradients
from ..errors import DTypeError, describe_op
from ..graph import Tensor, _no_control_dependencies, _scopes, name_scope
from ..variables import Variable, trainable_variables


def _var_base_name(var):
    return var.op.name


class Optimizer:
    """Base class: ``compute_gradients``, ``apply_gradients`` and ``minimize``."""

    name = "Optimizer"

    def __init__(self, learning_rate, use_locking=False, name=None):
        # use_locking is accepted for TF1 compatibility: a session commits a run's
        # assignments atomically anyway.
        self.learning_rate = learning_rate
        self.name = name or type(self).name
        self._slots = {}  # (var, slot name) -> Variable
        self._non_slot = {}  # (graph, name) -> variables not tied to one parameter

    # --- the TF1 surface ----------------------------------------------------------------
    def compute_gradients(self, loss, var_list=None, gate_gradients=None,
                          aggregation_method=None, colocate_gradients_with_ops=False,
                          grad_loss=None):
        """``[(gradient, variable)]`` for ``var_list`` (all trainable variables by default);
        a variable the loss does not depend on gets a zero gradient. ``grad_loss`` is
        the gradient of ``loss`` to start from (``grad_ys``). TF1's
        ``gate_gradients``, ``aggregation_method`` and ``colocate_gradients_with_ops``
        are accepted and change nothing: a run's values do not depend on op ordering,
        and gradient ops already go on their forward op's device.
        """
        loss = F.convert_to_tensor(loss)
        if not dtypes.is_floating(loss.dtype):
            raise DTypeError(f"{self.name}.compute_gradients: expected a float loss, found "
                             f"{loss.name} of dtype {loss.dtype.name} from "
                             f"{describe_op(loss.op)}")
        var_list = list(var_list) if var_list is not None else trainable_variables(loss.graph)
        if not var_list:
            raise ValueError(f"{self.name}.compute_gradients: no variables to optimize")
        for v in var_list:
            if not isinstance(v, Variable):
                raise TypeError(f"{self.name}.compute_gradients: expected fg.Variables in "
                                f"var_list, found {type(v).__name__}: {v!r:.60}")
        grads = gradients(loss, var_list, grad_ys=grad_loss)
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """An operation applying one update per ``(gradient, variable)`` pair; pairs with a
        ``None`` gradient are skipped. ``global_step`` (a variable) is incremented by 1.
        """
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            raise ValueError(f"{self.name}.apply_gradients: no gradients provided for any "
                             "variable")
        graph = pairs[0][1].graph
        with graph.as_default(), name_scope(name or self.name):
            updates = self._prepare(pairs)
            for g, v in pairs:
                g = F.convert_to_tensor(g)
                if g.dtype != v.dtype:
                    g = F.cast(g, v.dtype)
                sparse = _sparse_rows(g, v)
                applied = None if sparse is None else self._apply_sparse_rows(*sparse, v)
                updates.extend(self._apply_dense(g, v) if applied is None else applied)
            if global_step is not None:
                updates.append(global_step.assign_add(np.ones((), global_step.dtype)))
            return F.group(*updates)

    def minimize(self, loss, global_step=None, var_list=None, gate_gradients=None,
                 aggregation_method=None, colocate_gradients_with_ops=False, name=None,
                 grad_loss=None):
        """``apply_gradients(compute_gradients(loss, var_list))``. A loss that depends on
        none of the variables raises ``ValueError`` (TF1's "No gradients provided for
        any variable"): the zero gradients would silently train nothing."""
        grads_and_vars = self.compute_gradients(
            loss, var_list, grad_loss=grad_loss)
        loss = F.convert_to_tensor(loss)
        upstream = _backward_ops([loss])
        if not any(_reads(upstream, v) for _, v in grads_and_vars):
            names = ", ".join(v.name for _, v in grads_and_vars)
            raise ValueError(f"{self.name}.minimize: No gradients provided for any variable: "
                             f"the loss {loss.name} from {describe_op(loss.op)} depends on "
                             f"none of [{names}]")
        return self.apply_gradients(grads_and_vars, global_step, name)

    # --- slots --------------------------------------------------------------------------
    def get_slot(self, var, slot_name):
        """The slot variable ``slot_name`` of ``var`` (e.g. ``"m"``), or ``None``."""
        return self._slots.get((var, slot_name))

    def get_slot_names(self):
        return sorted({name for _, name in self._slots})

    def variables(self):
        """The optimizer's own (non-trainable) variables: slots and step counters (a
        method, as in TF1)."""
        return list(self._slots.values()) + list(self._non_slot.values())

    def _slot(self, var, slot_name, initial=None):
        key = (var, slot_name)
        if key not in self._slots:
            value = np.zeros(var.shape, var.dtype) if initial is None else initial
            self._slots[key] = _state_variable(
                value, f"{_var_base_name(var)}/{self.name}/{slot_name}")  # e.g. w/Adam/m
        return self._slots[key]

    def _non_slot_variable(self, graph, name, initial):
        """A variable of the whole optimizer (Adam's beta powers), created once per
        graph and shared by every ``apply_gradients`` of this optimizer."""
        key = (graph, name)
        if key not in self._non_slot:
            with graph.as_default():
                self._non_slot[key] = _state_variable(initial, f"{self.name}/{name}")
        return self._non_slot[key]

    def _lr(self, dtype):
        return _hyper(self.learning_rate, dtype)

    # --- per-optimizer rules --------------------------------------------------------------
    def _prepare(self, pairs):
        """Ops shared by all variables in one ``apply_gradients`` (returns a list)."""
        return []

    def _apply_dense(self, grad, var):
        raise NotImplementedError

    def _apply_sparse_rows(self, rows, indices, var):
        """The update for the gradient ``GatherGrad(rows, indices, var)`` (an
        embedding's) touching only the rows used, or ``None`` for the dense update."""
        return None


def _reads(ops, var):
    """Whether one of ``ops`` reads ``var`` (its value tensor or a ReadVariable)."""
    return var._tensor.op in ops or any(op.attrs.get("variable") is var for op in ops
                                        if op.type == "ReadVariable")


def _sparse_rows(grad, var):
    """``(rows, indices)`` where ``grad`` is ``GatherGrad(rows, indices, var)``, the
    gradient of a gather from ``var`` (TF1's ``IndexedSlices``); else ``None``."""
    op = grad.op
    if op.type != "GatherGrad" or op.inputs[0].dtype != var.dtype:
        return None
    if grad.shape is None or tuple(grad.shape) != tuple(var.shape):
        return None
    return op.inputs[0], op.inputs[1]


def _state_variable(value, name):
    """A non-trainable variable named ``name`` at the graph's root, outside any control
    dependencies (state, not part of any step's ordering)."""
    scopes = _scopes()
    saved, scopes.names = scopes.names, []
    try:
        with _no_control_dependencies():
            return Variable(value, name=name, trainable=False)
    finally:
        scopes.names = saved


def _hyper(value, dtype):
    """A hyperparameter (a number, a tensor or a variable) as a tensor of ``dtype``."""
    if hasattr(value, "_as_tensor") or isinstance(value, Tensor):
        value = F.convert_to_tensor(value)
        return value if value.dtype == dtype else F.cast(value, dtype)
    return F.constant(np.asarray(value, dtype))


class GradientDescentOptimizer(Optimizer):
    """``p -= lr * g``; for an embedding's gradient (a gather's, possibly clipped by
    :func:`~flowgraph.clip_by_global_norm`) only the rows used are updated, in one
    ``SparseRowsSGD`` step (TF1's IndexedSlices update: duplicate rows summed)."""

    name = "GradientDescent"

    def _apply_dense(self, grad, var):
        return [var.assign(var.value() - self._lr(var.dtype) * grad)]

    def _apply_sparse_rows(self, rows, indices, var):
        # TF1's sparse apply (a scatter-sub of the IndexedSlices): the rows used only,
        # from the value at the start of the run as the dense update.
        return [var.graph.create_op("SparseRowsSGD", [rows, indices, self._lr(var.dtype)],
                                    {"variable": var}, f"{var.op.name}/SparseRowsSGD",
                                    device=var.op.device)]


class MomentumOptimizer(Optimizer):
    """``a = momentum * a + g;  p -= lr * a`` (TF1's and torch.optim.SGD's momentum);
    with ``use_nesterov``: ``p -= lr * (g + momentum * a)``.
    """

    name = "Momentum"

    def __init__(self, learning_rate, momentum, use_locking=False, name=None,
                 use_nesterov=False):
        super().__init__(learning_rate, use_locking, name)
        # a number, or a tensor (a placeholder, a schedule), as TF1 accepts
        self.momentum = momentum if hasattr(momentum, "_as_tensor") or isinstance(
            momentum, Tensor) else float(momentum)
        self.use_nesterov = bool(use_nesterov)

    def _apply_dense(self, grad, var):
        accum = self._slot(var, "momentum")
        momentum = _hyper(self.momentum, var.dtype)
        new_accum = momentum * accum.value() + grad
        step = grad + momentum * new_accum if self.use_nesterov else new_accum
        return [accum.assign(new_accum), var.assign(var.value() - self._lr(var.dtype) * step)]


class AdagradOptimizer(Optimizer):
    """TF1's Adagrad: ``accum += g*g;  p -= lr * g / sqrt(accum)``, the accumulator
    starting at ``initial_accumulator_value`` (torch.optim.Adagrad with ``eps=0``)."""

    name = "Adagrad"

    def __init__(self, learning_rate, initial_accumulator_value=0.1, use_locking=False,
                 name=None):
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"AdagradOptimizer: expected initial_accumulator_value > 0, "
                             f"found {initial_accumulator_value}")
        super().__init__(learning_rate, use_locking, name)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _apply_dense(self, grad, var):
        accum = self._slot(var, "accumulator",
                           np.full(var.shape, self.initial_accumulator_value, var.dtype))
        new_accum = accum.value() + F.square(grad)
        step = self._lr(var.dtype) * grad / F.sqrt(new_accum)
        return [accum.assign(new_accum), var.assign(var.value() - step)]


class RMSPropOptimizer(Optimizer):
    """TF1's RMSProp (``tf.train.RMSPropOptimizer``)::

        ms  = decay * ms + (1 - decay) * g*g              (ms starts at ones, as TF1)
        mg  = decay * mg + (1 - decay) * g                (centered only; starts at 0)
        mom = momentum * mom + lr * g / sqrt(ms - mg*mg + epsilon)   (mg = 0 uncentered)
        p  -= mom

    (torch.optim.RMSprop differs: its ``ms`` starts at zeros and its epsilon is added
    outside the square root.)
    """

    name = "RMSProp"

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
                 use_locking=False, centered=False, name=None):
        super().__init__(learning_rate, use_locking, name)
        self.decay, self.momentum, self.epsilon = decay, momentum, float(epsilon)
        self.centered = bool(centered)

    def _apply_dense(self, grad, var):
        decay = _hyper(self.decay, var.dtype)
        rms = self._slot(var, "rms", np.ones(var.shape, var.dtype))
        new_rms = decay * rms.value() + (1.0 - decay) * F.square(grad)
        denom = new_rms + self.epsilon
        updates = [rms.assign(new_rms)]
        if self.centered:
            mg = self._slot(var, "mg")
            new_mg = decay * mg.value() + (1.0 - decay) * grad
            denom = denom - F.square(new_mg)
            updates.append(mg.assign(new_mg))
        mom = self._slot(var, "momentum")
        new_mom = _hyper(self.momentum, var.dtype) * mom.value() \
            + self._lr(var.dtype) * grad / F.sqrt(denom)
        return updates + [mom.assign(new_mom), var.assign(var.value() - new_mom)]


class AdamOptimizer(Optimizer):
    """Adam, Algorithm 1 of Kingma & Ba (2015), exactly as ``torch.optim.Adam``::

        t += 1;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
        m_hat = m / (1 - b1**t);  v_hat = v / (1 - b2**t)
        p -= lr * m_hat / (sqrt(v_hat) + epsilon)

    ``b1**t`` and ``b2**t`` are kept as the non-trainable variables ``beta1_power`` and
    ``beta2_power`` (float64, ``b**t`` after ``t`` steps), one pair per optimizer and
    graph: every ``apply_gradients`` of the optimizer advances the same pair, as TF1.
    """

    name = "Adam"

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 use_locking=False, name=None):
        super().__init__(learning_rate, use_locking, name)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _prepare(self, pairs):
        graph = pairs[0][1].graph
        self.beta1_power = self._non_slot_variable(graph, "beta1_power", np.float64(1.0))
        self.beta2_power = self._non_slot_variable(graph, "beta2_power", np.float64(1.0))
        p1 = self.beta1_power.value() * self.beta1
        p2 = self.beta2_power.value() * self.beta2
        self._corrections = {}
        self._p1, self._p2 = p1, p2
        return [self.beta1_power.assign(p1), self.beta2_power.assign(p2)]

    def _bias_corrections(self, dtype):
        if dtype not in self._corrections:
            c1, c2 = 1.0 - self._p1, 1.0 - self._p2
            if dtype != np.float64:
                c1, c2 = F.cast(c1, dtype), F.cast(c2, dtype)
            self._corrections[dtype] = (c1, c2)
        return self._corrections[dtype]

    def _apply_dense(self, grad, var):
        m, v = self._slot(var, "m"), self._slot(var, "v")
        b1, b2 = self.beta1, self.beta2
        m_new = b1 * m.value() + (1.0 - b1) * grad
        v_new = b2 * v.value() + (1.0 - b2) * F.square(grad)
        c1, c2 = self._bias_corrections(var.dtype)
        m_hat = m_new / c1
        v_hat = v_new / c2
        step = self._lr(var.dtype) * m_hat / (F.sqrt(v_hat) + self.epsilon)
        return [m.assign(m_new), v.assign(v_new), var.assign(var.value() - step)]


__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdagradOptimizer",
           "RMSPropOptimizer", "AdamOptimizer"]
