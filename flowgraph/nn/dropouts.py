"""Dropout (TF1's ``tf.nn.dropout``) and ``DropoutWrapper`` for recurrent cells.

``dropout(x, keep_prob)`` keeps each element with probability ``keep_prob`` and scales
the kept ones by ``1 / keep_prob``; ``keep_prob`` may be a tensor, e.g. a placeholder fed
1.0 at evaluation. The mask is drawn by a random op (:mod:`flowgraph.random_ops`): new
every run, reproducible with seeds, identical on every execution path. Its gradient is
``mask / keep_prob``, written with graph ops (differentiable again).

>>> import flowgraph as fg
>>> with fg.Graph().as_default():
...     x = fg.ones((4, 1000))
...     y = fg.Session().run(fg.nn.dropout(x, keep_prob=0.5, seed=1))
>>> sorted(set(y.ravel().tolist())), bool(0.4 < (y > 0).mean() < 0.6)
([0.0, 2.0], True)
"""
from __future__ import annotations

import hashlib
import numbers

from .. import api as F
from .. import dtypes
from ..graph import Tensor, name_scope
from ..random_ops import random_op
from .cells import LSTMStateTuple, RNNCell


def _is_tensor(x):
    return isinstance(x, Tensor) or hasattr(x, "_as_tensor")


def _noise_like(x, noise_shape):
    """A tensor whose shape is the mask's: ``x`` itself, or a slice of it with size 1
    along the axes where ``noise_shape`` is 1 (so the mask broadcasts over them)."""
    if noise_shape is None:
        return x
    noise_shape = list(noise_shape)
    if x.shape is None or len(noise_shape) != len(x.shape):
        raise ValueError(f"dropout: expected a noise_shape of rank {x.ndim}, found "
                         f"{noise_shape} for {x.name} of shape {x.shape}")
    index = []
    for axis, (n, d) in enumerate(zip(noise_shape, x.shape)):
        if n is None or n == d:
            index.append(slice(None))
        elif n == 1:
            index.append(slice(0, 1))
        else:
            raise ValueError(f"dropout: noise_shape {noise_shape} does not broadcast to "
                             f"the shape {x.shape} of {x.name} (axis {axis}: expected 1 or "
                             f"{d}, found {n})")
    return x[tuple(index)]


def dropout(x, keep_prob=None, *, rate=None, noise_shape=None, seed=None, name=None):
    """``x / keep_prob * mask`` with ``mask`` 1 with probability ``keep_prob`` (TF1).

    Give ``keep_prob`` or ``rate = 1 - keep_prob`` (a number or a scalar tensor).
    ``noise_shape`` (ints, 1 where the mask is shared; ``None`` for x's dimension)
    shares the mask along axes, e.g. ``[None, 1, d]`` for one mask per sequence. A
    constant ``keep_prob`` of 1 returns ``x`` itself.

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     x = fg.ones((3, 4))
    ...     rows = fg.nn.dropout(x, rate=0.5, noise_shape=[3, 1], seed=2)  # whole rows
    ...     v = fg.Session().run(rows)
    >>> all(len(set(row)) == 1 for row in v.tolist()), fg.nn.dropout(x, 1.0) is x
    (True, True)
    """
    x = F.convert_to_tensor(x)
    if not dtypes.is_floating(x.dtype):
        raise ValueError(f"dropout: expected a float tensor, found {x.name} of dtype "
                         f"{x.dtype.name}")
    if (keep_prob is None) == (rate is None):
        raise ValueError("dropout: expected exactly one of keep_prob and rate, found "
                         f"keep_prob={keep_prob!r}, rate={rate!r}")
    if keep_prob is None:
        keep_prob = 1.0 - rate if not _is_tensor(rate) else 1.0 - F.convert_to_tensor(
            rate, dtype=x.dtype)
    if isinstance(keep_prob, numbers.Real):
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"dropout: expected keep_prob in (0, 1], found {keep_prob}")
        if float(keep_prob) == 1.0:
            return x
    with name_scope(name or "dropout"):
        keep = F.convert_to_tensor(keep_prob, dtype=x.dtype)
        like = _noise_like(x, noise_shape)
        u = random_op("RandomUniform", None, x.dtype, seed, None, like=like, minval=0.0,
                      maxval=1.0)
        mask = F.cast(u < keep, x.dtype)
        return x / keep * mask


def _keep_used(p):
    """TF1: a tensor always applies dropout; a number only below 1."""
    return _is_tensor(p) or float(p) < 1.0


def _default_state_filter(state):
    """Which parts of a state get dropout: all but the ``c`` of an LSTM (TF1)."""
    if isinstance(state, LSTMStateTuple):
        return LSTMStateTuple(False, True)
    if isinstance(state, tuple):
        return type(state)(*(_default_state_filter(s) for s in state)) if hasattr(
            state, "_fields") else tuple(_default_state_filter(s) for s in state)
    return True


def _map(fn, structure, mask=True):
    """``fn(index, leaf)`` over the leaves of nested tuples where ``mask`` is true."""
    counter = [0]

    def walk(value, keep):
        if isinstance(value, tuple):
            keeps = keep if isinstance(keep, tuple) else [keep] * len(value)
            parts = [walk(v, k) for v, k in zip(value, keeps)]
            return type(value)(*parts) if hasattr(value, "_fields") else tuple(parts)
        i = counter[0]
        counter[0] += 1
        return fn(i, value) if keep else value
    return walk(structure, mask)


class DropoutWrapper(RNNCell):
    """Dropout on a cell's inputs, outputs and new state (TF1's ``DropoutWrapper``).

    Keep probabilities are numbers or scalar tensors; a number 1 adds nothing. State
    dropout skips the ``c`` of LSTM states. With ``variational_recurrent=True`` one
    mask per run, shaped ``[1, depth]`` as TF1's, is used at every time step (Gal and
    Ghahramani); ``dtype`` is then required, and ``input_size`` too for input dropout.
    ``seed`` derives one seed per mask as TF1 does (an md5 of seed and role).

    >>> import flowgraph as fg
    >>> with fg.Graph().as_default():
    ...     cell = fg.nn.DropoutWrapper(fg.nn.BasicRNNCell(3, seed=0), output_keep_prob=0.5)
    ...     x = fg.placeholder(fg.float32, (2, 4))
    ...     out, _ = cell(x, cell.zero_state(2, fg.float32))
    ...     out.shape
    (2, 3)
    """

    def __init__(self, cell, input_keep_prob=1.0, output_keep_prob=1.0, state_keep_prob=1.0,
                 variational_recurrent=False, input_size=None, dtype=None, seed=None,
                 dropout_state_filter_visitor=None):
        for label, p in (("input_keep_prob", input_keep_prob),
                         ("output_keep_prob", output_keep_prob),
                         ("state_keep_prob", state_keep_prob)):
            if not _is_tensor(p) and not 0.0 < float(p) <= 1.0:
                raise ValueError(f"DropoutWrapper: expected {label} in (0, 1], found {p}")
        self.cell = cell
        self._input_keep_prob = input_keep_prob
        self._output_keep_prob = output_keep_prob
        self._state_keep_prob = state_keep_prob
        self._variational = bool(variational_recurrent)
        self._seed = seed
        self._filter = dropout_state_filter_visitor or _default_state_filter
        self._noise = {}
        if self._variational:
            if dtype is None:
                raise ValueError("DropoutWrapper: when variational_recurrent=True, dtype "
                                 "must be provided")
            self._dtype = dtypes.as_dtype(dtype)
            if _keep_used(input_keep_prob):
                if input_size is None:
                    raise ValueError("DropoutWrapper: when variational_recurrent=True and "
                                     "input_keep_prob < 1.0 or is a tensor, input_size "
                                     "must be provided")
                self._noise["input"] = self._batch_noise("input", input_size)
            if _keep_used(state_keep_prob):
                self._noise["state"] = self._batch_noise("state", cell.state_size)
            if _keep_used(output_keep_prob):
                self._noise["output"] = self._batch_noise("output", cell.output_size)

    def _gen_seed(self, prefix, index):
        if self._seed is None:
            return None
        text = (str(self._seed) + f"{prefix}_{index}").encode("utf-8")
        return int(hashlib.md5(text).hexdigest()[:8], 16) & 0x7FFFFFFF

    def _batch_noise(self, prefix, sizes):
        def noise(i, size):
            return random_op("RandomUniform", (1, int(size)), self._dtype,
                             self._gen_seed(prefix, i), f"{prefix}_noise", minval=0.0,
                             maxval=1.0)
        return _map(noise, sizes if isinstance(sizes, tuple) else sizes)

    state_size = property(lambda self: self.cell.state_size)
    output_size = property(lambda self: self.cell.output_size)
    variables = property(lambda self: self.cell.variables)
    trainable_variables = property(lambda self: self.cell.trainable_variables)
    built = property(lambda self: self.cell.built)

    def zero_state(self, batch_size, dtype=dtypes.float32):
        return self.cell.zero_state(batch_size, dtype)

    def zero_state_like(self, inputs, dtype=None):
        return self.cell.zero_state_like(inputs, dtype)

    def _dropout(self, values, prefix, keep_prob, mask=True):
        noise = self._noise.get(prefix)
        if noise is None:
            return _map(lambda i, v: dropout(v, keep_prob,
                                             seed=self._gen_seed(prefix, i)), values, mask)
        flat_noise = []
        _map(lambda i, n: flat_noise.append(n), noise)

        def apply(i, v):
            keep = F.convert_to_tensor(keep_prob, dtype=v.dtype)
            binary = F.cast(flat_noise[i] < keep, v.dtype)   # [1, depth]: every row
            return v / keep * binary
        return _map(apply, values, mask)

    def __call__(self, inputs, state):
        if _keep_used(self._input_keep_prob):
            inputs = self._dropout(F.convert_to_tensor(inputs), "input",
                                   self._input_keep_prob)
        output, new_state = self.cell(inputs, state)
        if _keep_used(self._state_keep_prob):
            new_state = self._dropout(new_state, "state", self._state_keep_prob,
                                      self._filter(new_state))
        if _keep_used(self._output_keep_prob):
            output = self._dropout(output, "output", self._output_keep_prob)
        return output, new_state

    def __getattr__(self, name):
        if name == "cell":
            raise AttributeError(name)
        return getattr(self.cell, name)

    def __repr__(self):
        return f"<fg.nn.DropoutWrapper {self.cell!r}>"


__all__ = ["dropout", "DropoutWrapper"]
