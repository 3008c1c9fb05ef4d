"""TF1's ``tf.nn`` activations and normalizations built from existing primitives:
``leaky_relu``, ``elu``, ``relu6``, ``selu``, ``swish``, ``softplus``, ``softsign``,
``l2_normalize``, ``moments``, ``batch_normalization``.

Each is a composition, so its gradients (to any order) and its fused CPU/CUDA kernels
come from the primitives it uses. Branches are chosen with ``where`` and the argument
of the branch not taken is clamped first (``exp(min(x, 0))``), so no ``inf`` reaches a
gradient; at a kink the derivative is TF1's (``leaky_relu``: ``alpha`` at 0, ``elu``:
1 at 0; ``softplus``: 0.5 at 0).

>>> import numpy as np, flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.constant([-2.0, 0.0, 3.0])
...     with fg.Session() as sess:
...         print(sess.run(fg.nn.leaky_relu(x)), sess.run(fg.nn.elu(x)).round(4))
[-0.4  0.   3. ] [-0.8647  0.      3.    ]
"""
from __future__ import annotations

from .. import api as F


def _float_input(fn_name, x):
    x = F.convert_to_tensor(x)
    if x.dtype.kind != "f":
        from ..errors import DTypeError
        from ..graph import location_suffix
        raise DTypeError(fn_name + location_suffix("called")
                         + f": expected a float tensor, found {x.dtype.name} ({x.name})")
    return x


def _positive(x):
    return F.greater(x, F.zeros_like(x))


def leaky_relu(features, alpha=0.2, name=None):
    """TF1's ``tf.nn.leaky_relu``: ``x`` where ``x > 0``, else ``alpha * x``; the
    derivative is 1 where ``x > 0`` and ``alpha`` elsewhere (at 0 too, as TF1's
    ``LeakyReluGrad``).

    >>> import flowgraph as fg
    >>> fg.nn.leaky_relu(fg.constant([-1.0, 2.0]), alpha=0.1).eval(session=fg.Session())
    array([-0.1,  2. ], dtype=float32)
    """
    x = _float_input("leaky_relu", features)
    return F.where(_positive(x), x, x * float(alpha), name=name)


def elu(features, name=None):
    """TF1's ``tf.nn.elu``: ``x`` where ``x > 0``, else ``exp(x) - 1``; the derivative
    is 1 where ``x > 0`` and ``exp(x)`` elsewhere (1 at 0, as TF1's ``EluGrad``).

    >>> import flowgraph as fg
    >>> fg.nn.elu(fg.constant([-1.0, 2.0])).eval(session=fg.Session())
    array([-0.6321206,  2.       ], dtype=float32)
    """
    x = _float_input("elu", features)
    pos = _positive(x)
    negative_part = F.where(pos, F.zeros_like(x), x)     # exp() never sees a large x
    return F.where(pos, x, F.exp(negative_part) - 1.0, name=name)


def relu6(features, name=None):
    """TF1's ``tf.nn.relu6``: ``min(max(x, 0), 6)``; the derivative is 1 where
    ``0 < x < 6`` and 0 elsewhere (at both kinks, as TF1's ``Relu6Grad``).

    >>> import flowgraph as fg
    >>> fg.nn.relu6(fg.constant([-1.0, 3.0, 8.0])).eval(session=fg.Session())
    array([0., 3., 6.], dtype=float32)
    """
    x = _float_input("relu6", features)
    six = F.ones_like(x) * 6.0
    return F.where(F.greater_equal(x, six), six, F.relu(x), name=name)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(features, name=None):
    """TF1's ``tf.nn.selu`` (Klambauer et al., 2017): ``scale * x`` where ``x > 0``,
    else ``scale * alpha * (exp(x) - 1)``.

    >>> import flowgraph as fg
    >>> fg.nn.selu(fg.constant([-1.0, 2.0])).eval(session=fg.Session())
    array([-1.1113307,  2.101402 ], dtype=float32)
    """
    x = _float_input("selu", features)
    pos = _positive(x)
    negative_part = F.where(pos, F.zeros_like(x), x)
    return F.multiply(F.where(pos, x, _SELU_ALPHA * (F.exp(negative_part) - 1.0)),
                      _SELU_SCALE, name=name)


def swish(features, name=None):
    """``x * sigmoid(x)`` (TF's ``tf.nn.swish``, Ramachandran et al., 2017).

    >>> import flowgraph as fg
    >>> fg.nn.swish(fg.constant([0.0, 2.0])).eval(session=fg.Session()).round(5)
    array([0.     , 1.76159], dtype=float32)
    """
    x = _float_input("swish", features)
    return F.multiply(x, F.sigmoid(x), name=name)


def softplus(features, name=None):
    """TF1's ``tf.nn.softplus``: ``log(1 + exp(x))``, computed without overflow as
    ``max(x, 0) + log1p(exp(-|x|))``; the derivative is ``sigmoid(x)`` (0.5 at 0).

    >>> import flowgraph as fg
    >>> fg.nn.softplus(fg.constant([-20.0, 0.0, 100.0])).eval(session=fg.Session())
    array([2.0611537e-09, 6.9314718e-01, 1.0000000e+02], dtype=float32)
    """
    x = _float_input("softplus", features)
    pos = _positive(x)
    zero = F.zeros_like(x)
    xp = F.where(pos, x, zero)        # max(x, 0), derivative 0 at 0
    xn = F.where(pos, zero, x)        # min(x, 0), derivative 1 at 0
    # -|x| = xn - xp; its derivative at 0 is 1, so the log1p term gives sigmoid(0) = 0.5
    return F.add(xp, F.log1p(F.exp(xn - xp)), name=name)


def softsign(features, name=None):
    """TF1's ``tf.nn.softsign``: ``x / (1 + |x|)``; the derivative is
    ``1 / (1 + |x|)**2`` (1 at 0, as TF1's).

    >>> import flowgraph as fg
    >>> fg.nn.softsign(fg.constant([-3.0, 0.0, 1.0])).eval(session=fg.Session())
    array([-0.75,  0.  ,  0.5 ], dtype=float32)
    """
    x = _float_input("softsign", features)
    return F.divide(x, F.add(F.abs(x), 1.0), name=name)


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """TF1's ``tf.nn.l2_normalize``: ``x / sqrt(max(sum(x**2, axis), epsilon))``, the sum
    over ``axis`` (an int, a list, or ``None`` for all axes; ``dim=`` is TF1's older
    spelling).

    >>> import flowgraph as fg
    >>> fg.nn.l2_normalize(fg.constant([[3.0, 4.0]]), axis=1).eval(session=fg.Session())
    array([[0.6, 0.8]], dtype=float32)
    """
    if dim is not None:
        if axis is not None:
            raise ValueError("l2_normalize: give axis= or its older spelling dim=, not both")
        axis = dim
    x = _float_input("l2_normalize", x)
    square_sum = F.reduce_sum(F.square(x), axis, keepdims=True)
    inv_norm = 1.0 / F.sqrt(F.maximum(square_sum, float(epsilon)))
    return F.multiply(x, inv_norm, name=name)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """TF1's ``tf.nn.moments``: ``(mean, variance)`` of ``x`` over ``axes`` (a list of
    ints), with TF1's formula ``variance = mean((x - stop_gradient(mean))**2)``.
    ``keepdims=`` (or TF1's ``keep_dims=``) keeps the reduced axes as size 1; ``shift``
    is accepted and unused, as in TF1.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     m, v = fg.nn.moments(fg.constant([[1.0, 2.0], [3.0, 6.0]]), axes=[0])
    ...     fg.Session().run([m, v])
    [array([2., 4.], dtype=float32), array([1., 4.], dtype=float32)]
    """
    del shift
    if keepdims is not None and keep_dims is not None:
        raise ValueError("moments: give keepdims= or its older spelling keep_dims=, not both")
    keepdims = bool(keep_dims if keepdims is None else keepdims)
    x = _float_input("moments", x)
    if isinstance(axes, int):
        axes = [axes]
    axes = list(axes)
    mean = F.reduce_mean(x, axes, keepdims=True)
    variance = F.reduce_mean(F.square(x - F.stop_gradient(mean)), axes, keepdims=True)
    if not keepdims:
        mean = F.squeeze(mean, axes)
        variance = F.squeeze(variance, axes)
    if name is not None:
        mean, variance = F.identity(mean, name=f"{name}/mean"), \
            F.identity(variance, name=f"{name}/variance")
    return mean, variance


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """TF1's ``tf.nn.batch_normalization``: ``scale * (x - mean) / sqrt(variance +
    variance_epsilon) + offset``, computed as TF1 does (``inv = scale * rsqrt(variance
    + variance_epsilon)``, then ``x * inv + (offset - mean * inv)``). ``offset`` and
    ``scale`` may be ``None`` (no shift, no scaling); every argument broadcasts against
    ``x`` (``mean`` and ``variance`` typically from :func:`moments`) and takes ``x``'s
    float dtype (a Python number or array is converted to it). Differentiable in every
    tensor argument.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.constant([[1.0, 2.0], [3.0, 6.0]])
    ...     mean, variance = fg.nn.moments(x, axes=[0])
    ...     y = fg.nn.batch_normalization(x, mean, variance, offset=0.5, scale=2.0,
    ...                                   variance_epsilon=0.0)
    ...     fg.Session().run(y)
    array([[-1.5, -1.5],
           [ 2.5,  2.5]], dtype=float32)
    """
    x = _float_input("batch_normalization", x)

    def same_dtype(value):
        return F.convert_to_tensor(value, dtype=x.dtype)

    inv = F.divide(1.0, F.sqrt(F.add(same_dtype(variance), same_dtype(variance_epsilon))))
    if scale is not None:
        inv = F.multiply(inv, same_dtype(scale))
    shift = F.negative(F.multiply(same_dtype(mean), inv))
    if offset is not None:
        shift = F.add(shift, same_dtype(offset))
    return F.add(F.multiply(x, inv), shift, name=name)


__all__ = ["leaky_relu", "elu", "softplus", "softsign", "l2_normalize", "moments",
           "batch_normalization", "relu6", "selu", "swish"]
