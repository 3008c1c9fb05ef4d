"""The global step and learning-rate schedules (TF1's ``tf.train`` functions).

A schedule is an ordinary graph tensor of the global step: an optimizer given it as its
learning rate reads the step's value from the start of the run, so the step that
``minimize(loss, global_step=step)`` takes with ``step == k`` uses the rate of ``k``.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     step = fg.train.get_or_create_global_step()
...     lr = fg.train.exponential_decay(0.1, step, decay_steps=2, decay_rate=0.5,
...                                     staircase=True)
...     w = fg.Variable(0.0)
...     train = fg.train.GradientDescentOptimizer(lr).minimize(-w, global_step=step)
...     with fg.Session() as sess:
...         rates = [round(float(sess.run([lr, train])[0]), 6) for _ in range(5)]
...         int(sess.run(step)), rates
(5, [0.1, 0.1, 0.05, 0.05, 0.025])
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from .. import dtypes
from ..array_ops import pow as _pow
from ..graph import get_default_graph
from ..variables import Variable

GLOBAL_STEP = "global_step"   # the collection holding the graph's global step


def get_global_step(graph=None):
    """The graph's global step variable, or ``None`` (TF1)."""
    found = (graph or get_default_graph()).get_collection(GLOBAL_STEP)
    return found[0] if found else None


def get_or_create_global_step(graph=None):
    """The graph's global step: a non-trainable int64 scalar variable named
    ``global_step``, starting at 0, created on the first call (TF1).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.train.get_or_create_global_step()
    ...     step is fg.train.get_or_create_global_step(), step.name, step.dtype
    (True, 'global_step:0', dtype('int64'))
    """
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is None:
        from .optimizers import _state_variable
        with graph.as_default():
            step = _state_variable(np.int64(0), "global_step")
        graph.add_to_collection(GLOBAL_STEP, step)
    return step


def global_step(sess, global_step_tensor):
    """The global step's value in ``sess`` as a Python int (TF1's
    ``tf.train.global_step(sess, global_step_tensor)``)."""
    return int(sess.run(global_step_tensor))


def create_global_step(graph=None):
    """A new global step (``ValueError`` if the graph has one already), as TF1."""
    if get_global_step(graph) is not None:
        raise ValueError("create_global_step: the graph already has a global step")
    return get_or_create_global_step(graph)


def _step_as(global_step, dtype):
    if global_step is None:
        raise ValueError("expected a global_step (e.g. fg.train.get_or_create_global_step())")
    step = F.convert_to_tensor(global_step)
    return step if step.dtype == dtype else F.cast(step, dtype)


def exponential_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False,
                      name=None):
    """``learning_rate * decay_rate ** (global_step / decay_steps)``; with ``staircase``
    the exponent is floored, so the rate drops every ``decay_steps`` steps (TF1).
    Computed in the learning rate's dtype (float32 for a Python number)."""
    lr = F.convert_to_tensor(learning_rate)
    if not dtypes.is_floating(lr.dtype):
        lr = F.cast(lr, dtypes.float32)
    dtype = lr.dtype
    p = F.divide(_step_as(global_step, dtype), F.cast(F.convert_to_tensor(decay_steps), dtype)
                 if not isinstance(decay_steps, (int, float)) else decay_steps)
    if staircase:
        p = _floor_nonnegative(p)
    rate = F.cast(F.convert_to_tensor(decay_rate), dtype) if not isinstance(
        decay_rate, (int, float)) else F.constant(decay_rate, dtype)
    return F.multiply(lr, _pow(rate, p), name=name)


# --- TF1's polynomial, cosine, natural-exp and inverse-time decays (learning_rate_decay.py
# formulas exactly), computed in the learning rate's dtype (float32 for a Python number)

def _rate_step(learning_rate, global_step):
    lr = F.convert_to_tensor(learning_rate)
    if not dtypes.is_floating(lr.dtype):
        lr = F.cast(lr, dtypes.float32)
    return lr, _step_as(global_step, lr.dtype)


def _as(value, dtype):
    """A Python number, NumPy value or tensor as a tensor of ``dtype``."""
    t = F.convert_to_tensor(value) if isinstance(value, F.Tensor) else F.constant(
        np.asarray(value).astype(dtype), dtype)
    return t if t.dtype == dtype else F.cast(t, dtype)


def polynomial_decay(learning_rate, global_step, decay_steps, end_learning_rate=0.0001,
                     power=1.0, cycle=False, name=None):
    """TF1's: ``(learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power +
    end_learning_rate`` with ``step = min(global_step, decay_steps)``; with ``cycle``,
    ``decay_steps`` is multiplied by ``ceil(global_step / decay_steps)`` (1 at step 0)
    and the step is not clipped.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.placeholder(fg.int64, ())
    ...     lr = fg.train.polynomial_decay(0.1, step, 10, end_learning_rate=0.01, power=2.0)
    ...     sess = fg.Session()
    ...     [round(float(sess.run(lr, {step: s})), 6) for s in (0, 5, 10, 20)]
    [0.1, 0.0325, 0.01, 0.01]
    """
    lr, step = _rate_step(learning_rate, global_step)
    dtype = lr.dtype
    steps = _as(decay_steps, dtype)
    if cycle:
        multiplier = F.where(F.equal(step, F.zeros_like(step)), F.ones_like(step),
                             F.ceil(step / steps))
        steps = steps * multiplier
    else:
        step = F.minimum(step, steps)
    end = _as(end_learning_rate, dtype)
    fraction = _pow(1.0 - step / steps, _as(power, dtype))
    return F.add((lr - end) * fraction, end, name=name)


def cosine_decay(learning_rate, global_step, decay_steps, alpha=0.0, name=None):
    """TF1's: ``learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * step / decay_steps))
    + alpha)`` with ``step = min(global_step, decay_steps)``.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.placeholder(fg.int64, ())
    ...     lr = fg.train.cosine_decay(0.1, step, 10, alpha=0.1)
    ...     sess = fg.Session()
    ...     [round(float(sess.run(lr, {step: s})), 6) for s in (0, 5, 10, 20)]
    [0.1, 0.055, 0.01, 0.01]
    """
    lr, step = _rate_step(learning_rate, global_step)
    dtype = lr.dtype
    steps = _as(decay_steps, dtype)
    step = F.minimum(step, steps)
    cosine = 0.5 * (1.0 + F.cos(_as(np.pi, dtype) * (step / steps)))
    alpha = _as(alpha, dtype)
    return F.multiply(lr, (1.0 - alpha) * cosine + alpha, name=name)


def _decay_exponent(step, decay_steps, staircase):
    p = step / _as(decay_steps, step.dtype)
    return _floor_nonnegative(p) if staircase else p


def natural_exp_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False,
                      name=None):
    """TF1's: ``learning_rate * exp(-decay_rate * global_step / decay_steps)``, computed
    as TF1 does, ``exponential_decay`` with the rate ``exp(-decay_rate)``; with
    ``staircase`` the quotient is floored.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.placeholder(fg.int64, ())
    ...     lr = fg.train.natural_exp_decay(0.1, step, 2, 0.5, staircase=True)
    ...     sess = fg.Session()
    ...     [round(float(sess.run(lr, {step: s})), 6) for s in (0, 1, 2, 4)]
    [0.1, 0.1, 0.060653, 0.036788]
    """
    lr, step = _rate_step(learning_rate, global_step)
    p = _decay_exponent(step, decay_steps, staircase)
    return F.multiply(lr, _pow(F.exp(-_as(decay_rate, lr.dtype)), p), name=name)


def inverse_time_decay(learning_rate, global_step, decay_steps, decay_rate, staircase=False,
                       name=None):
    """TF1's: ``learning_rate / (1 + decay_rate * global_step / decay_steps)``; with
    ``staircase`` the quotient is floored.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.placeholder(fg.int64, ())
    ...     lr = fg.train.inverse_time_decay(0.1, step, 2, 0.5)
    ...     sess = fg.Session()
    ...     [round(float(sess.run(lr, {step: s})), 6) for s in (0, 1, 2, 4)]
    [0.1, 0.08, 0.066667, 0.05]
    """
    lr, step = _rate_step(learning_rate, global_step)
    p = _decay_exponent(step, decay_steps, staircase)
    return F.divide(lr, 1.0 + _as(decay_rate, lr.dtype) * p, name=name)


def _floor_nonnegative(x):
    """``floor(x)`` for ``x >= 0`` (a step count over a period): truncation."""
    return F.cast(F.cast(x, dtypes.int64), x.dtype)


def _values(values):
    """piecewise_constant's values as tensors of one dtype. Python numbers mixing ints
    and floats (``[1, 0.5]``) are float32, as ``fg.constant([1, 0.5])``; tensors or
    NumPy values of different dtypes raise ``ValueError``, as in TF1 (NumPy's promotion
    would silently give a float64 learning rate)."""
    if all(dtypes.is_python_scalar(v) and not isinstance(v, bool) for v in values) and \
            any(isinstance(v, float) for v in values):
        return [F.constant(float(v), dtypes.DEFAULT_FLOAT) for v in values]
    strong = {np.dtype(v.dtype) for v in values
              if hasattr(v, "dtype") and not dtypes.is_python_scalar(v)}
    if len(strong) > 1:
        raise ValueError(f"piecewise_constant: expected values of one dtype, found "
                         f"{', '.join(sorted(d.name for d in strong))} (values {values!r})")
    return F._to_tensors(*values, name_hint="piecewise_constant")


def _boundary(bound, x):
    """A number boundary in ``x``'s dtype; a fractional boundary for an integer ``x``
    raises ``ValueError`` (TF1 refuses boundaries of another dtype; a cast would
    truncate ``-0.5`` to ``0`` and move the switch by one step)."""
    value = np.asarray(bound)
    if dtypes.is_integer(x.dtype) and (value.dtype.kind not in "iub"
                                       and not float(value) == int(float(value))):
        raise ValueError(f"piecewise_constant: expected boundaries of {x.name}'s dtype "
                         f"{x.dtype.name}, found {bound!r}")
    return value.astype(x.dtype)


def piecewise_constant(x, boundaries, values, name=None):
    """``values[0]`` while ``x <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < x <= boundaries[i]``, ``values[-1]`` after the last boundary
    (TF1; ``len(values) == len(boundaries) + 1``). The values are of one dtype (Python
    numbers mixing ints and floats give float32); a number boundary must be exact in
    ``x``'s dtype (``ValueError`` otherwise, as TF1).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     step = fg.placeholder(fg.int64, ())
    ...     lr = fg.train.piecewise_constant(step, [10, 20], [1.0, 0.5, 0.1])
    ...     sess = fg.Session()
    ...     [round(float(sess.run(lr, {step: s})), 6) for s in (0, 10, 11, 20, 21)]
    [1.0, 1.0, 0.5, 0.5, 0.1]
    """
    boundaries, values = list(boundaries), list(values)
    if len(values) != len(boundaries) + 1:
        raise ValueError(f"piecewise_constant: expected len(values) == len(boundaries) + 1, "
                         f"found {len(values)} values and {len(boundaries)} boundaries")
    x = F.convert_to_tensor(x)
    values = _values(values)
    result = values[-1]
    for bound, value in zip(reversed(boundaries), reversed(values[:-1])):
        if hasattr(bound, "_as_tensor") or isinstance(bound, F.Tensor):
            bound = F.cast(bound, x.dtype)
        else:
            bound = F.constant(_boundary(bound, x), x.dtype)
        result = F.where(F.less_equal(x, bound), value, result)
    return F.identity(result, name=name) if name else result


__all__ = ["global_step", "get_global_step", "get_or_create_global_step", "create_global_step",
           "exponential_decay", "piecewise_constant",
           "polynomial_decay", "cosine_decay", "natural_exp_decay", "inverse_time_decay"]
