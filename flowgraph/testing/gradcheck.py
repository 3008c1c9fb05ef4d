"""Check symbolic gradients against central finite differences.

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.placeholder(fg.float64, (3,))
...     err = fg.testing.check_gradients(fg.tanh(x) * x, [x], {x: [0.1, -0.5, 2.0]})
>>> err < 1e-6
True
"""
from __future__ import annotations

import numpy as np

from .. import api as F
from ..autodiff import gradients
from ..graph import Tensor
from ..session import Session, SessionConfig

_DEFAULTS = {  # dtype -> (eps, rtol, atol)
    np.dtype(np.float64): (1e-6, 1e-5, 1e-7),
    np.dtype(np.float32): (1e-2, 3e-2, 3e-3),
}


def check_gradients(y, xs, feed_dict=None, eps=None, rtol=None, atol=None, config=None):
    """Compare ``fg.gradients(sum(y), xs)`` with central differences, in float64.

    ``xs`` may be placeholders (perturbed through the feed) or variables (perturbed in
    the session). Raises ``AssertionError`` naming the input, the element index and both
    values at the worst mismatch; returns the largest absolute error found. Random ops
    (dropout) draw the same numbers in every evaluation, so their masks hold still.
    """
    xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
    y = F.convert_to_tensor(y)
    feed = dict(feed_dict or {})
    sess = Session(y.graph, config or SessionConfig())

    def run(fetches, feed_dict):
        sess._rewind_random_draws()   # every run draws what the first drew: one mask
        return sess.run(fetches, feed_dict)

    with y.graph.as_default():
        grads = gradients(y, xs)
        objective = F.reduce_sum(F.cast(y, np.float64)) if y.dtype != np.float64 \
            else F.reduce_sum(y)
    d_eps, d_rtol, d_atol = _DEFAULTS.get(np.dtype(y.dtype), _DEFAULTS[np.dtype(np.float32)])
    eps = d_eps if eps is None else eps
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol

    for x in xs:  # before running: an unfed placeholder would fail as a FeedError
        if not (hasattr(x, "_as_tensor") and not isinstance(x, Tensor)) and x not in feed:
            raise ValueError(f"check_gradients: {x.name} is neither fed nor a variable")
    # Every run fetches the gradients and the objective, so the finite differences run
    # the plan that computed the symbolic gradients: one plan (and one set of compiled
    # kernels) per check instead of two, and the values and gradients it compares come
    # from the same compiled program.
    fetches = [*grads, objective]
    *analytic, _ = run(fetches, feed)
    worst_error, worst = 0.0, None
    for x, g_val in zip(xs, analytic):
        is_variable = hasattr(x, "_as_tensor") and not isinstance(x, Tensor)
        label = x.name
        if is_variable:
            base = sess.variable_value(x).astype(np.float64)
        else:
            if x not in feed:
                raise ValueError(f"check_gradients: {label} is neither fed nor a variable")
            base = np.array(feed[x], dtype=np.float64)
        if g_val is None:
            raise AssertionError(f"check_gradients: no gradient for {label}")
        numeric = np.zeros(base.shape, np.float64)
        for idx in np.ndindex(*base.shape):
            values = []
            for sign in (1.0, -1.0):
                pert = base.copy()
                pert[idx] += sign * eps
                if is_variable:
                    sess.load(x, pert)
                    values.append(float(run(fetches, feed)[-1]))
                else:
                    values.append(float(run(fetches, {**feed, x: pert.astype(
                        x.dtype)})[-1]))
            numeric[idx] = (values[0] - values[1]) / (2 * eps)
        if is_variable:
            sess.load(x, base)
        g_val = np.asarray(g_val, np.float64).reshape(base.shape)
        error = np.abs(g_val - numeric)
        excess = error - (atol + rtol * np.abs(numeric))
        if error.size:
            i = np.unravel_index(np.argmax(excess), error.shape)
            worst_error = max(worst_error, float(error.max()))
            if excess[i] > 0 and (worst is None or excess[i] > worst[0]):
                worst = (excess[i], label, i, g_val[i], numeric[i])
    if worst is not None:
        _, label, index, a, n = worst
        raise AssertionError(
            f"check_gradients: gradient of {y.name} with respect to {label} differs at "
            f"element {tuple(int(k) for k in index)}: symbolic {float(a)!r}, finite "
            f"differences {float(n)!r} (|diff| {abs(a - n):.3g} > atol {atol:g} + rtol {rtol:g} * |fd|)")
    return worst_error
