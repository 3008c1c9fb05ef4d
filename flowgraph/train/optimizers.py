"""Optimizers: gradient descent, momentum and Adam, as TF1 ``tf.train`` optimizers.

An update is a graph op built from tensors: each new value is computed from the values
the variables had at the start of the run (API.md's ordering rule), then assigned. So
``sess.run([loss, train_op])`` returns the loss before the step, and Adam's parameter
update uses the new moments ``m_new``, ``v_new`` of the same step. Slot variables
(momenta, moments, step counts) are ordinary non-trainable ``fg.Variable``s, saved by
``Saver`` like any other.

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
from ..autodiff import gradients
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
        self._non_slot = []  # variables not tied to one parameter (Adam's beta powers)

    # --- the TF1 surface ----------------------------------------------------------------
    def compute_gradients(self, loss, var_list=None):
        """``[(gradient, variable)]`` for ``var_list`` (all trainable variables by default);
        a variable the loss does not depend on gets a zero gradient.
        """
        loss = F.convert_to_tensor(loss)
        var_list = list(var_list) if var_list is not None else trainable_variables(loss.graph)
        if not var_list:
            raise ValueError(f"{self.name}.compute_gradients: no variables to optimize")
        for v in var_list:
            if not isinstance(v, Variable):
                raise TypeError(f"{self.name}.compute_gradients: expected fg.Variables in "
                                f"var_list, found {type(v).__name__}: {v!r:.60}")
        grads = gradients(loss, var_list)
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
                updates.extend(self._apply_dense(g, v))
            if global_step is not None:
                updates.append(global_step.assign_add(np.ones((), global_step.dtype)))
            return F.group(*updates)

    def minimize(self, loss, global_step=None, var_list=None, name=None):
        """``apply_gradients(compute_gradients(loss, var_list))``."""
        return self.apply_gradients(self.compute_gradients(loss, var_list), global_step,
                                    name)

    # --- slots --------------------------------------------------------------------------
    def get_slot(self, var, slot_name):
        """The slot variable ``slot_name`` of ``var`` (e.g. ``"m"``), or ``None``."""
        return self._slots.get((var, slot_name))

    def get_slot_names(self):
        return sorted({name for _, name in self._slots})

    @property
    def variables(self):
        """The optimizer's own (non-trainable) variables."""
        return list(self._slots.values()) + list(self._non_slot)

    def _slot(self, var, slot_name, initial=None):
        key = (var, slot_name)
        if key not in self._slots:
            value = np.zeros(var.shape, var.dtype) if initial is None else initial
            scopes = _scopes()
            saved, scopes.names = scopes.names, []  # named after the variable, e.g. w/Adam/m
            try:
                with _no_control_dependencies():  # state, not part of any step's ordering
                    self._slots[key] = Variable(
                        value, name=f"{_var_base_name(var)}/{self.name}/{slot_name}",
                        trainable=False)
            finally:
                scopes.names = saved
        return self._slots[key]

    def _lr(self, dtype):
        lr = self.learning_rate
        if hasattr(lr, "_as_tensor") or isinstance(lr, Tensor):
            lr = F.convert_to_tensor(lr)
            return lr if lr.dtype == dtype else F.cast(lr, dtype)
        return F.constant(np.asarray(lr, dtype))

    # --- per-optimizer rules --------------------------------------------------------------
    def _prepare(self, pairs):
        """Ops shared by all variables in one ``apply_gradients`` (returns a list)."""
        return []

    def _apply_dense(self, grad, var):
        raise NotImplementedError


class GradientDescentOptimizer(Optimizer):
    """``p -= lr * g``."""

    name = "GradientDescent"

    def _apply_dense(self, grad, var):
        return [var.assign(var.value() - self._lr(var.dtype) * grad)]


class MomentumOptimizer(Optimizer):
    """``a = momentum * a + g;  p -= lr * a`` (TF1's and torch.optim.SGD's momentum);
    with ``use_nesterov``: ``p -= lr * (g + momentum * a)``.
    """

    name = "Momentum"

    def __init__(self, learning_rate, momentum, use_locking=False, name=None,
                 use_nesterov=False):
        super().__init__(learning_rate, use_locking, name)
        self.momentum = float(momentum)
        self.use_nesterov = bool(use_nesterov)

    def _apply_dense(self, grad, var):
        accum = self._slot(var, "momentum")
        new_accum = self.momentum * accum.value() + grad
        step = grad + self.momentum * new_accum if self.use_nesterov else new_accum
        return [accum.assign(new_accum), var.assign(var.value() - self._lr(var.dtype) * step)]


class AdamOptimizer(Optimizer):
    """Adam, Algorithm 1 of Kingma & Ba (2015), exactly as ``torch.optim.Adam``::

        t += 1;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
        m_hat = m / (1 - b1**t);  v_hat = v / (1 - b2**t)
        p -= lr * m_hat / (sqrt(v_hat) + epsilon)

    ``b1**t`` and ``b2**t`` are kept as the non-trainable variables ``beta1_power`` and
    ``beta2_power`` (float64), one pair per ``apply_gradients`` call.
    """

    name = "Adam"

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 use_locking=False, name=None):
        super().__init__(learning_rate, use_locking, name)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _prepare(self, pairs):
        with _no_control_dependencies():
            self.beta1_power = Variable(np.float64(1.0), name="beta1_power", trainable=False)
            self.beta2_power = Variable(np.float64(1.0), name="beta2_power", trainable=False)
        self._non_slot += [self.beta1_power, self.beta2_power]
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


__all__ = ["Optimizer", "GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer"]
